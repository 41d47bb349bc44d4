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
5. Measure: wall time, checkpoint lag (from the moment a segment batch's answer
   arrives, with its log index, to the moment a poll of ``/log/checkpoint``, every
   50 ms, first sees a signed checkpoint that covers it) and peak memory of both
   processes.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custodes.errors import UsageError
from custodes.fleet.model import Camera, Capabilities, format_time, now_ms
from custodes.fleet.registry import FleetDB
from custodes.fleet.sim_custody import SimCustody, start_custody
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
    shards: int = 1  # > 1: a shard set split by district, one server (sequencer) per shard
    custody: tuple[int, int] | None = None  # (T, N): N real custodians, T of N, make the keys
    checkpoint_interval: float = 0.5  # the server's --interval: seconds between checkpoints


def _city(cfg: SimConfig, rng: random.Random) -> list[Camera]:
    side = max(1, math.isqrt(max(1, cfg.cameras // 2000)))
    if cfg.shards > 1:  # at least four districts a shard, so each shard gets whole districts
        side = max(side, math.ceil(math.sqrt(4 * cfg.shards)))
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


@dataclass
class _Shard:
    """One log the simulation drives: its directory, server and agents."""

    data: Path
    cams: list[int]  # indexes into the city's cameras
    tokens: list[str] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)
    port: int = 0
    server: subprocess.Popen[bytes] | None = None


def _register(shard: _Shard, cams: list[Camera], cfg: SimConfig, name: str) -> None:
    from custodes.fleet.ops import add_agent, import_cameras

    inst = Instance.load(shard.data)
    mine = [cams[i] for i in shard.cams]
    n_agents = max(1, math.ceil(len(mine) / cfg.cameras_per_agent))
    with inst.open_log(hint="the simulator needs the data directory to itself") as log:
        db = FleetDB.for_instance(inst.path)
        try:
            import_cameras(log, db, mine)
            per = cfg.cameras_per_agent
            shard.groups = [shard.cams[a * per : (a + 1) * per] for a in range(n_agents)]
            shard.tokens = [
                add_agent(log, db, f"sim-recorder-{name}{a}", cameras=[cams[i].id for i in group])[
                    1
                ]
                for a, group in enumerate(shard.groups)
            ]
            log.integrate()
        finally:
            db.close()


def simulate(data: Path, cfg: SimConfig, *, say: Any = lambda s: None) -> dict[str, Any]:
    """Run the simulation; with ``cfg.shards`` > 1, over a shard set split by district."""
    rng = random.Random(cfg.seed)
    cams = _city(cfg, rng)
    if cfg.shards == 1:
        if not (data / "custodes.json").exists():
            Instance.init(data, origin=f"simulate.custodes.local/{cfg.seed}")
        shards = [_Shard(data, list(range(len(cams))))]
        names = [""]
    else:
        from custodes.ledger.shards import ShardSet

        sset = ShardSet.init(data, f"simulate.custodes.local/{cfg.seed}")
        names = [f"s{k}" for k in range(cfg.shards)]
        by_shard: list[list[int]] = [[] for _ in names]
        districts = sorted({cam.district or "" for cam in cams})
        shard_of = {d: k % cfg.shards for k, d in enumerate(districts)}  # whole districts
        for i, cam in enumerate(cams):
            by_shard[shard_of[cam.district or ""]].append(i)
        shards = []
        for name, idx in zip(names, by_shard, strict=True):
            sset.add(name)
            shards.append(_Shard(sset.shard_path(name), idx))
    t0 = time.monotonic()
    for shard, name in zip(shards, names, strict=True):
        _register(shard, cams, cfg, name)
    say(f"registered {len(cams)} cameras in {len(shards)} log(s) in {time.monotonic() - t0:.1f} s")

    step_ms = cfg.heartbeat_s * 1000
    total_ms = int(cfg.minutes * 60_000)
    start = now_ms() - total_ms - 120_000
    start -= start % step_ms
    clock = data / "sim.clock"
    env = {**os.environ, "CUSTODES_SIM_CLOCK": str(clock)}
    clock.write_bytes(start.to_bytes(8, "big"))
    keepers: SimCustody | None = None
    try:
        for shard in shards:
            shard.port = _free_port()
            shard.server = subprocess.Popen(
                [sys.executable, "-m", "custodes", "--data", str(shard.data), "serve",
                 "--port", str(shard.port), "--interval", str(cfg.checkpoint_interval)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for shard in shards:
            _wait(shard.port)
        if cfg.custody:
            keepers = _custody(data, shards[0].port, cfg, start, total_ms, say)
        rep = _drive(cfg, rng, cams, shards, start, step_ms, total_ms, clock, say)
        _settle(shards, start + total_ms, say)
        if cfg.custody:
            rep["custody"] = f"{cfg.custody[0]}/{cfg.custody[1]}"
        if cfg.shards > 1:
            rep["shards"] = {n: len(sh.cams) for n, sh in zip(names, shards, strict=True)}
        return rep
    finally:
        if keepers is not None:
            keepers.stop()
        for shard in shards:
            if shard.server is not None:
                shard.server.terminate()
        for shard in shards:
            if shard.server is not None:
                shard.server.wait(timeout=60)


def _settle(shards: list[_Shard], end: int, say: Any, timeout: float = 30.0) -> None:
    """Wait (outside the timed run) until each server has logged every heard interval that
    had closed by the simulation's end, so that the log left behind says who was heard: the
    server closes intervals on its own tick, which a fast run can end before."""
    from custodes.fleet.ops import FleetSettings

    deadline = time.monotonic() + timeout
    for shard in shards:
        settings = FleetSettings.load(shard.data)
        step = settings.interval_s * 1000
        due = int((end - settings.grace_s * 1000) // step * step)  # closed up to here by then
        while True:
            db = FleetDB.for_instance(shard.data, readonly=True)
            try:
                closed = db.get_meta("closed_until", -1)
            finally:
                db.close()
            if closed >= due:
                break
            if time.monotonic() > deadline:
                say(f"the server had not logged the heard intervals up to {format_time(due)}")
                return
            time.sleep(0.1)


def _custody(
    data: Path, port: int, cfg: SimConfig, start: int, total_ms: int, say: Any
) -> SimCustody:
    """Real custodians for the simulated log; their keys for every epoch it records in."""
    assert cfg.custody is not None
    first = format_time(start - cfg.segment_s * 1000)[:10]
    epochs = sorted({first, format_time(start + total_ms)[:10]})
    today = format_time(now_ms())[:10]
    if epochs[0] < today:
        raise UsageError(
            f"the simulated window starts on {epochs[0]}, before today's epoch ({today}), and"
            " custodians make keys for today and later only: simulate fewer minutes, or"
            " run it later in the UTC day"
        )
    t, n = cfg.custody
    vkey = Instance.load(data).verifier_key
    return start_custody(
        data / "custodians", f"http://127.0.0.1:{port}", data, vkey, t, n, epochs, say
    )


def _drive(
    cfg: SimConfig,
    rng: random.Random,
    cams: list[Camera],
    shards: list[_Shard],
    start: int,
    step_ms: int,
    total_ms: int,
    clock: Path,
    say: Any,
) -> dict[str, Any]:
    # One (client, token, cameras, shard) per agent, across every shard.
    agents = [
        (_Client(sh.port), tok, grp, k)
        for k, sh in enumerate(shards)
        for tok, grp in zip(sh.tokens, sh.groups, strict=True)
    ]
    down_until = [0] * len(cams)
    sealed = SimCustody.fields if cfg.custody else None
    seg_every = max(1, cfg.segment_s // cfg.heartbeat_s)
    acked: list[list[tuple[float, int]]] = [[] for _ in shards]
    ack_lock = threading.Lock()
    lag_max = 0.0
    stop = threading.Event()

    def watch_checkpoints(k: int) -> None:
        nonlocal lag_max
        conn = http.client.HTTPConnection("127.0.0.1", shards[k].port, timeout=30)
        while not stop.is_set() or acked[k]:
            conn.request("GET", "/log/checkpoint")
            body = conn.getresponse().read().decode()
            size = int(body.splitlines()[1])
            now = time.monotonic()
            with ack_lock:
                while acked[k] and acked[k][0][1] < size:
                    lag_max = max(lag_max, now - acked[k].pop(0)[0])
                late = stop.is_set() and acked[k] and now - acked[k][0][0] > 30
            if late:
                break
            time.sleep(0.05)

    watchers = [
        threading.Thread(target=watch_checkpoints, args=(k,), daemon=True)
        for k in range(len(shards))
    ]
    for w in watchers:
        w.start()
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
            ) -> tuple[int, int, int, list[tuple[float, int]]]:
                client, token, group, k = agents[a]
                live = [i for i in group if down_until[i] < t]
                beats = [{"camera": cams[i].id, "time": stamp} for i in live]
                client.post("/fleet/heartbeats", token, {"heartbeats": beats})
                segs = [
                    {
                        "camera": cams[i].id,
                        "start": seg_start,
                        "duration": cfg.segment_s,
                        "bytes": 1_000_000 + i,
                        "sha256": hashlib.sha256(f"{i}/{t}".encode()).hexdigest(),
                        **(sealed(cams[i].id, seg_start, 1_000_000 + i) if sealed else {}),
                    }
                    for i in live
                    if i % seg_every == step % seg_every
                ]
                indexes = []  # (when the server answered, the batch's log index)
                for j in range(0, len(segs), 5000):
                    r = client.post("/fleet/segments", token, {"segments": segs[j : j + 5000]})
                    if r.get("index") is not None:
                        indexes.append((time.monotonic(), int(r["index"])))
                return k, len(beats), len(segs), indexes

            for k, nb, ns, idx in pool.map(send, range(len(agents))):
                heartbeats += nb
                segments += ns
                with ack_lock:
                    acked[k].extend(idx)
                    acked[k].sort(key=lambda x: x[1])
            if cfg.speed:
                ahead = (t - start) / 1000 / cfg.speed - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
            if step % 30 == 0:
                say(f"simulated {(t - start) / 60000:.1f} min in {time.monotonic() - wall0:.1f} s")
    wall = time.monotonic() - wall0
    stop.set()
    for w in watchers:
        w.join(timeout=60)
    simulated = total_ms / 1000
    servers = [sh.server.pid for sh in shards if sh.server is not None]
    server_rss = sum(_peak_rss_mb(pid) for pid in servers)
    return {
        "cameras": len(cams),
        "agents": len(agents),
        "simulated_seconds": simulated,
        "wall_seconds": round(wall, 3),
        "realtime_factor": round(simulated / wall, 3) if wall else None,
        "heartbeats": heartbeats,
        "segments": segments,
        "checkpoint_interval_s": cfg.checkpoint_interval,
        "checkpoint_lag_s_max": round(lag_max, 3),
        "peak_rss_mb": round(max(_peak_rss_mb(), server_rss), 1),
        "server_peak_rss_mb": round(server_rss, 1),
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
