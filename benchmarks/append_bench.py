"""End-to-end append benchmark: JSON Lines in, durable signed log out.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/append_bench.py --entries 1000000 --runs 3 \
        [--pg postgresql://custodes:custodes@127.0.0.1:5432/custodes_test] [--big 10000000]

For each run it measures, on fresh instances:

* **floor**: one naive pass in this process that parses, canonicalises,
  hashes and inserts in durable batches (SQLite, synchronous=FULL);
* **sqlite**: ``custodes log append FILE`` end to end, checkpoint included;
* **checkpoint**: ``log append --no-checkpoint`` then ``log checkpoint``: the
  time to integrate and sign the whole batch;
* **verify**: ``log export`` then ``custodes verify`` from the tiles;
* **postgres** (with ``--pg``): ``log append`` end to end on PostgreSQL.

``--big N`` adds one append of N entries and samples the resident memory of
the whole process tree (parent and workers) every 50 ms.

It prints medians, and each figure's ratio to the floor of the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from custodes.records.canonical import canonicalize_line

CLI = [sys.executable, "-m", "custodes"]


def make_input(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            start = 1_793_577_600 + 60 * (i // 3150)
            f.write(
                json.dumps(
                    {
                        "type": "segment.recorded",
                        "v": 1,
                        "camera": f"msk-{i % 189000:06d}",
                        "start": start,
                        "duration": 60,
                        "bytes": 7_340_032 + i % 4096,
                        "sha256": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
                    }
                )
                + "\n"
            )


def floor(path: Path, workdir: Path) -> float:
    """The naive single pass: parse, canonicalise, hash, insert durably in batches."""
    db = sqlite3.connect(workdir / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE e (idx INTEGER PRIMARY KEY, data BLOB, leaf BLOB)")
    t0 = time.perf_counter()
    batch: list[tuple[int, bytes, bytes]] = []
    idx = 0
    sha = hashlib.sha256
    with open(path, "rb") as f:
        for line in f:
            canon = canonicalize_line(line)
            batch.append((idx, canon, sha(b"\x00" + canon).digest()))
            idx += 1
            if len(batch) == 10_000:
                db.execute("BEGIN")
                db.executemany("INSERT INTO e VALUES (?,?,?)", batch)
                db.execute("COMMIT")
                batch.clear()
    if batch:
        db.execute("BEGIN")
        db.executemany("INSERT INTO e VALUES (?,?,?)", batch)
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return idx / dt


def _init(data: Path, store: str | None = None) -> str:
    cmd = [*CLI, "--data", str(data), "init", "--origin", "bench.custodes.example/log"]
    if store:
        cmd += ["--store", store]
    out = subprocess.run(cmd, check=True, capture_output=True)
    return out.stdout.decode().split()[-1]


class TreeRss:
    """Samples the summed RSS of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _tree(self) -> list[int]:
        kids: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                kids.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            total = 0
            for p in self._tree():
                try:
                    with open(f"/proc/{p}/statm") as f:
                        total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                except OSError:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def timed(cmd: list[str], *, rss: bool = False) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = TreeRss(proc.pid) if rss else None
    _, err = proc.communicate()
    dt = time.perf_counter() - t0
    peak = sampler.stop() if sampler else 0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.decode()}")
    return dt, peak


def one_run(inp: Path, n: int, pg: str | None, work: Path) -> dict[str, float]:
    r: dict[str, float] = {}
    r["floor"] = floor(inp, work)
    data = work / "sqlite"
    vkey = _init(data)
    dt, _ = timed([*CLI, "--data", str(data), "log", "append", str(inp)])
    r["sqlite"] = n / dt
    data2 = work / "sqlite2"
    _init(data2)
    timed([*CLI, "--data", str(data2), "log", "append", "--no-checkpoint", str(inp)])
    dt, _ = timed([*CLI, "--data", str(data2), "log", "checkpoint"])
    r["checkpoint_s"] = dt
    tiles = work / "tiles"
    timed([*CLI, "--data", str(data), "log", "export", str(tiles)])
    out = subprocess.run(
        [*CLI, "verify", "--vkey", vkey, "--source", str(tiles), "--json"],
        check=True,
        capture_output=True,
    )
    r["verify"] = json.loads(out.stdout)["entries_per_second"]
    if pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        schema_url = f"{pg}{'&' if '?' in pg else '?'}schema={schema}"
        data3 = work / "pg"
        _init(data3, schema_url)
        dt, _ = timed([*CLI, "--data", str(data3), "log", "append", str(inp)])
        r["postgres"] = n / dt
        _drop_schema(pg, schema)
    return r


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", help="PostgreSQL URL; each run uses a fresh schema, dropped after")
    ap.add_argument("--big", type=int, default=0, help="also append this many, sampling RSS")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="custodes-bench-"))
    try:
        inp = root / "input.jsonl"
        make_input(inp, args.entries)
        runs = []
        for i in range(args.runs):
            work = root / f"run{i}"
            work.mkdir()
            r = one_run(inp, args.entries, args.pg, work)
            runs.append(r)
            print(f"run {i + 1}: " + ", ".join(f"{k}={v:,.2f}" for k, v in r.items()), flush=True)
            shutil.rmtree(work)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        ratio = statistics.median(r["sqlite"] / r["floor"] for r in runs)
        print(f"\nentries per run: {args.entries:,}; runs: {args.runs}; cores: {os.cpu_count()}")
        print(f"floor (single pass)          {med['floor']:>12,.0f} entries/s")
        print(
            f"sqlite end to end            {med['sqlite']:>12,.0f} entries/s  "
            f"(median ratio to floor {ratio:.2f}x)"
        )
        print(f"checkpoint after append      {med['checkpoint_s']:>12.2f} s")
        print(f"verify from tiles            {med['verify']:>12,.0f} entries/s")
        if args.pg:
            print(f"postgres end to end          {med['postgres']:>12,.0f} entries/s")
        if args.big:
            big = root / "big.jsonl"
            make_input(big, args.big)
            data = root / f"big-{uuid.uuid4().hex[:6]}"
            _init(data)
            dt, peak = timed([*CLI, "--data", str(data), "log", "append", str(big)], rss=True)
            print(
                f"append {args.big:,} entries     {args.big / dt:>12,.0f} entries/s, "
                f"peak RSS of the process tree {peak / 2**20:,.0f} MiB"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
