"""How long `fleet status` takes for one camera over one day, with proofs checked.

Builds a day of history for 4,096 cameras through the same functions the
server uses (segments in batches of 256, heartbeats, 1,440 closed intervals),
then times `camera_status` for one camera over that day.

    .venv/bin/python benchmarks/fleet_status_query.py [--cameras 4096] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from custodes.fleet.heard import close_intervals, record_heartbeats
from custodes.fleet.model import Camera, format_time, now_ms
from custodes.fleet.ops import FleetSettings, import_cameras, ingest_segments
from custodes.fleet.query import camera_status
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance


def build(data: Path, cameras: int) -> tuple[int, int]:
    inst = Instance.init(data, origin="bench.custodes.local/status")
    settings = FleetSettings(max_age_s=3 * 86400.0)
    day = 86_400_000
    start = now_ms() - day - 3_600_000
    start -= start % 60_000
    cams = [Camera(id=f"B-{i:05d}", lat=55.75 + i * 1e-5, lon=37.6) for i in range(cameras)]
    with inst.open_log() as log:
        db = FleetDB.for_instance(inst.path)
        import_cameras(log, db, cams)
        batch: list[object] = []
        for minute in range(1440):
            t = start + minute * 60_000
            beats = [{"camera": c.id, "time": format_time(t + 1000)} for c in cams[:64]]
            record_heartbeats(db, beats, settings, now=t + 2000)
            for c in cams[:4]:
                batch.append(
                    {
                        "camera": c.id,
                        "start": format_time(t),
                        "duration": 60,
                        "bytes": 10_000_000,
                        "sha256": hashlib.sha256(f"{c.id}{t}".encode()).hexdigest(),
                    }
                )
            if len(batch) >= 256:
                ingest_segments(log, db, batch, settings, now=t + 60_000)
                batch = []
            close_intervals(log, db, settings, now=t + 60_000 + 16_000)
        if batch:
            ingest_segments(log, db, batch, settings)
        log.integrate()
        db.close()
    return start, start + day


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        f, t = build(data, args.cameras)
        built = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            q0 = time.perf_counter()
            rep = camera_status(data, "B-00001", f, t)
            times.append(time.perf_counter() - q0)
        print(
            json.dumps(
                {
                    "cameras": args.cameras,
                    "build_s": round(built, 2),
                    "segments": len(rep["segments"]),
                    "verified": sum(s["verified"] for s in rep["segments"]),
                    "intervals_heard": rep["intervals_heard"],
                    "status_query_ms_min": round(min(times) * 1000, 1),
                    "status_query_ms_median": round(sorted(times)[len(times) // 2] * 1000, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
