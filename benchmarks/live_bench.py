"""Glass-to-glass delay of a live grant: a camera's segment file closed to its frame shown.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/live_bench.py --segment 4 --segments 8 --runs 3
    .venv/bin/python benchmarks/live_bench.py --segment 4 --segments 8 --runs 3 --unredacted

Set-up (not timed): the in-process gateway of ``tests/access/gateway_kit.py`` (a real log,
the HTTP app on a loopback port), a recorder agent for camera ``cam-n1``
(``custodes agent --settle 1 --poll 0.2``, a real process that logs and uploads each
segment), and a live grant of that camera, approved.

Per run: ffmpeg records ``--segments`` segments of ``--segment`` seconds in real time
(``-re``, 640x360, 15 frames a second, H.264) into the agent's folder.  A viewer polls the
grant's playlist every 0.2 s as a player would; for each new segment it fetches the
segment (``access.viewed`` logged first, faces blurred unless ``--unredacted``) and
decodes its first frame.  The delay of a segment is the time that frame was decoded minus
the time its file was closed (the segment's logged end, ``start + duration``, which the
agent takes from the file's modification time).  The figure is the median over all
segments of all runs, with the 90th percentile; the issue's target is a median of at most
6 s with 4-s segments.  The player's own buffer (hls.js keeps one segment) is not in it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _record(folder: Path, seconds: int, segments: int, run: int, stop: threading.Event) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
            "-f", "lavfi", "-i", f"testsrc=size=640x360:rate=15:duration={seconds * segments}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p",
            "-f", "segment", "-segment_time", str(seconds), "-reset_timestamps", "1",
            "-strftime", "0", str(folder / f"run{run}-%03d.mp4"),
        ],
    )  # fmt: skip
    while proc.poll() is None and not stop.is_set():
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _first_frame(ts: bytes) -> None:
    import av

    with av.open(io.BytesIO(ts), "r", format="mpegts") as f:
        for _ in f.decode(video=0):
            return
    raise RuntimeError("the segment holds no frame")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from custodes.fleet.model import parse_time
    from custodes.fleet.ops import add_agent
    from tests.access.gateway_kit import app_city

    delays: list[float] = []
    listing: list[float] = []  # file closed to listed in the playlist
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp, app_city(Path(tmp)) as a:
        st = a.app.state
        _agent, token = st.ledger.write(
            lambda log: add_agent(log, st.fleet.db, "rec-bench", "recorder", cameras=["cam-n1"])
        )
        rec = Path(tmp) / "rec"
        (rec / "cam-n1").mkdir(parents=True)
        agent = subprocess.Popen(
            [
                sys.executable, "-m", "custodes", "agent", "--watch", str(rec),
                "--server", str(a.client.base_url), "--token", token,
                "--journal", str(Path(tmp) / "agent.db"), "--settle", "1", "--poll", "0.2",
                "--max-backoff", "1", "--progress", "0",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            body = {"cameras": ["cam-n1"], "minutes": 60, "purpose": "public-safety",
                    "case": "CASE-2026-0001", "justification": "Live path benchmark."}  # fmt: skip
            r = a.client.post("/access/live", json=body, headers=a.auth("ivan"))
            rid = r.json()["request"]
            a.client.post(f"/access/requests/{rid}/approve",
                          json={"unredacted": args.unredacted}, headers=a.auth("anna"))  # fmt: skip
            seen: set[str] = set()
            for n in range(args.runs):
                stop = threading.Event()
                rec_thread = threading.Thread(
                    target=_record, args=(rec / "cam-n1", args.segment, args.segments, n, stop)
                )
                rec_thread.start()
                deadline = time.monotonic() + args.segment * (args.segments + 4) + 30
                got = 0
                while got < args.segments - 1 and time.monotonic() < deadline:
                    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
                    lines = r.text.splitlines()
                    for k, line in enumerate(lines):
                        if not line.endswith(".ts") or line in seen:
                            continue
                        seen.add(line)
                        dur = float(lines[k - 1].split(":")[1].rstrip(","))
                        start_ms = int(line[:-3].rsplit("_", 1)[1])
                        listed = time.time()
                        seg = a.client.get(f"/access/live/{rid}/{line}", headers=a.auth("ivan"))
                        if seg.status_code != 200:
                            raise RuntimeError(f"{line}: {seg.status_code} {seg.text[:200]}")
                        _first_frame(seg.content)
                        delays.append(time.time() - (start_ms / 1000 + dur))
                        listing.append(listed - (start_ms / 1000 + dur))
                        got += 1
                    time.sleep(0.2)
                stop.set()
                rec_thread.join()
        finally:
            agent.terminate()
            agent.wait(timeout=30)
        g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
        assert parse_time(g["start"], "start") > 0
    delays.sort()
    return {
        "segment_s": args.segment,
        "segments": len(delays),
        "runs": args.runs,
        "redacted": not args.unredacted,
        "median_s": round(statistics.median(delays), 3) if delays else None,
        "p90_s": round(delays[int(0.9 * (len(delays) - 1))], 3) if delays else None,
        "max_s": round(delays[-1], 3) if delays else None,
        "listed_median_s": round(statistics.median(listing), 3) if listing else None,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--segment", type=int, default=4, help="seconds per segment (2 to 4)")
    p.add_argument("--segments", type=int, default=8, help="segments recorded per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--unredacted", action="store_true", help="approve unredacted viewing")
    args = p.parse_args()
    if not 1 <= args.segment <= 10 or args.segments < 2 or args.runs < 1:
        p.error("--segment 1-10, --segments at least 2, --runs at least 1")
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
