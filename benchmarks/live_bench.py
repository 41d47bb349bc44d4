"""Live view latency: a segment file closed to logged and archived, and to its frame shown.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/live_bench.py --segment 4 --segments 8 --runs 3
    .venv/bin/python benchmarks/live_bench.py --segment 4 --segments 8 --runs 3 --unredacted
    .venv/bin/python benchmarks/live_bench.py --segment 2 --segments 8 --runs 3
    .venv/bin/python benchmarks/live_bench.py --segment 4 --segments 8 --runs 3 --custody

Set-up (not timed), one of two:

* by default, the in-process gateway of ``tests/access/gateway_kit.py`` (a real log, the
  HTTP app on a loopback port), footage unencrypted, and a live grant of ``cam-n1``;
* ``--custody``: the network of the custody tests (``tests/custody/gateway.py``): ``custodes
  serve`` (checkpoints every 0.1 s), a witness and three custodian processes (2 of 3) with
  today's epoch key from their DKG; the agent encrypts each segment, and each one viewed is
  an ``access.viewed`` in a witnessed checkpoint that the custodians check before they give
  their partials; a live grant of ``MSK-0001``, approved by two approvers.  A segment the
  gateway answers 503 for (its batch not yet in a witnessed checkpoint) is asked for again
  every 0.1 s, as a player retries; the wait counts in its delay.

Per run: a recorder agent is started, a real process that runs its own ffmpeg
(``custodes agent --record``: 640x360, 15 frames a second, H.264, in real time, usual
segments of 60 s).  The server's answer to its first heartbeat says that the camera has
a live grant, so it records ``--segment``-second segments instead, logs and uploads each.
Only those short segments count.  Two clocks per segment:

* *logged and archived*: the segment's file closed (its logged end, which the agent takes
  from the file's last write) to the segment being both in the log and in the archive
  (watched every 50 ms); the issue asks for at most 2 s;
* *glass to glass*: its file closed to its first frame decoded by a viewer that polls the
  grant's playlist every 0.2 s as a player would, and fetches each new segment
  (``access.viewed`` logged first, faces blurred and checked unless ``--unredacted``); the
  issue asks for a median of at most 6 s with 4-s segments.  The player's own buffer
  (hls.js keeps one segment) is not in it.

The figures are medians over all segments of all runs, with the 90th percentile and each
run's median, and the load average before and after; ``this_process_cpu_s_per_segment`` is the
CPU time of this process per segment shown (without ``--custody``, the gateway and the
viewer; with it, the viewer only), which does not depend on how loaded the machine is.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _first_frame(ts: bytes) -> None:
    import av

    with av.open(io.BytesIO(ts), "r", format="mpegts") as f:
        for _ in f.decode(video=0):
            return
    raise RuntimeError("the segment holds no frame")


RECORD_CODEC = "-c:v libx264 -preset ultrafast -g 15 -pix_fmt yuv420p"


def _agent(
    tmp: Path, url: str, token: str, seconds: int, run: int, camera: str, pins: list[str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "custodes", "agent", "--watch", str(tmp / "rec"),
            "--server", url, "--token", token, "--journal", str(tmp / f"agent{run}.db"),
            "--heartbeat", "1", "--max-backoff", "1", "--progress", "0",
            "--record", f"{camera}=testsrc=size=640x360:rate=15",
            "--record-input-args", "-re -f lavfi", "--record-codec-args", RECORD_CODEC,
            "--segment-seconds", "60", "--live-segment-seconds", str(seconds), *pins,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _watch_archive(
    logged: Callable[[], list[int]], data: Path, camera: str, seen: dict[int, float],
    stop: threading.Event,
) -> None:  # fmt: skip
    """When each segment of the camera was first both logged and archived (wall clock)."""
    from custodes.access.release import segment_path

    while not stop.is_set():
        now = time.time()
        for start_ms in logged():
            if start_ms not in seen and segment_path(data, camera, start_ms):
                seen[start_ms] = now
        time.sleep(0.05)


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def _p90(xs: list[float]) -> float | None:
    return round(sorted(xs)[int(0.9 * (len(xs) - 1))], 3) if xs else None


@dataclass
class _Rig:
    """Where the grant is watched: the gateway's URL, how to GET as the requester, and
    which segments of the camera the log holds."""

    url: str
    data: Path
    camera: str
    token: str  # the recorder agent's
    rid: str
    get: Callable[[str], tuple[int, bytes]]
    logged: Callable[[], list[int]]
    pins: list[str]


def _play(
    rig: _Rig, args: argparse.Namespace, n: int, tmp: Path, shown: set[str]
) -> dict[str, Any]:
    """One run: start a recorder, and play the grant until ``args.segments`` are shown."""
    archived: dict[int, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_archive, args=(rig.logged, rig.data, rig.camera, archived, stop)
    )
    watcher.start()
    began = time.time()
    agent = _agent(tmp, rig.url, rig.token, args.segment, n, rig.camera, rig.pins)
    delays: list[float] = []
    stored: list[float] = []
    try:
        deadline = time.monotonic() + args.segment * (args.segments + 4) + 60
        while len(delays) < args.segments and time.monotonic() < deadline:
            status, raw = rig.get(f"/access/live/{rig.rid}/index.m3u8")
            if status != 200:
                raise RuntimeError(f"the playlist: {status} {raw[:200]!r}")
            lines = raw.decode().splitlines()
            for k, line in enumerate(lines):
                if not line.endswith(".ts") or line in shown:
                    continue
                shown.add(line)
                dur = float(lines[k - 1].split(":")[1].rstrip(","))
                if abs(dur - args.segment) > 0.5:
                    continue  # cut short when the agent heard of the grant
                start_ms = int(line[:-3].rsplit("_", 1)[1])
                if start_ms / 1000 < began:
                    continue  # an earlier run's, left behind: not this run's delay
                closed = start_ms / 1000 + dur
                status, body = rig.get(f"/access/live/{rig.rid}/{line}")
                retry_until = time.monotonic() + 30
                while status == 503 and time.monotonic() < retry_until:
                    time.sleep(0.1)  # not witnessed yet: a player tries again, and so do we
                    status, body = rig.get(f"/access/live/{rig.rid}/{line}")
                if status != 200:
                    raise RuntimeError(f"{line}: {status} {body[:200]!r}")
                _first_frame(body)
                delays.append(time.time() - closed)
                if start_ms in archived:
                    stored.append(archived[start_ms] - closed)
            time.sleep(0.2)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        stop.set()
        watcher.join()
    return {"delays": delays, "stored": stored}


LIVE = {"purpose": "public-safety", "case": "CASE-2026-0001", "minutes": 60,
        "justification": "Live path benchmark."}  # fmt: skip


@contextmanager
def _plain_rig(tmp: Path, args: argparse.Namespace) -> Iterator[_Rig]:
    """The in-process gateway of the access tests, footage unencrypted."""
    from custodes.fleet.ops import add_agent
    from tests.access.gateway_kit import app_city

    with app_city(tmp) as a:
        st = a.app.state
        _row, token = st.ledger.write(
            lambda log: add_agent(log, st.fleet.db, "rec-bench", "recorder", cameras=["cam-n1"])
        )
        body = {"cameras": ["cam-n1"], **LIVE}
        rid = a.client.post("/access/live", json=body, headers=a.auth("ivan")).json()["request"]
        a.client.post(f"/access/requests/{rid}/approve",
                      json={"unredacted": args.unredacted}, headers=a.auth("anna"))  # fmt: skip

        def get(path: str) -> tuple[int, bytes]:
            r = a.client.get(path, headers=a.auth("ivan"))
            return r.status_code, r.content

        def logged() -> list[int]:
            rows = st.ledger.read(lambda _l: st.fleet.db.segments_for("cam-n1", 0, 1 << 50))
            return [r.start_ms for r in rows]

        yield _Rig(str(a.client.base_url), a.data, "cam-n1", token, rid, get, logged, [])


@contextmanager
def _custody_rig(tmp: Path, args: argparse.Namespace) -> Iterator[_Rig]:
    """`custodes serve` with a witness and three custodian processes (2 of 3), as the
    custody tests build it: the agent encrypts, the custodians open each viewed segment."""
    from tests.custody.gateway import CAMERA, call, city

    with city(tmp / "city", seconds=1) as c:
        body = {"cameras": [CAMERA], **LIVE}
        status, _, raw = call("POST", c.url + "/access/live", c.tokens["ivan"], body)
        if status != 201:
            raise RuntimeError(f"the live request: {status} {raw[:200]!r}")
        rid = json.loads(raw)["request"]
        for who in ("anna", "boris"):
            status, _, raw = call("POST", f"{c.url}/access/requests/{rid}/approve",
                                  c.tokens[who], {"unredacted": args.unredacted,
                                                  "reason": "A case on file."})  # fmt: skip
            if status != 200:
                raise RuntimeError(f"the approval: {status} {raw[:200]!r}")
            if json.loads(raw)["complete"]:
                break

        def get(path: str) -> tuple[int, bytes]:
            status, _, body = call("GET", c.url + path, c.tokens["ivan"])
            return status, body

        def logged() -> list[int]:
            db = sqlite3.connect(f"file:{c.net.log_data / 'fleet.db'}?mode=ro", uri=True)
            try:
                rows = db.execute("SELECT start_ms FROM segments WHERE camera = ?", (CAMERA,))
                return [int(r[0]) for r in rows.fetchall()]
            finally:
                db.close()

        pins = ["--log-vkey", c.net.log_vkey]
        pins += [a for _, vkey, _, _ in c.net.custodians for a in ("--custodian", vkey)]
        yield _Rig(c.url, c.net.log_data, CAMERA, c.agent, rid, get, logged, pins)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    delays: list[float] = []  # file closed to first frame shown
    stored: list[float] = []  # file closed to logged and archived
    per_run: list[dict[str, Any]] = []
    rig_of = _custody_rig if args.custody else _plain_rig
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp, rig_of(Path(tmp), args) as rig:
        (Path(tmp) / "rec" / rig.camera).mkdir(parents=True, exist_ok=True)
        shown: set[str] = set()
        cpu0 = time.process_time()
        for n in range(args.runs):
            got = _play(rig, args, n, Path(tmp), shown)
            delays += got["delays"]
            stored += got["stored"]
            per_run.append({"segments": len(got["delays"]), "median_s": _median(got["delays"]),
                            "stored_median_s": _median(got["stored"])})  # fmt: skip
    return {
        "segment_s": args.segment,
        "runs": args.runs,
        "segments": len(delays),
        "redacted": not args.unredacted,
        "custody": "2/3" if args.custody else None,
        "median_s": _median(delays),
        "p90_s": _p90(delays),
        "max_s": round(max(delays), 3) if delays else None,
        "stored_median_s": _median(stored),
        "stored_p90_s": _p90(stored),
        "stored_max_s": round(max(stored), 3) if stored else None,
        "per_run": per_run,
        "this_process_cpu_s_per_segment": round((time.process_time() - cpu0) / len(delays), 3)
        if delays
        else None,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--segment", type=int, default=4, help="seconds per live segment (2 to 4)")
    p.add_argument("--segments", type=int, default=8, help="segments recorded per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--unredacted", action="store_true", help="approve unredacted viewing")
    p.add_argument(
        "--custody", action="store_true",
        help="a `custodes serve` gateway under custody: a witness, three custodians (2 of 3)",
    )  # fmt: skip
    args = p.parse_args()
    if not 2 <= args.segment <= 4 or args.segments < 2 or args.runs < 1:
        p.error("--segment 2-4, --segments at least 2, --runs at least 1")
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
