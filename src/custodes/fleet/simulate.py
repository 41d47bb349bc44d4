"""A synthetic city driven through the real ingest path, for tests and benchmarks.

1. Build a city: districts on a grid around a centre, cameras placed at random
   in them, registered through :func:`custodes.fleet.ops.import_cameras`.
2. Register recorder agents, one per ``cameras_per_agent`` cameras.
3. Start ``custodes serve`` in a subprocess whose fleet clock is the
   simulation's (``CUSTODES_SIM_CLOCK``): simulated time starts ``minutes`` in
   the past, so every timestamp is one a real server would take.
4. Every simulated ``heartbeat_s``, each agent posts one heartbeat batch for its
   cameras that are up, and the segments that ended (each camera ends a
   ``segment_s`` segment once per segment, staggered).  Random faults take
   cameras down for a while; some are announced as maintenance beforehand.
5. Measure: wall time, checkpoint lag (from a batch's acknowledgement to the
   first signed checkpoint that covers it) and peak memory of both processes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import random
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.errors import UsageError
from custodes.fleet.model import Camera, Capabilities, format_time, now_ms
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance

__all__ = ["SimConfig", "simulate"]


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    cameras: int
    minutes: float
    speed: float | None = None  # None: as fast as it goes
    heartbeat_s: int = 10
    segment_s: int = 60
    cameras_per_agent: int = 2000
    fault_rate: float = 0.0005  # per camera per heartbeat step
    seed: int = 1
    centre: tuple[float, float] = (55.7558, 37.6173)


def _city(cfg: SimConfig, rng: random.Random) -> list[Camera]:
    side = max(1, math.isqrt(max(1, cfg.cameras // 2000)))
    span = 0.25  # degrees of latitude across the city
    cams = []
    for i in range(cfg.cameras):
        dx, dy = rng.randrange(side), rng.randrange(side)
        lat = cfg.centre[0] - span / 2 + (dx + rng.random()) * span / side
        lon = cfg.centre[1] - span + (dy + rng.random()) * 2 * span / side
        cams.append(
            Camera(
                id=f"SIM-{i:06d}",
                lat=round(lat, 6),
                lon=round(lon, 6),
                direction=float(rng.randrange(0, 360, 15)),
                type=rng.choice(("fixed", "dome", "panning")),
                capabilities=Capabilities(audio=rng.random() < 0.1, ptz=rng.random() < 0.2),
                operator="Synthetic City",
                legal_basis="simulation",
                district=f"D{dx:02d}{dy:02d}",
            )
        )
    return cams


class _Client:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for attempt in range(3):
            try:
                conn.request("POST", path, body=data, headers=headers)
                resp = conn.getresponse()
                payload: dict[str, Any] = json.loads(resp.read())
                if resp.status != 200:
                    raise UsageError(f"the server answered {resp.status}: {payload}")
                return payload
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _peak_rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def simulate(data: Path, cfg: SimConfig, *, say: Any = lambda s: None) -> dict[str, Any]:
    from custodes.fleet.ops import add_agent, import_cameras

    rng = random.Random(cfg.seed)
    if not (data / "custodes.json").exists():
        Instance.init(data, origin=f"simulate.custodes.local/{cfg.seed}")
    inst = Instance.load(data)
    cams = _city(cfg, rng)
    n_agents = max(1, math.ceil(cfg.cameras / cfg.cameras_per_agent))
    with inst.open_log(hint="the simulator needs the data directory to itself") as log:
        db = FleetDB.for_instance(inst.path)
        try:
            t0 = time.monotonic()
            import_cameras(log, db, cams)
            tokens = [add_agent(log, db, f"sim-recorder-{a}")[1] for a in range(n_agents)]
            log.integrate()
            say(f"registered {len(cams)} cameras in {time.monotonic() - t0:.1f} s")
        finally:
            db.close()

    step_ms = cfg.heartbeat_s * 1000
    total_ms = int(cfg.minutes * 60_000)
    start = now_ms() - total_ms - 120_000
    start -= start % step_ms
    clock = data / "sim.clock"
    clock.write_bytes(start.to_bytes(8, "big"))
    port = _free_port()
    env = {**os.environ, "CUSTODES_SIM_CLOCK": str(clock)}
    server = subprocess.Popen(
        [sys.executable, "-m", "custodes", "--data", str(data), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        return _drive(cfg, rng, cams, tokens, port, start, step_ms, total_ms, clock, server, say)
    finally:
        server.terminate()
        server.wait(timeout=60)


def _drive(
    cfg: SimConfig,
    rng: random.Random,
    cams: list[Camera],
    tokens: list[str],
    port: int,
    start: int,
    step_ms: int,
    total_ms: int,
    clock: Path,
    server: subprocess.Popen[bytes],
    say: Any,
) -> dict[str, Any]:
    client = _Client(port)
    per = cfg.cameras_per_agent
    groups = [list(range(a * per, min(len(cams), (a + 1) * per))) for a in range(len(tokens))]
    down_until = [0] * len(cams)
    seg_every = max(1, cfg.segment_s // cfg.heartbeat_s)
    acked: list[tuple[float, int]] = []
    lag_max = 0.0
    stop = threading.Event()

    def watch_checkpoints() -> None:
        nonlocal lag_max
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set() or acked:
            conn.request("GET", "/log/checkpoint")
            body = conn.getresponse().read().decode()
            size = int(body.splitlines()[1])
            now = time.monotonic()
            while acked and acked[0][1] < size:
                lag_max = max(lag_max, now - acked.pop(0)[0])
            if stop.is_set() and acked and now - acked[0][0] > 30:
                break
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_checkpoints, daemon=True)
    watcher.start()
    heartbeats = segments = 0
    wall0 = time.monotonic()
    t = start
    step = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while t < start + total_ms:
            t += step_ms
            step += 1
            clock.write_bytes(t.to_bytes(8, "big"))
            for i in range(len(cams)):
                if down_until[i] < t and rng.random() < cfg.fault_rate:
                    down_until[i] = t + rng.randrange(2, 20) * 60_000
            stamp = format_time(t)
            seg_start = format_time(t - cfg.segment_s * 1000)

            def send(
                a: int, t: int = t, stamp: str = stamp, seg_start: str = seg_start, step: int = step
            ) -> tuple[int, int, list[int]]:
                live = [i for i in groups[a] if down_until[i] < t]
                beats = [{"camera": cams[i].id, "time": stamp} for i in live]
                client.post("/fleet/heartbeats", tokens[a], {"heartbeats": beats})
                segs = [
                    {
                        "camera": cams[i].id,
                        "start": seg_start,
                        "duration": cfg.segment_s,
                        "bytes": 1_000_000 + i,
                        "sha256": hashlib.sha256(f"{i}/{t}".encode()).hexdigest(),
                    }
                    for i in live
                    if i % seg_every == step % seg_every
                ]
                indexes = []
                for k in range(0, len(segs), 5000):
                    r = client.post("/fleet/segments", tokens[a], {"segments": segs[k : k + 5000]})
                    if r.get("index") is not None:
                        indexes.append(int(r["index"]))
                return len(beats), len(segs), indexes

            for nb, ns, idx in pool.map(send, range(len(groups))):
                heartbeats += nb
                segments += ns
                acked.extend((time.monotonic(), i) for i in idx)
            acked.sort(key=lambda x: x[1])
            if cfg.speed:
                ahead = (t - start) / 1000 / cfg.speed - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
            if step % 30 == 0:
                say(f"simulated {(t - start) / 60000:.1f} min in {time.monotonic() - wall0:.1f} s")
    wall = time.monotonic() - wall0
    stop.set()
    watcher.join(timeout=60)
    simulated = total_ms / 1000
    return {
        "cameras": len(cams),
        "agents": len(tokens),
        "simulated_seconds": simulated,
        "wall_seconds": round(wall, 3),
        "realtime_factor": round(simulated / wall, 3) if wall else None,
        "heartbeats": heartbeats,
        "segments": segments,
        "checkpoint_lag_s_max": round(lag_max, 3),
        "peak_rss_mb": round(max(_peak_rss_mb(), _peak_rss_mb(server.pid)), 1),
        "server_peak_rss_mb": round(_peak_rss_mb(server.pid), 1),
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise UsageError("the simulated server did not start within a minute")
        time.sleep(0.1)
