"""Mirror benchmark: does ``custodes mirror serve`` keep up with a log appending 10,000 entries/s?

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/mirror_bench.py --rate 10000 --seconds 30 --preload 200000

An origin process serves a tlog-tiles log over HTTP (ThreadingHTTPServer,
tiles made with custodes.tlog from an in-memory tree) that appends
``--rate`` entries a second (about 110-byte JSON entries) and signs a new
checkpoint every ``--every`` seconds, as ``custodes serve --interval`` does.
``custodes mirror serve`` follows it as a user would start it (its own
process, polling every 0.2 s, fsync on).  The benchmark measures:

* catch-up: with ``--preload`` entries already published, how fast the
  mirror copies and verifies them from a cold start (entries a second);
* keeping up: for each checkpoint the origin publishes, how long until the
  mirror serves a checkpoint at least that large (lag; median, 95th
  percentile and the maximum), and the mirror's CPU time per entry (user +
  system from /proc), which says more than the wall clock on a busy machine.

It prints the machine (cores, load average before and after) with the figures.

``--verify N`` instead measures verification from tiles over HTTP with and
without compression, in the same run: a log of N entries is made with
``custodes log append`` and served by ``custodes serve``; then ``verify_log``
(what ``custodes verify --source URL`` runs) reads it ``--runs`` times each
way, alternating, with ``Accept-Encoding: gzip, identity`` (bundles come
gzip-compressed) and ``identity`` (they come plain).  Each run also prints
the CPU time an entry of the server (from /proc) and of the client (this
process and its worker processes), which on a shared machine say more than
the wall clock, and the load average when it started.  The summary gives the
medians of all runs, and apart from them the first run (the server's tile
cache cold: every tile read from its store once) and the median of the other
gzip runs (a long-running server's steady state); every identity run is warm.

``--push N`` measures tlog-mirror's write API instead: a log of N entries is
exported as tiles, and ``custodes.mirror.client.push`` (what ``custodes
mirror push`` runs) sends it to a fresh ``custodes mirror serve`` whose origin
is unreachable, ``--runs`` times: entries a second pushed (add-checkpoint,
then add-entries in requests of 32 gzip-compressed packages, each package
proven and fsynced by the mirror) and the mirror's CPU time per entry; then
``verify_log`` checks the mirror's copy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from custodes.tlog import (
    Checkpoint,
    MemoryTree,
    Signer,
    format_entry_bundle,
    format_hash_tile,
    generate_key,
    leaf_hash,
    parse_tile_path,
    sign_checkpoint,
)

ORIGIN = "bench.custodes.example/mirror"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _entry(i: int) -> bytes:
    return json.dumps(
        {"type": "recording.segment", "camera": f"cam-{i % 5000:05d}", "n": i, "sha256": "ab" * 20},
        separators=(",", ":"),
    ).encode()


class Origin:
    """An in-memory log that grows at ``rate`` entries a second and serves tlog-tiles."""

    def __init__(self, skey: str, rate: int, every: float, preload: int) -> None:
        self.signer = Signer.from_key(skey)
        self.rate, self.every = rate, every
        self.entries: list[bytes] = []
        self.tree = MemoryTree()
        self.lock = threading.Lock()
        self.grow(preload)
        self.publish()
        self.growing = False

    def grow(self, n: int) -> None:
        start = len(self.entries)
        new = [_entry(i) for i in range(start, start + n)]
        leaves = [leaf_hash(e) for e in new]
        with self.lock:
            self.entries.extend(new)
            for h in leaves:
                self.tree.append(h)

    def publish(self) -> None:
        with self.lock:
            cp = Checkpoint(origin=ORIGIN, size=self.tree.size, root_hash=self.tree.root())
            self.size = cp.size
            self.note = sign_checkpoint(cp, self.signer)
        sys.stdout.write(f"published {cp.size} {time.time():.6f}\n")
        sys.stdout.flush()

    def run(self) -> None:
        t0 = time.monotonic()
        made = 0
        nxt = t0 + self.every
        while True:
            if self.growing:
                want = int((time.monotonic() - t0) * self.rate)
                if want > made:
                    self.grow(want - made)
                    made = want
            else:
                t0 = time.monotonic()
            if time.monotonic() >= nxt:
                if self.growing:
                    self.publish()
                nxt += self.every
            time.sleep(0.005)

    def get(self, path: str) -> bytes | None:
        if path == "checkpoint":
            return self.note
        try:
            t = parse_tile_path(path)
        except Exception:  # noqa: BLE001
            return None
        start = t.index * 256
        with self.lock:
            if t.level < 0:
                if start + t.width > self.size:
                    return None
                return format_entry_bundle(self.entries[start : start + t.width])
            level = 8 * t.level
            if (start + t.width) << level > self.size:
                return None
            return format_hash_tile(
                self.tree.read_hashes([(level, start + j) for j in range(t.width)])
            )


def origin_main(port: int, skey: str, rate: int, every: float, preload: int) -> None:
    origin = Origin(skey, rate, every, preload)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/start":
                origin.growing = True
                body: bytes | None = b"ok"
            else:
                body = origin.get(self.path.removeprefix("/log/"))
            # One write for head and body (no Nagle / delayed-ACK stall between them).
            status = "200 OK" if body is not None else "404 Not Found"
            body = body or b""
            head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n"
            self.wfile.write(head.encode() + body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=origin.run, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve_forever()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and its children that ended (verify_log's workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _mirror_size(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
            return int(r.read())
    except OSError:
        return -1


def run(args: argparse.Namespace) -> dict[str, object]:
    skey, vkey = generate_key(ORIGIN)
    oport, mport = _free_port(), _free_port()
    load_before = os.getloadavg()
    origin = subprocess.Popen(
        [sys.executable, __file__, "--origin-only", str(oport), "--skey", skey,
         "--rate", str(args.rate), "--every", str(args.every), "--preload", str(args.preload)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert origin.stdout is not None
    published: list[tuple[int, float]] = []

    def read_origin() -> None:
        assert origin.stdout is not None
        for line in origin.stdout:
            if line.startswith("published"):
                _, size, at = line.split()
                published.append((int(size), float(at)))

    first = origin.stdout.readline()  # the preload's checkpoint
    assert first.startswith("published"), first
    assert origin.stdout.readline().strip() == "ready"
    threading.Thread(target=read_origin, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        mirror = subprocess.Popen(
            [sys.executable, "-m", "custodes", "mirror", "serve",
             "--log", f"http://127.0.0.1:{oport}/log", "--log-vkey", vkey,
             "--data", str(Path(tmp) / "m"), "--port", str(mport), "--interval", "0.2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{mport}"
        try:
            # catch-up from a cold start
            while _mirror_size(url) < 0:
                time.sleep(0.02)
            cpu0, t0 = _cpu(mirror.pid), time.perf_counter()
            while _mirror_size(url) < args.preload:
                time.sleep(0.02)
            catch_s = time.perf_counter() - t0
            catch_cpu = _cpu(mirror.pid) - cpu0
            # keeping up
            urllib.request.urlopen(f"http://127.0.0.1:{oport}/start", timeout=5).read()
            cpu1 = _cpu(mirror.pid)
            seen: dict[int, float] = {}
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                size = _mirror_size(url)
                now = time.time()
                for s, _at in list(published):
                    if s <= size and s not in seen:
                        seen[s] = now
                time.sleep(0.01)
            grown = published[-1][0] - args.preload if published else 0
            cpu_keep = _cpu(mirror.pid) - cpu1
            lags = [seen[s] - at for s, at in published if s in seen and s > args.preload]
            missed = [s for s, _ in published if s not in seen and s > args.preload]
        finally:
            mirror.terminate()
            mirror.wait(timeout=20)
            origin.terminate()
            origin.wait(timeout=20)
    lags.sort()
    return {
        "rate": args.rate,
        "catch_up_entries": args.preload,
        "catch_up_s": round(catch_s, 2),
        "catch_up_per_s": round(args.preload / catch_s),
        "catch_up_cpu_us_per_entry": round(catch_cpu / args.preload * 1e6, 2),
        "checkpoints": len(published) - 1,
        "entries_appended": grown,
        "mirrored_checkpoints": len(lags),
        "not_mirrored_at_end": len(missed),
        "lag_median_s": round(statistics.median(lags), 3) if lags else None,
        "lag_p95_s": round(lags[int(0.95 * (len(lags) - 1))], 3) if lags else None,
        "lag_max_s": round(lags[-1], 3) if lags else None,
        "keep_up_cpu_us_per_entry": round(cpu_keep / grown * 1e6, 2) if grown else None,
        "keep_up_cpu_share": round(cpu_keep / args.seconds, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
    }


def _wait(url: str, size: int = 0) -> None:
    for _ in range(6000):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if size == 0 or int(r.read() or 0) >= size:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def verify_main(n: int, runs: int, via: str, workers: int | None = None) -> None:
    """Verification from tiles over HTTP, gzip on and off, alternating in one run.

    ``via``: ``serve`` reads ``custodes serve`` itself; ``mirror`` first copies the
    log into ``custodes mirror serve`` and reads the mirror (static files, uvicorn).
    """
    import custodes.client.http as client_http
    from custodes.client.source import HttpSource
    from custodes.client.verify import verify_log
    from custodes.tlog import Verifier

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cli = [sys.executable, "-m", "custodes", "--data", str(data)]
        out = subprocess.run([*cli, "init", "--origin", ORIGIN], check=True, capture_output=True)
        vkey = out.stdout.decode().strip().splitlines()[-1]
        lines = Path(tmp) / "entries.jsonl"
        with open(lines, "wb") as f:
            for i in range(n):
                f.write(_entry(i) + b"\n")
        subprocess.run([*cli, "log", "append", str(lines)], check=True, capture_output=True)
        port = _free_port()
        server = subprocess.Popen(
            [*cli, "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        base = url + "/log"
        mirror = None
        try:
            _wait(url)
            if via == "mirror":
                mport = _free_port()
                mirror = subprocess.Popen(
                    [sys.executable, "-m", "custodes", "mirror", "serve", "--log", base,
                     "--log-vkey", vkey, "--data", str(Path(tmp) / "m"), "--port", str(mport)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                base = f"http://127.0.0.1:{mport}"
                t0 = time.perf_counter()
                _wait(base, n)
                print(json.dumps({"mirror_copied_s": round(time.perf_counter() - t0, 1)}))  # noqa: T201
            results: dict[str, list[float]] = {"gzip": [], "identity": [], "directory": []}
            cpu: dict[str, list[tuple[float, float]]] = {"gzip": [], "identity": []}
            served_by = mirror.pid if mirror is not None else server.pid
            load_before = os.getloadavg()
            for _ in range(runs):
                for mode, accept in (("gzip", "gzip, identity"), ("identity", "identity")):
                    client_http.ACCEPT_ENCODING = accept  # read per request; forked workers too
                    load = os.getloadavg()[0]
                    s0, c0 = _cpu(served_by), _own_cpu()
                    source = HttpSource(base)
                    r = verify_log(source, Verifier.from_key(vkey), workers=workers)
                    source.close()
                    s_us, c_us = (_cpu(served_by) - s0) / n * 1e6, (_own_cpu() - c0) / n * 1e6
                    assert r.size == n
                    results[mode].append(n / r.seconds)
                    cpu[mode].append((s_us, c_us))
                    print(json.dumps({"mode": mode, "entries_per_s": round(n / r.seconds),  # noqa: T201
                                      "server_cpu_us_per_entry": round(s_us, 2),
                                      "client_cpu_us_per_entry": round(c_us, 2),
                                      "load_1min": round(load, 2)}))  # fmt: skip
                if (
                    via == "mirror"
                ):  # the same tiles read from the mirror's files: the client's ceiling
                    from custodes.client.source import DirSource
                    from custodes.mirror import origin_hash

                    r = verify_log(
                        DirSource(Path(tmp) / "m" / origin_hash(ORIGIN)), Verifier.from_key(vkey)
                    )
                    results["directory"].append(n / r.seconds)
                    print(json.dumps({"mode": "directory", "entries_per_s": round(n / r.seconds)}))  # noqa: T201
            print(  # noqa: T201
                json.dumps(
                    {
                        "entries": n,
                        "via": via,
                        "workers": workers,
                        "median_gzip": round(statistics.median(results["gzip"])),
                        "median_identity": round(statistics.median(results["identity"])),
                        # The first run meets a cold cache (the server reads every tile from
                        # its store once); the others are a long-running server's steady state.
                        "cold_first_run_gzip": round(results["gzip"][0]),
                        "median_warm_gzip": round(statistics.median(results["gzip"][1:]))
                        if runs > 1
                        else None,
                        "median_directory": round(statistics.median(results["directory"]))
                        if results["directory"]
                        else None,
                        **{
                            f"median_{side}_cpu_us_per_entry_{mode}": round(
                                statistics.median(x[k] for x in cpu[mode]), 2
                            )
                            for mode in cpu
                            for k, side in enumerate(("server", "client"))
                        },
                        "load_before": [round(x, 2) for x in load_before],
                        "load_after": [round(x, 2) for x in os.getloadavg()],
                        "cores": os.cpu_count(),
                    }
                )
            )
        finally:
            if mirror is not None:
                mirror.terminate()
                mirror.wait(timeout=30)
            server.terminate()
            server.wait(timeout=30)


def push_main(n: int, runs: int) -> None:
    """Push a log of ``n`` entries to a fresh mirror ``runs`` times; entries a second."""
    from custodes.client.source import DirSource, HttpSource
    from custodes.client.verify import verify_log
    from custodes.mirror.client import push
    from custodes.tlog import Verifier

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cli = [sys.executable, "-m", "custodes", "--data", str(data)]
        out = subprocess.run([*cli, "init", "--origin", ORIGIN], check=True, capture_output=True)
        vkey = out.stdout.decode().strip().splitlines()[-1]
        lines = Path(tmp) / "entries.jsonl"
        with open(lines, "wb") as f:
            for i in range(n):
                f.write(_entry(i) + b"\n")
        subprocess.run([*cli, "log", "append", str(lines)], check=True, capture_output=True)
        export = Path(tmp) / "export"
        subprocess.run([*cli, "log", "export", str(export)], check=True, capture_output=True)
        rates: list[float] = []
        cpus: list[float] = []
        load_before = os.getloadavg()
        for run_no in range(runs):
            mport = _free_port()
            mirror = subprocess.Popen(
                [sys.executable, "-m", "custodes", "mirror", "serve", "--log",
                 f"http://127.0.0.1:{_free_port()}/log", "--log-vkey", vkey,
                 "--data", str(Path(tmp) / f"m{run_no}"), "--port", str(mport),
                 "--interval", "30"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                url = f"http://127.0.0.1:{mport}"
                _wait(url)
                cpu0 = _cpu(mirror.pid)
                t0 = time.perf_counter()
                result = push(url, DirSource(export), Verifier.from_key(vkey))
                seconds = time.perf_counter() - t0
                cpu = _cpu(mirror.pid) - cpu0
                assert result.size == n
                source = HttpSource(url)
                assert verify_log(source, Verifier.from_key(vkey)).size == n
                source.close()
            finally:
                mirror.terminate()
                mirror.wait(timeout=30)
            rates.append(n / seconds)
            cpus.append(cpu / n * 1e6)
            print(json.dumps({"run": run_no + 1, "pushed_per_s": round(n / seconds),  # noqa: T201
                              "requests": result.requests,
                              "mirror_cpu_us_per_entry": round(cpu / n * 1e6, 1)}))  # fmt: skip
        print(  # noqa: T201
            json.dumps(
                {
                    "entries": n,
                    "median_pushed_per_s": round(statistics.median(rates)),
                    "median_mirror_cpu_us_per_entry": round(statistics.median(cpus), 1),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()],
                    "cores": os.cpu_count(),
                }
            )
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--preload", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--verify", type=int, default=0, metavar="N", help="Measure verify_log instead.")
    p.add_argument("--via", choices=["serve", "mirror"], default="serve")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="With --verify: verify_log's worker processes (default: one a core, at most 8).",
    )
    p.add_argument(
        "--push", type=int, default=0, metavar="N", help="Measure pushes to a mirror instead."
    )
    p.add_argument("--origin-only", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--skey", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.origin_only is not None:
        origin_main(args.origin_only, args.skey, args.rate, args.every, args.preload)
        return
    if args.verify:
        verify_main(args.verify, args.runs, args.via, args.workers)
        return
    if args.push:
        push_main(args.push, args.runs)
        return
    for _ in range(args.runs):
        print(json.dumps(run(args)), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
