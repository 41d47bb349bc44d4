"""The fleet benchmark: `custodes simulate` at a given scale, with the median of its runs.

    .venv/bin/python benchmarks/fleet_simulate.py --cameras 189000 --minutes 10 --runs 3
    .venv/bin/python benchmarks/fleet_simulate.py --cameras 189000 --minutes 10 --custody 2/3
    .venv/bin/python benchmarks/fleet_simulate.py --cameras 189000 --minutes 10 --custody 2/3 \\
        --store postgresql://USER:PASS@HOST/DB

The reference (issue 3) is Moscow: 189,000 cameras, a heartbeat every 10 s and
60-s segments, at 1x real time or faster on 2 cores, checkpoint lag <= 2 s,
peak memory < 2 GB; issue 12 asks the same with custody on, on SQLite and on
PostgreSQL.  Each run starts from a fresh data directory (and, with --store, a
fresh schema in that database, dropped afterwards).  Prints each run's JSON line
and the load average around it, then one JSON line of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace, tmp: Path, n: int) -> dict[str, Any]:
    data = tmp / f"sim{n}"
    cli = [sys.executable, "-m", "custodes", "--data", str(data)]
    schema = f"bench_sim_{os.getpid()}_{n}"
    if args.store:
        sep = "&" if "?" in args.store else "?"
        subprocess.run(
            [*cli, "init", "--store", f"{args.store}{sep}schema={schema}"],
            capture_output=True, check=True,
        )  # fmt: skip
    extra = ["--custody", args.custody] if args.custody else []
    extra += ["--checkpoint-interval", str(args.checkpoint_interval)]
    try:
        out = subprocess.run(
            [*cli, "simulate", "--cameras", str(args.cameras), "--minutes", str(args.minutes),
             *extra, "--json"],
            capture_output=True,
        )  # fmt: skip
    finally:
        if args.store:
            _drop_schema(args.store, schema)
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        sys.exit(f"run {n + 1}: simulate failed: {err[-1] if err else 'no output'}")
    rep: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return rep


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    from custodes.ledger.open_store import _split_schema

    with psycopg.connect(_split_schema(url)[0], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # our own generated name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=20000)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--custody", metavar="T/N", help="run with N real custodians, T of N")
    ap.add_argument("--store", metavar="URL", help="a postgresql:// URL (default: SQLite)")
    ap.add_argument("--runs", type=int, default=1, help="runs, one after another (median)")
    ap.add_argument("--checkpoint-interval", type=float, default=0.5,
                    help="the server's seconds between checkpoints (default 0.5)")  # fmt: skip
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.store and not args.store.startswith(("postgresql://", "postgres://")):
        ap.error("--store takes a postgresql:// URL; leave it out for SQLite")
    reps = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            before = os.getloadavg()[0]
            rep = _run(args, Path(tmp), n)
            rep["load_before"], rep["load_after"] = round(before, 2), round(os.getloadavg()[0], 2)
            print(json.dumps(rep), flush=True)
            reps.append(rep)
    keys = ("realtime_factor", "checkpoint_lag_s_max", "peak_rss_mb", "server_peak_rss_mb")
    med = {f"median_{k}": round(statistics.median(r[k] for r in reps), 3) for k in keys}
    print(json.dumps({"runs": len(reps), "store": "postgresql" if args.store else "sqlite",
                      "custody": args.custody,
                      "checkpoint_interval": args.checkpoint_interval, **med}))  # fmt: skip


if __name__ == "__main__":
    main()
