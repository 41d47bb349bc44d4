"""Keep the served demo city alive: its recorder agents' heartbeats and hourly segments.

The demo's week ends when it is built; from then on the server closes every
heartbeat interval with the real clock, and a camera not heard from for
``silent_after`` intervals is logged as silent.  Without this feed every
camera would fall silent a quarter of an hour after ``make demo``.

It speaks to the server exactly as real agents do (``POST /fleet/heartbeats``
and ``/fleet/segments`` with each agent's bearer token), for the cameras that
were working when the week ended.  It stops when the process that started it
goes (``make demo`` starts it just before it becomes the server), or when the
server has been unreachable for a minute.

Under custody (``make demo`` sets up three local custodians) the server takes only
encrypted segments, and these hourly records stand for no footage that could be
encrypted: the feed then sends heartbeats only, and says so once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from custodes.demo.build import AGENTS_FILE
from custodes.errors import NotFoundError, UsageError
from custodes.fleet.model import format_time, now_ms

__all__ = ["feed"]

HOUR = 3_600_000


def _post(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        url,
        data=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with opener.open(req, timeout=30) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def _up(server: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(server + "/healthz", timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _custody_on(server: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(server + "/custody/status", timeout=10) as resp:
            return bool(json.loads(resp.read()).get("custody"))
    except (OSError, ValueError):
        return False


def feed(
    data: Path,
    server: str,
    *,
    every_s: float | None = None,
    rounds: int | None = None,
    say: Callable[[str], None] = lambda s: None,
) -> dict[str, int]:
    """Send heartbeats (and each full hour's segments) until told to stop.

    Returns the rounds sent and the heartbeats the server accepted and refused.
    """
    try:
        plan = json.loads((data / AGENTS_FILE).read_text())
    except FileNotFoundError:
        raise NotFoundError(
            f"{data} holds no demo city; build one with 'custodes demo-city'"
        ) from None
    except ValueError:
        raise UsageError(f"{data / AGENTS_FILE} is damaged; rebuild the demo city") from None
    server = server.rstrip("/")
    step = every_s if every_s is not None else max(5.0, plan["interval_s"] / 3)
    parent = os.getppid()
    deadline = time.monotonic() + 120
    while not _up(server):
        if time.monotonic() > deadline or os.getppid() != parent:
            raise UsageError(f"the demo server at {server} did not come up within two minutes")
        time.sleep(0.5)
    started = now_ms()
    hour_done = started - started % HOUR + HOUR  # the first hour recorded whole ends here
    last_ok = time.monotonic()
    sent = accepted = refused = 0
    custody = _custody_on(server)
    said_custody = False
    while rounds is None or sent < rounds:
        if os.getppid() != parent:
            break
        now = now_ms()
        stamp = format_time(now)
        try:
            for agent in plan["agents"]:
                if not agent["cameras"]:
                    continue
                beats = [{"camera": c, "time": stamp} for c in agent["cameras"]]
                got = _post(server + "/fleet/heartbeats", agent["token"], {"heartbeats": beats})
                accepted += int(got.get("accepted", 0))
                for r in got.get("refused", []):
                    refused += 1
                    if refused <= 3:
                        say(f"the demo server refused a heartbeat: {r.get('reason')}")
                if now >= hour_done + 60_000 and not custody:
                    _post(
                        server + "/fleet/segments",
                        agent["token"],
                        {"segments": _segments(agent["cameras"], hour_done - HOUR)},
                    )
            if now >= hour_done + 60_000:
                hour_done += HOUR
                custody = custody or _custody_on(server)
                if custody and not said_custody:
                    said_custody = True
                    say(
                        "custody is on, so the synthetic hourly segments are not sent"
                        " (they stand for no footage to encrypt); heartbeats go on"
                    )
            last_ok = time.monotonic()
            sent += 1
        except (OSError, urllib.error.HTTPError, ValueError) as err:
            say(f"the demo feed could not reach {server} ({err})")
            if time.monotonic() - last_ok > 60:
                break
        if rounds is not None and sent >= rounds:
            break
        wake = time.monotonic() + step
        while time.monotonic() < wake and os.getppid() == parent:
            time.sleep(min(0.5, step))
    return {"rounds": sent, "accepted": accepted, "refused": refused}


def _segments(cameras: list[str], start: int) -> list[dict[str, Any]]:
    out = []
    for c in cameras:
        digest = hashlib.sha256(f"live/{c}/{start}".encode()).hexdigest()
        out.append(
            {
                "camera": c,
                "start": format_time(start),
                "duration": 3600,
                "bytes": 180_000_000 + int(digest[:6], 16) % 400_000_000,
                "sha256": digest,
            }
        )
    return out
