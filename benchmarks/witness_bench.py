"""Witness throughput: C2SP add-checkpoint requests a second on loopback.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/witness_bench.py --logs 64 --steps 150 --runs 3

Each run makes a fresh witness (``custodes witness init`` / ``add-log``) for
``--logs`` logs and starts ``custodes witness serve`` as a user would. The
requests are prepared first: for every log, ``--steps`` signed checkpoints of
growing size, each with the consistency proof from the one before. Then one
client process (asyncio, keep-alive) opens one connection per log and sends
each log's requests in order, all logs at once, so every request is a real
state change: signature and proof checked, a compare-and-swap committed
durably (SQLite, synchronous=FULL, group commit), then cosigned. Every answer
must be 200. It prints each run's rate and the median, and the server's CPU
time a request (user + system, all threads, from /proc): on a shared or
busy machine the wall-clock rate says more about the neighbours than about
the witness, while the CPU time a request does not.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from custodes.tlog import Checkpoint, MemoryTree, Signer, generate_key, leaf_hash, sign_checkpoint
from custodes.witness import add_log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(data: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "custodes", "--data", str(data), *args],
        check=True,
        capture_output=True,
    )
    return out.stdout.decode()


def prepare(logs: int, steps: int) -> list[tuple[str, str, list[bytes]]]:
    """For each log: (origin, vkey, the HTTP requests in order)."""
    out = []
    for i in range(logs):
        origin = f"bench.example/log{i}"
        skey, vkey = generate_key(origin)
        signer = Signer.from_key(skey)
        tree = MemoryTree()
        requests: list[bytes] = []
        old = 0
        for step in range(steps):
            for j in range(1 + step % 3):
                tree.append(leaf_hash(f"{origin} {step} {j}".encode()))
            size = tree.size
            note = sign_checkpoint(
                Checkpoint(origin=origin, size=size, root_hash=tree.root()), signer
            )
            proof = tree.prove_consistency(old, size) if old else []
            body = b"\n".join([f"old {old}".encode()] + [base64.b64encode(h) for h in proof])
            body += b"\n\n" + note
            requests.append(
                b"POST /add-checkpoint HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            old = size
        out.append((origin, vkey, requests))
    return out


async def _drive(port: int, requests: list[bytes]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    for req in requests:
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        if status != 200:
            raise SystemExit(f"a request answered {status}")
        ok += 1
    writer.close()
    return ok


async def _load(port: int, work: list[list[bytes]]) -> int:
    counts = await asyncio.gather(*(_drive(port, reqs) for reqs in work))
    return sum(counts)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(work: list[tuple[str, str, list[bytes]]]) -> tuple[float, float]:
    """(requests a second, server CPU seconds a request) for one fresh witness."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "witness"
        _cli(data, "witness", "init", "--name", "bench.example/witness")
        for origin, vkey, _ in work:  # what 'witness add-log' does, without a process each
            add_log(data, origin, vkey)
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "custodes",
                "--data",
                str(data),
                "witness",
                "serve",
                "--port",
                str(port),
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            cpu0 = _cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            try:
                import uvloop  # type: ignore[import-not-found,unused-ignore]

                done = uvloop.run(_load(port, [w[2] for w in work]))
            except ImportError:
                done = asyncio.run(_load(port, [w[2] for w in work]))
            seconds = time.perf_counter() - t0
            cpu = _cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait()
    return done / seconds, cpu / done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=64, help="logs, one client connection each")
    ap.add_argument("--steps", type=int, default=150, help="checkpoints per log")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = prepare(args.logs, args.steps)
    total = args.logs * args.steps
    print(f"prepared {total} requests in {time.perf_counter() - t0:.1f} s; cpus={os.cpu_count()}")
    rates = []
    costs = []
    for run in range(args.runs):
        rate, cost = one_run(work)
        rates.append(rate)
        costs.append(cost)
        print(
            f"run {run + 1}: {total} add-checkpoint in {total / rate:.2f} s = {rate:,.0f} req/s;"
            f" server CPU {cost * 1e6:.0f} us a request"
        )
    print(f"median: {statistics.median(rates):,.0f} req/s over {args.runs} runs")
    cost = statistics.median(costs)
    print(
        f"server CPU: {cost * 1e6:.0f} us a request, so one core's worth serves"
        f" {1 / cost:,.0f} req/s (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
