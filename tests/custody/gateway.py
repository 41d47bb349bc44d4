"""A gateway under custody: `custodes serve` with a witness and three custodians (2 of 3),
cameras, users, and an agent that encrypts real ffmpeg-made segments.

:func:`city` yields a :class:`City` whose footage of camera MSK-0001 is in the archive as
ciphertext only; :meth:`City.approved` makes a request for it and approves it over HTTP.
A custodian can be made to lie (:meth:`City.lie`): a proxy on its logged URL forwards to
the real process and adds the group's generator to every partial it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from custodes.custody.group import Point, b64decode, b64encode
from custodes.fleet.model import format_time
from tests.conftest import free_port, run_cli
from tests.custody.network import Network, Proc, init_set, network, today, wait_ready
from tests.fleet.conftest import DATA, FAST

FFMPEG = shutil.which("ffmpeg")
CAMERA = "MSK-0001"
USERS = (("ivan", "investigator"), ("anna", "approver"), ("boris", "approver"),
         ("audrey", "auditor"))  # fmt: skip


def record(folder: Path, seconds: int) -> list[Path]:
    """One-second H.264 segments of a moving test pattern, as a recorder writes them."""
    assert FFMPEG is not None
    folder.mkdir(parents=True)
    subprocess.run(
        [
            FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
            "-t", str(seconds), "-g", "10", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-f", "segment", "-segment_time", "1",
            "-reset_timestamps", "1", str(folder / "%03d.mp4"),
        ],
        check=True,
        env={**os.environ, "TZ": "UTC"},
        timeout=60,
    )  # fmt: skip
    return sorted(folder.glob("*.mp4"))


def call(
    method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 120
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


class _Liar(ThreadingHTTPServer):
    target: str


class _LiarHandler(BaseHTTPRequestHandler):
    """Forwards to the real custodian; every partial it returns is off by the generator."""

    server: _Liar

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self, body: bytes | None) -> None:
        req = urllib.request.Request(self.server.target + self.path, data=body,
                                     method=self.command)  # fmt: skip
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        if self.path == "/partials" and status == 200:
            obj = json.loads(raw)
            for p in obj["partials"]:
                point = Point.decode(b64decode(p["partial"], 32))
                p["partial"] = b64encode((point + Point.generator()).encode())
            raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        self._forward(self.rfile.read(n))


@dataclass
class City:
    net: Network
    tokens: dict[str, str]
    plain: list[Path]
    segments: list[tuple[int, int, str]]  # start ms, end ms, plaintext sha256
    agent: str = ""
    liars: list[_Liar] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.net.url

    def entries(self) -> list[dict[str, Any]]:
        size = int(urllib.request.urlopen(self.url + "/log/checkpoint").read().split(b"\n")[1])
        out = []
        for i in range(size):
            out.append(json.loads(self.net.entry(i)))
        return out

    def log_entries(self) -> list[dict[str, Any]]:
        """Every entry the log holds, including those not yet in a published checkpoint."""
        from custodes.ledger.instance import Instance

        store = Instance.load(self.net.log_data).reader().store
        try:
            return [json.loads(e) for e in store.read_entries(0, store.next_index())]
        finally:
            store.close()

    def approved(self, *, unredacted: bool = True, seconds: float | None = None) -> str:
        """A request for the camera's recorded footage, approved by as many as it needs."""
        start, end = self.segments[0][0], self.segments[-1][1]
        if seconds is not None:
            end = min(end, start + int(seconds * 1000))
        body = {
            "cameras": [CAMERA], "from": format_time(start), "to": format_time(end),
            "purpose": "investigation", "case": "CASE-2026-0042",
            "justification": "A bag snatched at the metro entrance.",
        }  # fmt: skip
        status, _, raw = call("POST", self.url + "/access/requests", self.tokens["ivan"], body)
        assert status == 201, raw
        rid: str = json.loads(raw)["request"]
        for who in ("anna", "boris"):
            status, _, raw = call(
                "POST", f"{self.url}/access/requests/{rid}/approve", self.tokens[who],
                {"unredacted": unredacted, "reason": "A case on file."},
            )  # fmt: skip
            assert status == 200, raw
            if json.loads(raw)["complete"]:
                break
        return rid

    def release(self, rid: str) -> tuple[int, dict[str, str], bytes]:
        return call("POST", f"{self.url}/access/requests/{rid}/release", self.tokens["ivan"], {})

    def custodian(self, k: int) -> Proc:
        return self.net.custodians[k][3]

    def lie(self, k: int) -> None:
        """Custodian k (0-based) answers through a proxy that corrupts its partials."""
        _, _, url, proc = self.net.custodians[k]
        proc.stop()
        port = free_port()
        args = list(proc.args)
        args[args.index("--port") + 1] = str(port)
        proc.args = args
        proc.health = f"http://127.0.0.1:{port}/healthz"
        proc.start()
        liar = _Liar(("127.0.0.1", int(url.rsplit(":", 1)[1])), _LiarHandler)
        liar.target = f"http://127.0.0.1:{port}"
        threading.Thread(target=liar.serve_forever, daemon=True).start()
        self.liars.append(liar)

    def close(self) -> None:
        for liar in self.liars:
            liar.shutdown()
            liar.server_close()


def _segments(data: Path, camera: str) -> list[tuple[int, int, str]]:
    db = sqlite3.connect(f"file:{data / 'fleet.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT start_ms, end_ms, sha256 FROM segments WHERE camera = ? AND epoch IS NOT NULL"
            " ORDER BY start_ms",
            (camera,),
        ).fetchall()
    finally:
        db.close()
    return [(int(a), int(b), str(c)) for a, b, c in rows]


@contextmanager
def witnessed_city(root: Path, wait_s: str = "5") -> Iterator[City]:
    """:func:`city`, with the gateway's wait for a witnessed checkpoint set to ``wait_s``."""
    before = os.environ.get("CUSTODES_WITNESS_WAIT_S")
    os.environ["CUSTODES_WITNESS_WAIT_S"] = wait_s
    try:
        with city(root) as got:
            yield got
    finally:
        if before is None:
            os.environ.pop("CUSTODES_WITNESS_WAIT_S", None)
        else:
            os.environ["CUSTODES_WITNESS_WAIT_S"] = before


@contextmanager
def city(root: Path, *, seconds: int = 4) -> Iterator[City]:
    """The whole network, with ``seconds`` one-second segments of MSK-0001 recorded."""
    with network(root / "net") as net:
        init_set(net, root)
        wait_ready(net, [today()])
        net.server.stop()  # the set-up writes the log directly
        data = net.log_data
        (data / "fleet.json").write_text(json.dumps(FAST))
        run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
        out = run_cli("agents", "add", "rec-1", "--cameras", CAMERA, data=data)
        agent = out.stdout.decode().splitlines()[-1]
        tokens = {}
        for name, role in USERS:
            got = run_cli("users", "add", name, "--role", role, data=data)
            tokens[name] = got.stdout.decode().strip().splitlines()[-1]
        net.server.start()
        files = record(root / "rec" / CAMERA, seconds)
        pins = [a for _, vkey, _, _ in net.custodians for a in ("--custodian", vkey)]
        said = subprocess.run(
            [
                sys.executable, "-m", "custodes", "agent", "--watch", str(root / "rec"),
                "--server", net.url, "--token", agent, "--journal", str(root / "agent.db"),
                "--settle", "0", "--once", "--max-backoff", "2", "--log-vkey", net.log_vkey,
                *pins,
            ],
            capture_output=True,
            timeout=180,
        )  # fmt: skip
        assert said.returncode == 0, said.stdout + said.stderr
        assert f"archived {len(files)}".encode() in said.stdout + said.stderr
        c = City(net, tokens, files, _segments(data, CAMERA), agent)
        assert len(c.segments) == len(files)
        try:
            yield c
        finally:
            c.close()
