"""Custody in the simulated city: real custodians make the epoch keys, through the log.

``custodes simulate --custody T/N`` starts N ``custodes custodian serve`` processes that
follow the simulated server, logs their set the way an operator does (``custody init
--propose``, each custodian's ``sign-set``, ``custody init`` with the signatures) and waits
until the DKG, run by the custodians through the log, has logged the key of every epoch the
simulated window touches.  From then on every segment record the simulated agents send
carries the custody fields (epoch, ephemeral, ciphertext), and the server refuses records
without them, as it does for real agents.

The simulation has no footage, so nothing is encrypted: each record's ephemeral is a random
ristretto255 point (:meth:`~custodes.custody.group.Point.from_uniform`), checked by the
server like any agent's, and its ciphertext digest and size are those a sealed file of that
size would have.  A real agent's KEM per segment is measured in ``benchmarks/custody_bench.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custodes.custody.group import Point
from custodes.custody.stream import DEFAULT_CHUNK
from custodes.errors import UsageError

__all__ = ["SimCustody", "parse_custody", "start_custody"]

READY_S = 180.0
"""How long the set-up waits for the custodians' DKG to log the epoch keys."""


def parse_custody(text: str) -> tuple[int, int]:
    """``T/N`` -> (T, N), with 1 <= T <= N <= 9."""
    t, sep, n = text.partition("/")
    if not sep or not t.isdigit() or not n.isdigit() or not 1 <= int(t) <= int(n) <= 9:
        raise UsageError(f"--custody {text!r}: give T/N, such as 2/3 (1 <= T <= N <= 9)")
    return int(t), int(n)


def _cli(data: Path, *args: str, body: bytes | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "custodes", "--data", str(data), *args],
        input=body,
        capture_output=True,
        timeout=120,
    )
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"custodes {args[0]} {args[1]} failed: {err[-1] if err else 'no output'}")
    return out.stdout.decode()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SimCustody:
    """The custodian processes of one simulated log."""

    threshold: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    @staticmethod
    def fields(camera: str, start: str, size: int) -> dict[str, Any]:
        """The custody fields of a simulated segment that starts at ``start``."""
        point = Point.from_uniform(os.urandom(64)).encode()
        chunks = max(1, -(-size // DEFAULT_CHUNK))
        sealed = size + 16 * chunks + 64
        digest = hashlib.sha256(b"sealed/" + camera.encode() + b"/" + start.encode()).hexdigest()
        return {
            "epoch": start[:10],
            "ephemeral": base64.b64encode(point).decode(),
            "ciphertext": {"sha256": digest, "bytes": sealed},
        }


def start_custody(
    root: Path,
    server: str,
    log_data: Path,
    log_vkey: str,
    threshold: int,
    n: int,
    epochs: list[str],
    say: Callable[[str], None],
) -> SimCustody:
    """Start ``n`` custodians following ``server``, log their set, wait for ``epochs``."""
    sim = SimCustody(threshold)
    try:
        vkeys: list[str] = []
        for k in range(1, n + 1):
            cdir = root / f"custodian{k}"
            out = _cli(cdir, "custodian", "init", "--name", f"custodian{k}.sim.invalid")
            vkeys.append(out.strip().splitlines()[-1])
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            sim.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "custodes",
                        "--data",
                        str(cdir),
                        "custodian",
                        "serve",
                        "--port",
                        str(port),
                        "--log",
                        server,
                        "--log-vkey",
                        log_vkey,
                        "--interval",
                        "0.5",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
            sim.urls.append(url)
        for url in sim.urls:
            _wait_up(url + "/healthz")
        specs: list[str] = []
        for vkey, url in zip(vkeys, sim.urls, strict=True):
            specs += ["--custodian", f"{vkey}@{url}"]
        base = ["custody", "init", "--threshold", str(threshold), *specs, "--server", server,
                "--dkg-deadline", "5"]  # fmt: skip
        proposed = _cli(log_data, *base, "--propose")
        offer = root / "custodian-set.json"
        offer.write_text(proposed)
        sigs: list[str] = []
        for k in range(1, n + 1):
            sigs += [
                "--signature",
                _cli(root / f"custodian{k}", "custodian", "sign-set", str(offer)),
            ]
        _cli(log_data, *base, "--time", json.loads(proposed)["time"], *sigs)
        say(f"{n} custodians ({threshold} of {n}) logged; waiting for their DKG")
        deadline = time.monotonic() + READY_S
        while True:
            status = _get_json(server + "/custody/status")
            ready = {e["epoch"] for e in status.get("epochs", []) if e.get("state") == "ready"}
            if all(e in ready for e in epochs):
                break
            if time.monotonic() > deadline:
                raise UsageError(
                    f"the custodians did not make the keys of epochs {', '.join(epochs)}"
                    f" within {READY_S:g} s"
                )
            time.sleep(0.3)
        say(f"epoch keys ready: {', '.join(epochs)}")
        return sim
    except BaseException:
        sim.stop()
        raise


def _wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise UsageError(f"a custodian did not start within {timeout:g} s ({url})")
        time.sleep(0.1)
