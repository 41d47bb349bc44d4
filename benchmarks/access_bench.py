"""Release decisions per second: every check again, then a durable ``access.released`` entry.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/access_bench.py --decisions 6000 --threads 32 --runs 3
    .venv/bin/python benchmarks/access_bench.py --decisions 6000 --rate 1000 --runs 3

A *release decision* is what :meth:`AccessService.release` does once the
clip is built and before it is handed over (ffmpeg and redaction are left
out): :meth:`~custodes.access.service.AccessService.commit_release` checks
everything again under the request's lock (the requester is still active
and in scope; the approval is complete, unexpired and not yet used; every
approver is still active, still deciding and in scope; the cameras and
window lie inside what was approved) and returns only once the
``access.released`` entry is durably sequenced in the log (SQLite, WAL,
``synchronous=FULL``).  Concurrent decisions share one commit (group
commit).  The first check, which plans the clip before it is cut
(:meth:`~custodes.access.service.AccessService.check_release`), is made
during set-up, as it would be before ffmpeg runs.

Set-up (not timed): a fresh instance with three cameras, one investigator,
one approver, and ``--decisions`` approved requests.  Then, per run, each
request is released once:

* closed loop (``--threads N``): N workers release as fast as they can; the
  figure is decisions per second, with latency percentiles;
* open loop (``--rate R``): decisions start on a fixed schedule of R per
  second, whatever the previous ones are doing; latency counts from the
  scheduled start, so queueing delay is included.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from custodes.access.identity import Identities, Scope, User
from custodes.access.service import AccessService, ReleasePlan, RequestInput
from custodes.access.users import add_user
from custodes.fleet.model import Camera, now_ms
from custodes.fleet.ops import import_cameras
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance
from custodes.web.service import LedgerService

CAMERAS = (
    Camera(id="cam-1", lat=55.76, lon=37.61, district="north"),
    Camera(id="cam-2", lat=55.761, lon=37.612, district="north"),
    Camera(id="cam-3", lat=55.70, lon=37.60, district="south"),
)
SEGMENTS = [secrets.token_hex(32) for _ in range(3)]
REDACTION = {"faces": True, "plates": False, "method": "blur"}


def setup(folder: Path, n: int) -> tuple[LedgerService, AccessService, User, list[str]]:
    inst = Instance.init(folder / "data", origin="bench.custodes.example/log")
    ledger = LedgerService(inst, interval=1.0)
    ledger.start()  # integrate and sign in the background, as the server does
    fleet = FleetDB.for_instance(inst.path)
    ids = Identities(inst.path)
    ledger.write(lambda log: import_cameras(log, fleet, CAMERAS))
    inv, _ = ledger.write(lambda log: add_user(log, ids, "ivan", "investigator", Scope()))
    appr, _ = ledger.write(lambda log: add_user(log, ids, "anna", "approver", Scope()))
    svc = AccessService(ledger, fleet, ids, inst.path)
    start = now_ms() - 3_600_000
    inp = RequestInput(
        from_ms=start,
        to_ms=start + 600_000,
        purpose="investigation",
        case="CASE-2026-0001",
        justification="benchmark",
        cameras=("cam-1", "cam-2"),
    )
    ids_out: list[str] = []
    lock = threading.Lock()

    def make(k: int) -> None:
        for _ in range(k):
            rid = svc.request(inv, inp)
            svc.approve(appr, rid)
            with lock:
                ids_out.append(rid)

    workers = [threading.Thread(target=make, args=(n // 16 + (i < n % 16),)) for i in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for rid in ids_out:
        PLANS[rid] = svc.check_release(inv, rid)
    return ledger, svc, inv, ids_out


PLANS: dict[str, ReleasePlan] = {}


def decide(svc: AccessService, user: User, rid: str) -> None:
    svc.commit_release(user, PLANS[rid], SEGMENTS, REDACTION, secrets.token_hex(32), 1_234_567)


def closed_loop(
    svc: AccessService, user: User, rids: list[str], threads: int
) -> tuple[float, list[float]]:
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for r in rids:
        todo.put(r)
    lat: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        while True:
            try:
                rid = todo.get_nowait()
            except queue.Empty:
                break
            t = time.perf_counter()
            decide(svc, user, rid)
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, lat


def open_loop(
    svc: AccessService, user: User, rids: list[str], rate: float
) -> tuple[float, list[float]]:
    """Start decision i at t0 + i/rate on a pool of workers; latency from the scheduled start."""
    todo: queue.SimpleQueue[tuple[str, float] | None] = queue.SimpleQueue()
    lat: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        while (item := todo.get()) is not None:
            rid, due = item
            decide(svc, user, rid)
            mine.append(time.perf_counter() - due)
        with lock:
            lat.extend(mine)

    pool = [threading.Thread(target=work) for _ in range(64)]
    for t in pool:
        t.start()
    t0 = time.perf_counter()
    for i, rid in enumerate(rids):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        todo.put((rid, due))
    for _ in pool:
        todo.put(None)
    for t in pool:
        t.join()
    return time.perf_counter() - t0, lat


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=32, help="closed loop: concurrent workers")
    ap.add_argument("--rate", type=float, default=0.0, help="open loop: decisions per second")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(
        f"# {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cpus,"
        f" load {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    rates, p50s, p99s = [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="access-bench-") as tmp:
            ledger, svc, user, rids = setup(Path(tmp), args.decisions)
            before = ledger.read(lambda log: log.store.next_index())
            if args.rate:
                wall, lat = open_loop(svc, user, rids, args.rate)
            else:
                wall, lat = closed_loop(svc, user, rids, args.threads)
            after = ledger.read(lambda log: log.store.next_index())
            assert after - before == len(rids), "every decision must have logged one entry"
            svc.close()
            ledger.close()
        rate = len(rids) / wall
        rates.append(rate)
        p50s.append(pct(lat, 50) * 1000)
        p99s.append(pct(lat, 99) * 1000)
        print(
            f"run {run + 1}: {rate:,.0f} decisions/s, p50 {p50s[-1]:.1f} ms,"
            f" p99 {p99s[-1]:.1f} ms, max {max(lat) * 1000:.1f} ms, load {os.getloadavg()[0]:.2f}"
        )
    print(
        f"median: {statistics.median(rates):,.0f} decisions/s,"
        f" p50 {statistics.median(p50s):.1f} ms,"
        f" p99 {statistics.median(p99s):.1f} ms"
    )


if __name__ == "__main__":
    main()
