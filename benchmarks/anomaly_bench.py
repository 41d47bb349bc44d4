"""Anomaly rules: the wall time of one :func:`custodes.access.anomaly.evaluate` over a city's month.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/anomaly_bench.py --requests 50000 --runs 5

The facts are made first (seeded, not timed): ``--requests`` requests over 35
days (the longest span a rule looks at: 7 days and the 4 weeks before) by 2,000
investigators at different paces, under cases of one to three requests, each
case in its own place among about 170,000 cells of 100 m, mostly in working
hours; one in a hundred touches a sensitive zone, about one in three hundred
is a dragnet; every request is decided once and one in ten twice, by 300
approvers, three of them rubber stamps; one investigator adds a week of bulk
requests (``--requests`` / 300) at the end, so that every rule has work to
report.  Then ``evaluate`` runs ``--runs`` times on the same facts (shuffled
differently each time) and the script prints each run's wall and CPU time,
the medians, and how many flags each rule raised.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from custodes.access.anomaly import (
    AnomalyConfig,
    DecisionFacts,
    RequestFacts,
    cell_of,
    evaluate,
)

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)


def make_facts(
    n: int, seed: int, days: int = 35
) -> tuple[list[RequestFacts], list[DecisionFacts], int]:
    """``n`` requests and their decisions over ``days`` days; returns them and the end time."""
    rng = random.Random(seed)
    users = [f"u-{rng.getrandbits(64):016x}" for _ in range(2000)]
    pace = [rng.uniform(0.5, 1.5) for _ in users]
    approvers = [f"u-{rng.getrandbits(64):016x}" for _ in range(300)]
    end = START + days * DAY
    reqs: list[RequestFacts] = []
    decs: list[DecisionFacts] = []
    burst = max(0, n // 300)  # one investigator's week of bulk requests: the volume rule's work
    while len(reqs) < n - burst:
        who = rng.choices(users, pace)[0]
        case = f"{rng.getrandbits(128):032x}"
        cell = cell_of(rng.uniform(55.55, 55.95), rng.uniform(37.30, 37.90))
        at = START + rng.randrange(days) * DAY + int(rng.uniform(7, 21) * HOUR)
        if rng.random() < 0.02:
            at = at - at % DAY + int(rng.uniform(0, 5) * HOUR)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            if at >= end or len(reqs) >= n - burst:
                break
            cams = rng.randint(1, 8) if rng.random() > 0.002 else 120
            to_ms = at - rng.randrange(HOUR, 3 * DAY)
            r = RequestFacts(
                request=f"r-{len(reqs):07d}",
                requester=who,
                created_ms=at,
                purpose=rng.choice(("investigation", "missing-person", "public-safety")),
                case_key=case,
                cameras=tuple(f"cam-{cell}-{k}" for k in range(cams)),
                cells=(cell,),
                from_ms=to_ms - rng.choice((15, 30, 60, 120, 360)) * MINUTE,
                to_ms=to_ms,
                sensitive=rng.random() < 0.01,
                assembly=rng.random() < 0.002,
            )
            reqs.append(r)
            first = rng.choice(approvers)
            wait = max(90_000, int(math.exp(rng.gauss(math.log(20 * MINUTE), 0.9))))
            fast = first in approvers[:3]  # three rubber stamps among the approvers
            ok = fast or rng.random() < 0.87
            decs.append(DecisionFacts(r.request, first, at, at + (8_000 if fast else wait), ok))
            if ok and rng.random() < 0.1:
                decs.append(
                    DecisionFacts(r.request, rng.choice(approvers), at, at + 2 * wait, True)
                )
            at += rng.randrange(2 * HOUR, 2 * DAY)
    for i in range(burst):
        at = end - DAY * (1 + i % 6) + 9 * HOUR + i * MINUTE
        r = reqs[rng.randrange(len(reqs))]
        reqs.append(replace(r, request=f"r-{len(reqs):07d}", requester=users[0], created_ms=at))
    return reqs, decs, end


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    reqs, decs, end = make_facts(args.requests, args.seed)
    cfg = AnomalyConfig()
    people, cells = len({r.requester for r in reqs}), len({r.cells[0] for r in reqs})
    print(f"{len(reqs):,} requests, {len(decs):,} decisions", end=", ")
    print(f"{people:,} requesters, {cells:,} cells")
    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, load {load:.1f}")
    times, cpus = [], []
    flags = []
    for run in range(args.runs):
        shuffled = list(reqs)
        random.Random(run).shuffle(shuffled)
        t0, c0 = time.perf_counter(), time.process_time()
        flags = evaluate(shuffled, decs, cfg, end)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print(f"run {run + 1}: {times[-1]:.3f} s wall, {cpus[-1]:.3f} s cpu, {len(flags)} flags")
    wall, cpu = statistics.median(times), statistics.median(cpus)
    print(f"median of {args.runs}: {wall:.3f} s wall, {cpu:.3f} s cpu")
    print("flags by rule:", dict(sorted(Counter(f.rule for f in flags).items())))


if __name__ == "__main__":
    main()
