"""A live grant under custody, end to end: a real `custodes serve` gateway, a real witness,
three real custodian processes (2 of 3), and an agent that encrypted real ffmpeg segments
recorded after the grant started.  Each segment shown is an ``access.viewed`` the
custodians checked in the witnessed log before they answered for it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from custodes.fleet.model import parse_time
from tests.custody.gateway import CAMERA, FFMPEG, City, call, city, record

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")

LIVE = {"cameras": [CAMERA], "minutes": 5, "purpose": "public-safety", "case": "CASE-2026-0077",
        "justification": "A march passes the metro entrance."}  # fmt: skip


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    with city(tmp_path_factory.mktemp("live-custody"), seconds=2) as got:
        yield got


def _agent(c: City, folder: Path, journal: Path) -> None:
    pins = [a for _, vkey, _, _ in c.net.custodians for a in ("--custodian", vkey)]
    said = subprocess.run(
        [sys.executable, "-m", "custodes", "agent", "--watch", str(folder), "--server", c.url,
         "--token", c.agent, "--journal", str(journal), "--settle", "0", "--once",
         "--max-backoff", "2", "--log-vkey", c.net.log_vkey, *pins],
        capture_output=True, timeout=180,
    )  # fmt: skip
    assert said.returncode == 0, said.stdout + said.stderr


def _frames(ts: bytes) -> int:
    import av

    with av.open(io.BytesIO(ts), "r", format="mpegts") as f:
        return sum(1 for _ in f.decode(video=0))


def test_each_live_segment_is_viewed_in_the_log_then_opened_by_the_custodians(
    c: City, tmp_path: Path
) -> None:
    status, _, raw = call("POST", c.url + "/access/live", c.tokens["ivan"], LIVE)
    assert status == 201, raw
    rid = json.loads(raw)["request"]
    for who in ("anna", "boris"):
        status, _, raw = call("POST", f"{c.url}/access/requests/{rid}/approve", c.tokens[who],
                              {"reason": "A case on file."})  # fmt: skip
        assert status == 200, raw
        if json.loads(raw)["complete"]:
            break
    status, _, raw = call("GET", f"{c.url}/access/live/{rid}", c.tokens["ivan"])
    start = parse_time(json.loads(raw)["start"], "start")
    time.sleep(max(0.0, start / 1000 + 1.3 - time.time()))  # segments that start after it
    record(tmp_path / "rec" / CAMERA, 3)
    _agent(c, tmp_path / "rec", tmp_path / "agent.db")

    deadline = time.monotonic() + 60
    names: list[str] = []
    while not names and time.monotonic() < deadline:
        status, _, raw = call("GET", f"{c.url}/access/live/{rid}/index.m3u8", c.tokens["ivan"])
        assert status == 200, raw
        names = [ln[:-3] for ln in raw.decode().splitlines() if ln.endswith(".ts")]
        time.sleep(0.2)
    assert names, "the new segments never appeared in the playlist"
    status, headers, body = call("GET", f"{c.url}/access/live/{rid}/{names[0]}.ts",
                                 c.tokens["ivan"])  # fmt: skip
    assert status == 200, body
    assert body[0] == 0x47 and _frames(body) >= 5
    index = int(headers["x-custodes-index"])
    viewed = c.log_entries()[index]
    assert viewed["type"] == "access.viewed" and viewed["request"] == rid
    assert viewed["segments"][0] == headers["x-custodes-sha256"]
    for _, _, url, _ in c.net.custodians:  # each custodian answered for that entry
        answers = urllib.request.urlopen(url + "/answers").read().decode().splitlines()
        mine = [json.loads(x) for x in answers if json.loads(x).get("request") == rid]
        assert [m["release"].rsplit("#", 1)[1] for m in mine] == [str(index)]

    # Footage recorded before the grant: 403 and no bytes.
    old = f"{CAMERA}_{c.segments[0][0]}"
    status, headers, body = call("GET", f"{c.url}/access/live/{rid}/{old}.ts", c.tokens["ivan"])
    assert status == 403 and headers["content-type"].startswith("application/json")

    # Two custodians down: the next segment is refused (503), not one byte of it.
    c.custodian(1).stop()
    c.custodian(2).stop()
    try:
        status, headers, body = call("GET", f"{c.url}/access/live/{rid}/{names[1]}.ts",
                                     c.tokens["ivan"], timeout=60)  # fmt: skip
        assert status == 503, body
        assert headers["content-type"].startswith("application/json") and body[:1] != b"\x47"
    finally:
        c.custodian(1).start()
        c.custodian(2).start()
