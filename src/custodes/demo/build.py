"""Build the demo city's data directory: the registry and a simulated week, in-process.

1. ``Instance.init`` a fresh directory; ``fleet.json`` sets the heartbeat
   interval (5 minutes by default, so a week is 2,016 intervals).
2. Log the geography and the cameras (their times are before the week),
   then one recorder agent per district.
3. Plan the week: random outages (some declared late, some maintenance
   declared ahead), a camera that stays broken, cameras added, changed and
   retired, and the night the theatre's cameras go dark together, declared
   two days later as "planned works".
4. Plan the people (:mod:`custodes.demo.people`), when the access gateway is
   installed: users, requests, decisions, releases, and the insider.
5. Run the week on one timeline in time order: every interval's heartbeats
   are recorded and the interval closed through :mod:`custodes.fleet.heard`
   (which logs ``fleet.heard``, silences, returns and correlated outages),
   every hour's segments go through :func:`custodes.fleet.ops.ingest_segments`,
   and each planned event runs at its simulated time.
6. Integrate and sign a checkpoint.

Nothing listens on the network meanwhile; the same entries a server would
write are written through the library with a simulated clock.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from custodes.demo.city import City, make_city, summary
from custodes.errors import InstanceExistsError, UsageError
from custodes.fleet import entries as E
from custodes.fleet.heard import close_intervals, record_heartbeats
from custodes.fleet.model import Camera, format_time, now_ms
from custodes.fleet.ops import FleetSettings, catch_up, ingest_segments, pseudonym
from custodes.fleet.registry import FleetDB
from custodes.geo.ops import import_districts, import_places
from custodes.ledger.instance import Instance
from custodes.ledger.log import Log
from custodes.web.service import LedgerService

__all__ = ["DemoConfig", "Week", "build_city"]

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
AGENTS_FILE = "demo/agents.json"
LOGINS_FILE = "demo/logins.json"


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    cameras: int = 300
    days: float = 7.0
    interval_s: int = 300
    requests: int = 60
    seed: int = 7
    origin: str = "demo.custodes.example/log"
    end_ms: int | None = None
    """When the simulated week ends; now by default."""
    clips: bool = True
    """Make real footage files (with ffmpeg) for the segments that are released."""


class Timeline:
    """Actions at simulated times, run in time order (ties in the order they were added)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[int], None]]] = []
        self._n = 0

    def at(self, ms: int, fn: Callable[[int], None]) -> None:
        heapq.heappush(self._heap, (ms, self._n, fn))
        self._n += 1

    def run(self, until: int, progress: Callable[[int], None] | None = None) -> None:
        """Run every action due by ``until``; later ones never happen.  ``progress`` is
        called with the simulated time at most once every 10 s of wall time."""
        said = time.monotonic()
        while self._heap and self._heap[0][0] <= until:
            ms, _, fn = heapq.heappop(self._heap)
            fn(ms)
            if progress is not None and time.monotonic() - said >= 10:
                said = time.monotonic()
                progress(ms)
        self._heap.clear()


class Week:
    """The fleet side of the simulated week, and what the people's plan needs to know."""

    def __init__(
        self, data: Path, cfg: DemoConfig, city: City, svc: LedgerService, db: FleetDB
    ) -> None:
        self.data = data
        self.cfg = cfg
        self.city = city
        self.svc = svc
        self.db = db
        self.rng = random.Random(cfg.seed * 7919 + 1)
        self.settings = FleetSettings.load(data)
        self.step = self.settings.interval_s * 1000
        end = cfg.end_ms if cfg.end_ms is not None else now_ms()
        self.end = end - end % self.step
        start = self.end - int(cfg.days * DAY)
        self.t0 = start - start % HOUR
        self.timeline = Timeline()
        self.cams: dict[str, Camera] = {c.id: c for c in city.cameras}
        self.registered: dict[str, int] = {}
        self.retired: dict[str, int] = {}
        self.down: dict[str, list[tuple[int, int]]] = {}
        self.real: set[tuple[str, int]] = set()
        """(camera, segment start) whose footage is a real file in the archive."""
        self.reserved: set[str] = set(city.theatre_cameras)
        """Cameras the random outages and registry changes leave alone."""
        self.counts: dict[str, int] = {}
        self.theatre_night: tuple[int, int] = (0, 0)
        self._clip: Path | None = None
        self._agents: list[dict[str, str]] = []

    @property
    def log(self) -> Log:
        return self.svc.log

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # -- writing -----------------------------------------------------------------------

    def append_fleet(self, objs: list[dict[str, Any]]) -> int:
        """Append fleet entries built with a simulated time; fleet.db takes them in."""
        first, _ = self.log.append([E.encode(o) for o in objs])
        catch_up(self.log, self.db)
        return first

    def is_down(self, cam: str, t: int) -> bool:
        return any(f <= t < u for f, u in self.down.get(cam, ()))

    def active(self, cam: str, t: int) -> bool:
        reg = self.registered.get(cam)
        ret = self.retired.get(cam)
        return reg is not None and reg <= t and (ret is None or t < ret)

    def recording(self, cam: str, f: int, t: int) -> bool:
        """Up from ``f`` to ``t`` within the week: registered, not retired, no outage between."""
        if f < self.t0 or not (self.active(cam, f) and self.active(cam, t - 1)):
            return False
        return not any(a < t and f < b for a, b in self.down.get(cam, ()))

    # -- 2. the registry ---------------------------------------------------------------

    def setup(self) -> None:
        at = self.t0 - 3 * HOUR
        import_districts(self.log, self.city.districts, now_ms=at)
        import_places(self.log, self.city.places, now_ms=at + MIN)
        at = self.t0 - 2 * HOUR
        objs = [E.camera_registered(c, seq, at) for seq, c in enumerate(self.city.cameras)]
        self.append_fleet(objs)
        for c in self.city.cameras:
            self.registered[c.id] = at
        self.count("cameras", len(objs))
        agents = []
        at = self.t0 - 90 * MIN
        for d in self.city.districts:
            agent = secrets.token_hex(8)
            token = f"cus_{agent}_{secrets.token_urlsafe(32).replace('_', '-')}"
            with self.db.transaction():
                self.db.conn.execute(
                    "INSERT INTO agents (id, name, token_sha256, role, created_ms, district)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (agent, f"recorder-{d.id}", hashlib.sha256(token.encode()).hexdigest(),
                     "recorder", at, d.id),
                )  # fmt: skip
            self.append_fleet([E.agent_added(agent, f"recorder-{d.id}", "recorder", at,
                                             pseudonym=pseudonym(self.db, agent),
                                             district=d.id)])  # fmt: skip
            agents.append({"agent": agent, "district": d.id, "token": token})
        self._agents = agents

    # -- 3. the plan -------------------------------------------------------------------

    def plan(self) -> None:
        rng, t0, end = self.rng, self.t0, self.end
        span = end - t0
        street = sorted(c.id for c in self.city.cameras if c.name == "Street camera")
        # The theatre's night: a 22:40 UTC in the middle of the week, or mid-span.
        nights = [
            d + 22 * HOUR + 40 * MIN
            for d in range(t0 - t0 % DAY, end, DAY)
            if t0 + 3 * HOUR <= d + 22 * HOUR + 40 * MIN <= end - 8 * HOUR
        ]
        f = nights[len(nights) // 2] if nights else t0 + (span * 2 // 5) // self.step * self.step
        u = min(f + 270 * MIN, end - 2 * HOUR)
        self.theatre_night = (f, u)
        for cam in self.city.theatre_cameras:
            self.down.setdefault(cam, []).append((f, u))
        declared = min(u + 2 * DAY, end - 30 * MIN)
        self.timeline.at(
            declared,
            lambda at: self._declare(
                "outage",
                self.city.theatre_cameras,
                f - 10 * MIN,
                u + 20 * MIN,
                "Planned works on the power line in Theatre Street",
                at,
            ),
        )
        # One camera breaks and is still broken when the week ends.
        pool = [c for c in street if c not in self.reserved]
        broken = rng.choice(pool)
        self.down.setdefault(broken, []).append((end - max(2 * HOUR, span // 5), end + 365 * DAY))
        self.reserved.add(broken)
        # The registry changes during the week.
        self.timeline.at(t0 + span * 9 // 20, self._register_later)
        moved = rng.choice([c for c in pool if c != broken])
        self.timeline.at(t0 + span * 3 // 5, partial(self._turn, moved))
        gone = rng.choice([c for c in pool if c not in (broken, moved)])
        self.reserved |= {moved, gone}
        self.timeline.at(t0 + span * 7 // 10, partial(self._retire, gone))
        # Random outages: most unexplained, a third declared afterwards.
        n = max(2, round(len(self.city.cameras) / 10 * self.cfg.days / 7))
        pool = [c for c in street if c not in self.reserved]
        reasons = ("Power failure in the street cabinet", "Network link down", "Lens obstructed")
        for _ in range(n):
            cam = rng.choice(pool)
            start = rng.randrange(t0 + 2 * HOUR, end - 2 * HOUR, 1000)
            length = rng.choice((20, 30, 45, 60, 90, 120, 180, 240, 360, 480)) * MIN
            self.down.setdefault(cam, []).append((start, start + length))
            self.count("outages")
            if rng.random() < 0.35:
                at = min(start + rng.randrange(30, 300) * MIN, end - MIN)
                reason = rng.choice(reasons)
                self.timeline.at(
                    at,
                    partial(self._declare, "outage", [cam], start, start + length, reason),
                )
        # Maintenance announced the day before (or as early as the week allows).
        for k in range(2 if self.cfg.days >= 2 else 1):
            day = t0 - t0 % DAY + (k * 3 + 2) * DAY
            mf = day + 10 * HOUR if day + 10 * HOUR < end - 4 * HOUR else t0 + 6 * HOUR
            district = rng.choice(["north", "south", "west", "east"])
            cams = [c for c in pool if self.cams[c].district == district][:3] or pool[:2]
            for c in cams:
                self.down.setdefault(c, []).append((mf, mf + 3 * HOUR))
            ann = max(t0 + HOUR, mf - DAY)
            self.timeline.at(
                ann,
                partial(
                    self._declare,
                    "maintenance",
                    cams,
                    mf,
                    mf + 3 * HOUR,
                    "Replacing the street cabinets",
                ),
            )
        # The heartbeat intervals and the hourly segments.
        for a in range(t0, end, self.step):
            self.timeline.at(a + self.step + int(self.settings.grace_s * 1000), self._close)
        for h in range(t0 + HOUR, end + 1, HOUR):
            self.timeline.at(h + MIN, self._segments)

    def _declare(self, kind: str, cams: list[str], f: int, u: int, reason: str, at: int) -> None:
        self.append_fleet([E.declaration(kind, sorted(cams), f, u, reason, at)])
        self.count(f"{kind}.declared")

    def _register_later(self, at: int) -> None:
        seq = self.db.next_seq()
        objs = [E.camera_registered(c, seq + i, at) for i, c in enumerate(self.city.later)]
        self.append_fleet(objs)
        for c in self.city.later:
            self.cams[c.id] = c
            self.registered[c.id] = at
        self.count("cameras", len(objs))

    def _turn(self, cam: str, at: int) -> None:
        old = self.cams[cam].direction or 0.0
        self.append_fleet([E.camera_changed(cam, {"direction": (old + 90.0) % 360}, at)])

    def _retire(self, cam: str, at: int) -> None:
        self.append_fleet([E.camera_retired(cam, "Removed: the pole was taken down", at)])
        self.retired[cam] = at

    # -- 5. running it -----------------------------------------------------------------

    def _close(self, at: int) -> None:
        a = at - int(self.settings.grace_s * 1000) - self.step
        mid = a + self.step // 2
        stamp = format_time(mid)
        beats: list[object] = [
            {"camera": c, "time": stamp}
            for c in self.cams
            if self.active(c, a) and self.active(c, at) and not self.is_down(c, mid)
        ]
        for who, part in self._by_agent(beats).items():
            got = record_heartbeats(self.db, part, self.settings, now=a + self.step, agent=who)
            if got["refused"]:
                reason = got["refused"][0]["reason"]
                raise UsageError(f"the demo's heartbeats were refused: {reason}")
        close_intervals(self.log, self.db, self.settings, now=at)
        self.count("heartbeats", len(beats))

    def _segments(self, at: int) -> None:
        h = at - MIN
        f = h - HOUR
        items: list[object] = []
        for c in self.cams:
            if not self.recording(c, f, h) or not self.active(c, at):
                continue
            if (c, f) in self.real:
                digest, size = self._real_clip(c, f)
            else:
                digest = hashlib.sha256(f"{self.cfg.seed}/{c}/{f}".encode()).hexdigest()
                size = 180_000_000 + int(digest[:6], 16) % 400_000_000
            items.append(
                {"camera": c, "start": format_time(f), "duration": 3600, "bytes": size,
                 "sha256": digest}
            )  # fmt: skip
        for who, part in self._by_agent(items).items():
            got = ingest_segments(self.log, self.db, part, self.settings, now=at, agent=who)
            if got["refused"]:
                raise UsageError(f"the demo's segments were refused: {got['refused'][0]}")
            self.count("segments", got["accepted"])

    def _by_agent(self, items: list[object]) -> dict[str | None, list[object]]:
        """Items split by the pseudonym of the district recorder that sends them."""
        by_district = {a["district"]: pseudonym(self.db, a["agent"]) for a in self._agents}
        out: dict[str | None, list[object]] = {}
        for item in items:
            assert isinstance(item, dict)
            who = by_district.get(self.cams[item["camera"]].district or "")
            out.setdefault(who, []).append(item)
        return out

    def _real_clip(self, cam: str, start: int) -> tuple[str, int]:
        """Put a synthetic clip in the archive as this segment's file; (sha256, bytes).

        It lasts the logged hour (a frame every 30 s, so it stays small and quick to
        make), since a release checks each segment's decoded length against the log.
        """
        from custodes.fleet.archive import open_archive

        work = self.data / "demo"
        work.mkdir(parents=True, exist_ok=True)
        if self._clip is None:
            self._clip = work / "base.mp4"
            _ffmpeg(
                "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=1/30", "-t", "3600",
                "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
                str(self._clip),
            )  # fmt: skip
        tmp = work / f".clip-{cam}.mp4"
        _ffmpeg(
            "-i", str(self._clip), "-c", "copy",
            "-metadata", f"comment=synthetic footage, camera {cam}, {format_time(start)}",
            str(tmp),
        )  # fmt: skip
        blob = tmp.read_bytes()
        open_archive(self.data).store(tmp, cam, start, ".mp4")
        self.count("clips")
        return hashlib.sha256(blob).hexdigest(), len(blob)

    def save_agents(self) -> None:
        """The recorder agents' tokens and cameras, for ``custodes demo-feed`` (mode 0600)."""
        by_district: dict[str, list[str]] = {}
        for c in self.cams.values():
            if c.id not in self.retired and not self.is_down(c.id, self.end):
                by_district.setdefault(c.district or "", []).append(c.id)
        out = [{**a, "cameras": sorted(by_district.get(a["district"], []))} for a in self._agents]
        _write_private(self.data / AGENTS_FILE, {"interval_s": self.settings.interval_s,
                                                 "agents": out})  # fmt: skip


def _ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise UsageError("the demo's footage needs ffmpeg; install it or pass --no-clips") from None
    except subprocess.CalledProcessError as err:
        tail = err.stderr.decode(errors="replace")[-200:]
        raise UsageError(f"ffmpeg failed making the demo's footage: {tail}") from None


def _write_private(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def build_city(
    data: Path, cfg: DemoConfig, *, say: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    """Make the demo city in a new data directory ``data``; returns what it wrote.

    It is built in ``data.partial`` and renamed to ``data`` only when complete,
    so a failed or interrupted build leaves nothing that looks like a demo.
    """
    began = time.monotonic()
    if cfg.days <= 0 or cfg.days > 28:
        raise UsageError("the demo's simulated period must be more than 0 and at most 28 days")
    if cfg.interval_s < 10 or 86400 % cfg.interval_s:
        raise UsageError("the demo's heartbeat interval must divide a day, at least 10 seconds")
    if data.exists() and any(data.iterdir()):
        raise InstanceExistsError(f"{data} is not empty; the demo city is built in a new directory")
    partial = data.with_name(data.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        facts = _build(partial, cfg, say)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if data.exists():
        data.rmdir()
    os.rename(partial, data)
    return {**facts, "data": str(data), "seconds": round(time.monotonic() - began, 1)}


def _build(data: Path, cfg: DemoConfig, say: Callable[[str], None]) -> dict[str, Any]:
    city = make_city(cfg.cameras, seed=cfg.seed)
    inst = Instance.init(data, origin=cfg.origin)
    (data / "fleet.json").write_text(json.dumps({"interval_s": cfg.interval_s}) + "\n")
    svc = LedgerService(inst, interval=1.0)
    db = FleetDB.for_instance(inst.path)
    people: Any = None
    try:
        week = Week(inst.path, cfg, city, svc, db)
        say(f"a city of {len(city.cameras)} cameras in {len(city.districts)} districts")
        week.setup()
        week.plan()
        people = _people(week)
        if people is not None:
            people.setup()
            people.plan()
        else:
            say("the access gateway is not installed; the demo has no users or requests")
        days = "1 day" if cfg.days == 1 else f"{cfg.days:g} days"
        say(f"simulating {days}, {week.step // 1000} s heartbeat intervals")
        began = time.monotonic()
        span = max(1, week.end - week.t0)

        def progress(ms: int) -> None:
            done = min(1.0, (ms - week.t0) / span)
            say(
                f"simulated {format_time(ms)[:16].replace('T', ' ')} UTC, {done:.0%} of the"
                f" city's time, {time.monotonic() - began:.0f} s so far"
            )

        week.timeline.run(until=week.end + 2 * MIN, progress=progress)
        facts: dict[str, Any] = {}
        if people is not None:
            facts = people.finish()
        week.save_agents()
        checkpoint = svc.log.integrate()
        size = svc.log.size()
    finally:
        if people is not None:
            people.close()
        db.close()
        svc.close()
    return {
        **summary(city),
        "entries": size,
        "from": format_time(week.t0),
        "to": format_time(week.end),
        "theatre_outage": [format_time(t) for t in week.theatre_night],
        "counts": week.counts,
        **facts,
        "checkpoint": checkpoint.decode(),
    }


def _people(week: Week) -> Any:
    """The access side, when the gateway is installed (it is built alongside the demo)."""
    try:
        from custodes.demo.people import People
    except ImportError:
        return None
    return People(week)
