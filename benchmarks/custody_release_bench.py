"""A release with custody against the same release without (issue 12: at most 1.3x).

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/custody_release_bench.py --minutes 10 --cameras 2 --runs 3
    .venv/bin/python benchmarks/custody_release_bench.py --minutes 2 --cameras 2 --runs 3 --redacted

Set-up (not timed), as an operator and a recorder would do it, every step a real
``custodes`` process on loopback:

* **with custody**: a log, a witness (``witness serve``) whose cosignature the log
  publishes, ``--custodians`` custodian processes (``custodian serve``, each following
  the log with the witness policy), their set logged (``custody init --propose``, each
  custodian's ``sign-set``, ``custody init``) at ``--threshold`` of them, and the DKG run
  by the custodians through the log until today's epoch key is logged;
* **without**: a log alone.

In both, the same cameras and users, and the same ``--minutes`` of real 10-second H.264
segments per camera (640x360, 15 frames a second, from ffmpeg's test pattern), uploaded by
``custodes agent --once`` (which, under custody, encrypts each one to the epoch key; the
archive then holds ciphertext only).

Per run, for each instance in turn (so that a change in the machine's load falls on
both): a request for the whole window, approved, then ``POST /access/requests/ID/release``
timed from the request until the last byte of the clip.  Under custody that is: the
release logged and witnessed, every custodian asked, every partial's proof checked, the
segments decrypted in memory, cut and joined (and with ``--redacted`` redacted and scanned),
and the export logged.  The figure is the median over runs, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SEGMENT_S = 10
ORIGIN = "bench.custody.example/log"


def _cli(data: Path, *args: str, stdin: bytes | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "custodes", "--data", str(data), *args],
        input=stdin,
        capture_output=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"custodes {' '.join(args[:2])} failed: {out.stderr.decode()[-500:]}")
    return out.stdout.decode()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.HTTPError):
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout:g} s") from None
            time.sleep(0.2)


def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=1800) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Procs:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, data: Path, *args: str, health: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"proc{len(self.procs)}.log").open("wb")
        p = subprocess.Popen(
            [sys.executable, "-m", "custodes", "--data", str(data), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(p)
        _wait(health)
        return p

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        p.terminate()
        p.wait(timeout=30)
        self.procs.remove(p)

    def close(self) -> None:
        for p in list(self.procs):
            self.stop(p)


def _segments(folder: Path, cameras: list[str], minutes: int) -> int:
    """Per camera, ``minutes`` of 10-s segments named by their start, ending 2 min ago."""
    per_cam = minutes * 60 // SEGMENT_S
    start = (int(time.time()) - per_cam * SEGMENT_S - 120) // SEGMENT_S * SEGMENT_S
    folder.mkdir(parents=True, exist_ok=True)
    made = folder.parent / "made.mp4"
    for n in range(per_cam):
        subprocess.run(
            [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=15:duration={SEGMENT_S}",
                "-c:v", "libx264", "-preset", "veryfast", "-g", "15", "-pix_fmt", "yuv420p",
                "-metadata", f"comment=segment {n}", "-movflags", "+faststart", str(made),
            ],
            check=True,
        )  # fmt: skip
        t = start + n * SEGMENT_S
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(t))
        for cam in cameras:
            (folder / cam).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made, folder / cam / f"{stamp}.mp4")
            os.utime(folder / cam / f"{stamp}.mp4", (t + SEGMENT_S, t + SEGMENT_S))
    made.unlink()
    return start * 1000


def _geojson(path: Path, cameras: list[str]) -> None:
    feats = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [37.61, 55.76 + k / 1000]},
         "properties": {"id": cam, "district": "north"}}
        for k, cam in enumerate(cameras)
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))


class Instance:
    """One log with its server (and, under custody, its witness and custodians)."""

    def __init__(self, root: Path, procs: Procs, custody: tuple[int, int] | None) -> None:
        self.root, self.procs, self.custody = root, procs, custody
        self.data = root / "log"
        self.vkey = _cli(self.data, "init", "--origin", ORIGIN).split()[-1]
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens: dict[str, str] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.custodian_keys: list[str] = []
        if custody:
            self._witness()

    def serve(self) -> None:
        self.server = self.procs.start(
            self.data, "serve", "--port", str(self.port), "--interval", "0.2",
            health=self.url + "/healthz",
        )  # fmt: skip

    def stop(self) -> None:
        if self.server is not None:
            self.procs.stop(self.server)
            self.server = None

    def _witness(self) -> None:
        wdata = self.root / "witness"
        self.wvkey = _cli(wdata, "witness", "init", "--name", "w.bench.example/w").split()[-1]
        _cli(wdata, "witness", "add-log", "--origin", ORIGIN, "--vkey", self.vkey)
        wport = _free_port()
        _cli(self.data, "log", "witnesses", "add", f"http://127.0.0.1:{wport}", "--vkey",
             self.wvkey)  # fmt: skip
        _cli(self.data, "log", "append", "-", stdin=b'{"type":"bench.start"}\n')
        self.procs.start(
            wdata, "witness", "serve", "--host", "127.0.0.1", "--port", str(wport),
            health=f"http://127.0.0.1:{wport}/healthz",
        )  # fmt: skip

    def custodians(self) -> None:
        assert self.custody is not None
        t, n = self.custody
        specs: list[str] = []
        for k in range(1, n + 1):
            cdir = self.root / f"c{k}"
            vkey = _cli(cdir, "custodian", "init", "--name", f"c{k}.bench.example")
            vkey = vkey.strip().splitlines()[-1]
            port = _free_port()
            curl = f"http://127.0.0.1:{port}"
            self.procs.start(
                cdir, "custodian", "serve", "--port", str(port), "--log", self.url,
                "--log-vkey", self.vkey, "--witness", self.wvkey, "--quorum", "1",
                "--interval", "0.2", health=curl + "/healthz",
            )  # fmt: skip
            specs += ["--custodian", f"{vkey}@{curl}"]
            self.custodian_keys.append(vkey)
        base = ["custody", "init", "--threshold", str(t), *specs, "--server", self.url,
                "--dkg-deadline", "5"]  # fmt: skip
        proposed = _cli(self.data, *base, "--propose")
        offer = self.root / "set.json"
        offer.write_text(proposed)
        sigs: list[str] = []
        for k in range(1, n + 1):
            sigs += ["--signature", _cli(self.root / f"c{k}", "custodian", "sign-set", str(offer))]
        _cli(self.data, *base, "--time", json.loads(proposed)["time"], *sigs)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        deadline = time.monotonic() + 300
        while True:
            with urllib.request.urlopen(self.url + "/custody/status", timeout=10) as r:
                st = json.loads(r.read())
            if any(e["epoch"] == today and e["state"] == "ready" for e in st["epochs"]):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the custodians made no key for {today}: {st}")
            time.sleep(0.5)

    def populate(self, cameras: list[str], footage: Path) -> None:
        """Cameras, an agent, users (the server stopped), then the agent's upload."""
        self.stop()
        geo = self.root / "cameras.geojson"
        _geojson(geo, cameras)
        _cli(self.data, "cameras", "import", str(geo))
        agent = _cli(self.data, "agents", "add", "rec-1", "--cameras", ",".join(cameras))
        agent = agent.strip().splitlines()[-1]
        for name, role in (("ivan", "investigator"), ("anna", "approver"), ("boris", "approver")):
            self.tokens[name] = _cli(self.data, "users", "add", name, "--role", role).split()[-1]
        self.serve()
        pins = [a for v in self.custodian_keys for a in ("--custodian", v)]
        out = subprocess.run(
            [sys.executable, "-m", "custodes", "agent", "--watch", str(footage), "--server",
             self.url, "--token", agent, "--journal", str(self.root / "agent.db"), "--settle",
             "0", "--once", "--log-vkey", self.vkey, *pins],
            capture_output=True, timeout=1800,
        )  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"the agent failed: {(out.stdout + out.stderr).decode()[-800:]}")

    def release(self, cameras: list[str], start_ms: int, end_ms: int, redacted: bool) -> float:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        body = {
            "cameras": cameras, "purpose": "investigation", "case": "CASE-2026-0100",
            "from": time.strftime(fmt, time.gmtime(start_ms / 1000)),
            "to": time.strftime(fmt, time.gmtime(end_ms / 1000)),
            "justification": "A benchmark of the release path.",
        }  # fmt: skip
        t0 = time.perf_counter()
        status, raw = _call("POST", self.url + "/access/requests", self.tokens["ivan"], body)
        assert status == 201, raw
        rid = json.loads(raw)["request"]
        for who in ("anna", "boris"):
            status, raw = _call(
                "POST", f"{self.url}/access/requests/{rid}/approve", self.tokens[who],
                {"unredacted": not redacted, "reason": "A benchmark."},
            )  # fmt: skip
            assert status == 200, raw
            if json.loads(raw)["complete"]:
                break
        status, raw = _call(
            "POST", f"{self.url}/access/requests/{rid}/release", self.tokens["ivan"], {}
        )
        took = time.perf_counter() - t0
        if status != 200:
            raise SystemExit(f"the release failed ({status}): {raw[:400]!r}")
        return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--custodians", type=int, default=5)
    ap.add_argument("--threshold", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--redacted", action="store_true", help="Redact (and scan) the clip too.")
    args = ap.parse_args()
    print(f"# {platform.python_version()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    cams = [f"cam-{k}" for k in range(args.cameras)]
    with tempfile.TemporaryDirectory(prefix="custody-release-") as tmp:
        root = Path(tmp)
        procs = Procs(root)
        try:
            footage = root / "footage"
            t0 = time.perf_counter()
            start = _segments(footage, cams, args.minutes)
            end = start + args.minutes * 60_000
            print(f"# footage made in {time.perf_counter() - t0:.0f} s")
            plain = Instance(root / "plain", procs, None)
            plain.serve()
            plain.populate(cams, footage)
            kept = Instance(root / "custody", procs, (args.threshold, args.custodians))
            kept.serve()
            kept.custodians()
            kept.populate(cams, footage)
            print(f"# set up in {time.perf_counter() - t0:.0f} s")
            times: dict[str, list[float]] = {"without": [], "with": []}
            for run in range(1, args.runs + 1):
                for name, inst in (("without", plain), ("with", kept)):
                    took = inst.release(cams, start, end, args.redacted)
                    times[name].append(took)
                    print(f"run {run} {name} custody: {took:.2f} s, load"
                          f" {os.getloadavg()[0]:.2f}")  # fmt: skip
            a, b = statistics.median(times["without"]), statistics.median(times["with"])
            print(
                f"median: without {a:.2f} s, with custody ({args.threshold} of"
                f" {args.custodians}) {b:.2f} s, ratio {b / a:.3f} (target <= 1.3)"
            )
        finally:
            procs.close()


if __name__ == "__main__":
    main()
