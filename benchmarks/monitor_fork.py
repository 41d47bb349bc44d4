"""How fast a monitor catches a fork, in checkpoint intervals.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/monitor_fork.py --trials 10 --interval 1.0

Each trial makes a real instance, copies its data directory (a "backup"), and
runs a publisher that appends ``--rate`` entries a second, signs a checkpoint
every ``--interval`` seconds and publishes the tiles to a directory, as a CDN
would serve them.  A monitor (``custodes.monitor.Monitor`` over that
directory, the same code as ``custodes monitor --source DIR``) runs a round
every ``--interval`` seconds, like ``custodes monitor --interval``.

At a random moment the operator "restores the backup and carries on": the
backup appends other entries, signs with the same key and is published in
place of the real tree (an atomic switch of the published directory).  The
figure is the time from that switch to the monitor's ``fork`` alert (or
``rollback``, had the other history been shorter), divided
by the checkpoint interval; the target is at most 1.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from custodes.client.source import DirSource
from custodes.ledger.instance import Instance
from custodes.ledger.publish import export_tiles
from custodes.monitor import Monitor
from custodes.tlog import Verifier


def _publish(inst: Instance, out: Path) -> None:
    with inst.open_log() as log:
        log.integrate()
    export_tiles(inst.reader(), out)


def _append(inst: Instance, n: int, tag: str) -> None:
    with inst.open_log() as log:
        log.append([f'{{"type":"bench","tag":"{tag}","i":{i}}}'.encode() for i in range(n)])


def trial(root: Path, interval: float, rate: int, seed: int) -> float:
    rng = random.Random(seed)
    real = Instance.init(root / "real", origin="bench.custodes.example/log")
    _append(real, 50_000, "base")
    pub_real, pub_evil, link = root / "pub-real", root / "pub-evil", root / "published"
    _publish(real, pub_real)
    os.symlink(pub_real, link)
    shutil.copytree(root / "real", root / "backup")
    backup = Instance.load(root / "backup")
    monitor = Monitor(source=DirSource(link), verifier=Verifier.from_key(real.verifier_key))
    assert monitor.round() == []
    caught = threading.Event()
    caught_at = [0.0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if any(a.kind in ("fork", "rollback") for a in monitor.round()):
                caught_at[0] = time.monotonic()
                caught.set()
                return
            stop.wait(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    per_tick = max(1, int(rate * interval))
    # The real log moves on for a few intervals; the backup makes its own history.
    for _ in range(rng.randint(2, 4)):
        t0 = time.monotonic()
        _append(real, per_tick, "real")
        _publish(real, pub_real)
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
    _append(backup, per_tick * 6, "evil")  # larger: a fork, not a rollback
    _publish(backup, pub_evil)
    time.sleep(rng.uniform(0, interval))
    tmp_link = root / "published.new"
    os.symlink(pub_evil, tmp_link)
    switched = time.monotonic()
    os.replace(tmp_link, link)
    if not caught.wait(10 * interval):
        stop.set()
        raise SystemExit("the monitor did not catch the fork within 10 intervals")
    stop.set()
    watcher.join()
    return (caught_at[0] - switched) / interval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--interval", type=float, default=1.0, help="checkpoint and monitor interval")
    ap.add_argument("--rate", type=int, default=2000, help="entries appended a second")
    args = ap.parse_args()
    ratios = []
    for i in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="monitor-fork-") as tmp:
            r = trial(Path(tmp), args.interval, args.rate, seed=i)
        ratios.append(r)
        print(f"trial {i + 1}: caught after {r:.2f} checkpoint intervals", flush=True)
    print(
        f"median {statistics.median(ratios):.2f}, max {max(ratios):.2f} checkpoint intervals"
        f" ({args.interval:g} s; {args.rate} entries/s)"
    )


if __name__ == "__main__":
    main()
