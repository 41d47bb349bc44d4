"""The fleet benchmark: `custodes simulate` at a given scale, its JSON line printed.

    .venv/bin/python benchmarks/fleet_simulate.py --cameras 189000 --minutes 10

The reference (issue 3) is Moscow: 189,000 cameras, a heartbeat every 10 s and
60-s segments, at 1x real time or faster on 2 cores, checkpoint lag <= 2 s,
peak memory < 2 GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=20000)
    ap.add_argument("--minutes", type=float, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "custodes", "--data", str(Path(tmp) / "sim"), "simulate",
             "--cameras", str(args.cameras), "--minutes", str(args.minutes), "--json"],
            capture_output=True, check=True,
        )  # fmt: skip
    print(out.stdout.decode().strip().splitlines()[-1])


if __name__ == "__main__":
    main()
