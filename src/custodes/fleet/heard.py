"""Heartbeats: who was heard from in each interval, logged as one bitmap per shard.

Heartbeats are kept in ``fleet.db`` (table ``heard``) until their interval
closes, ``grace_s`` after it ends.  Closing an interval appends, for every
shard of ``shard_size`` cameras (by registry ``seq``), one ``fleet.heard``
entry whose bitmap has a bit per camera, and then logs status changes:

* ``camera.silent`` when a camera that was up has missed ``silent_after``
  intervals in a row;
* ``camera.back`` when a silent camera is heard again.

Cameras never heard from stay ``unknown`` and are not declared silent.
"""

from __future__ import annotations

import math
from typing import Any

from custodes.errors import FormatError
from custodes.fleet import entries as E
from custodes.fleet.model import format_time, now_ms, parse_time, valid_camera_id
from custodes.fleet.ops import FleetSettings, _append, catch_up
from custodes.fleet.registry import FleetDB
from custodes.ledger.log import Log

__all__ = ["close_intervals", "record_heartbeats"]

MAX_CATCH_UP = 240
"""Intervals closed per call, so one call never holds the writer for long."""


def record_heartbeats(
    db: FleetDB,
    items: list[object],
    settings: FleetSettings,
    *,
    now: int | None = None,
    agent: str | None = None,
) -> dict[str, Any]:
    """Keep heartbeats for intervals still open; refuse bad ones one by one.

    ``agent``, the sender's pseudonym, is named in the ``fleet.heard`` entries of
    the shards it was heard for."""
    now = now_ms() if now is None else now
    known = db.seq_map()
    step = settings.interval_s * 1000
    closed_until = db.get_meta("closed_until")
    refused: list[dict[str, Any]] = []
    rows: set[tuple[int, int]] = set()
    seen: dict[str, int] = {}  # a batch usually shares a few timestamps
    for n, item in enumerate(items):
        try:
            if not isinstance(item, dict) or set(item) - {"camera", "time"}:
                raise FormatError("a heartbeat is an object with camera and time")
            camera = item.get("camera")
            if not isinstance(camera, str) or not valid_camera_id(camera):
                raise FormatError("camera must be a camera id")
            seq = known.get(camera)
            if seq is None:
                raise FormatError(f"camera {camera} is not in the registry")
            stamp = item.get("time")
            interval = seen.get(stamp) if isinstance(stamp, str) else None
            if interval is None:
                t = parse_time(stamp)
                if t > now + settings.max_future_s * 1000:
                    raise FormatError(f"the time {format_time(t)} is in the future")
                interval = t - t % step
                if interval < closed_until or interval + step + settings.grace_s * 1000 <= now:
                    raise FormatError(
                        f"the time {format_time(t)} is too old: its interval is already logged"
                    )
                seen[str(stamp)] = interval
            rows.add((interval, seq))
        except FormatError as err:
            refused.append({"item": n, "reason": str(err)})
    if rows:
        size = settings.shard_size
        with db.transaction():
            db.conn.executemany("INSERT OR IGNORE INTO heard VALUES (?, ?)", sorted(rows))
            if agent is not None:
                db.conn.executemany(
                    "INSERT OR IGNORE INTO heard_agents VALUES (?, ?, ?)",
                    sorted({(i, s // size, agent) for i, s in rows}),
                )
    return {"accepted": len(items) - len(refused), "refused": refused}


def close_intervals(
    log: Log, db: FleetDB, settings: FleetSettings, *, now: int | None = None
) -> int:
    """Log every interval that ended ``grace_s`` ago and is not logged yet; returns how many."""
    catch_up(log, db)
    now = now_ms() if now is None else now
    step = settings.interval_s * 1000
    closed_until = db.get_meta("closed_until", -1)
    if closed_until < 0:
        row = db.conn.execute("SELECT MIN(interval_ms) FROM heard").fetchone()
        closed_until = row[0] if row[0] is not None else now - now % step
        with db.transaction():
            db.set_meta("closed_until", closed_until)
    done = 0
    while closed_until + step + settings.grace_s * 1000 <= now and done < MAX_CATCH_UP:
        _close_one(log, db, settings, closed_until, now)
        closed_until += step
        done += 1
    return done


def _close_one(log: Log, db: FleetDB, settings: FleetSettings, interval: int, now: int) -> None:
    step = settings.interval_s * 1000
    end = interval + step
    c = db.conn
    heard = {s for (s,) in c.execute("SELECT seq FROM heard WHERE interval_ms = ?", (interval,))}
    cams = c.execute(
        "SELECT id, seq, status, missed, last_heard_ms FROM cameras"
        " WHERE retired_ms IS NULL ORDER BY seq"
    ).fetchall()
    size = settings.shard_size
    top = db.next_seq()
    objs: list[dict[str, Any]] = []
    shards = [bytearray((min(size, top - f) + 7) // 8) for f in range(0, top, size)]
    for s in heard:
        if s < top:
            i = s % size
            shards[s // size][i >> 3] |= 1 << (i & 7)
    senders: dict[int, list[str]] = {}
    for shard, agent in c.execute(
        "SELECT shard, agent FROM heard_agents WHERE interval_ms = ?", (interval,)
    ):
        senders.setdefault(int(shard), []).append(str(agent))
    for shard, bits in enumerate(shards):
        first = shard * size
        count = min(size, top - first)
        objs.append(
            E.heard(
                interval, settings.interval_s, shard, first, count, bytes(bits), now,
                senders.get(shard),
            )
        )  # fmt: skip
    # Only cameras whose state changes are written: at 189,000 cameras a row per
    # camera per interval would hold the writer for a second.
    updates: list[tuple[str, int, int | None, str]] = []
    gone: list[str] = []
    for cam_id, seq, status, missed, last_heard in cams:
        if seq in heard:
            if status == "silent":
                objs.append(E.camera_back(cam_id, last_heard or interval, now))
            if status != "up" or missed:
                updates.append(("up", 0, last_heard, cam_id))
        elif status == "up":
            missed += 1
            if missed >= settings.silent_after:
                since = end - missed * step  # the end of the last interval it was heard in
                objs.append(E.camera_silent(cam_id, since, now))
                gone.append(cam_id)
                updates.append(("silent", missed, since, cam_id))
            else:
                updates.append(("up", missed, last_heard, cam_id))
    if len(gone) >= settings.correlate_min:
        objs.extend(_correlated(db, gone, settings, interval, now))
    with db.transaction():
        _append(log, db, objs, live=True)
        c.executemany(
            "UPDATE cameras SET status = ?, missed = ?, last_heard_ms = ? WHERE id = ?", updates
        )
        c.execute("DELETE FROM heard WHERE interval_ms = ?", (interval,))
        c.execute("DELETE FROM heard_agents WHERE interval_ms = ?", (interval,))
        db.set_meta("closed_until", end)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(min(1.0, a)))


def _correlated(
    db: FleetDB, gone: list[str], settings: FleetSettings, interval: int, now: int
) -> list[dict[str, Any]]:
    """Groups of at least ``correlate_min`` cameras within the radius that fell silent together."""
    marks = ",".join("?" * len(gone))
    pos = {
        i: (la, lo)
        for i, la, lo in db.conn.execute(
            f"SELECT id, lat, lon FROM cameras WHERE id IN ({marks})", gone
        )
    }
    radius = settings.correlate_radius_m
    cell = radius / 111_000.0  # degrees of latitude; longitude cells are wider, never narrower
    grid: dict[tuple[int, int], list[str]] = {}
    for cam, (la, lo) in pos.items():
        grid.setdefault((int(la // cell), int(lo // cell)), []).append(cam)

    def near(cam: str, left: set[str]) -> list[str]:
        la, lo = pos[cam]
        gx, gy = int(la // cell), int(lo // cell)
        span = max(1, math.ceil(1 / max(0.01, math.cos(math.radians(la)))))
        found = [
            c
            for dx in (-1, 0, 1)
            for dy in range(-span, span + 1)
            for c in grid.get((gx + dx, gy + dy), ())
            if c in left and distance_m(la, lo, *pos[c]) <= radius
        ]
        return sorted(found)

    left = set(pos)
    out = []
    while left:
        best: list[str] = []
        for centre in sorted(left):
            group = near(centre, left)
            if len(group) > len(best):
                best = group
        if len(best) < settings.correlate_min:
            break
        lat = sum(pos[c][0] for c in best) / len(best)
        lon = sum(pos[c][1] for c in best) / len(best)
        out.append(E.correlated(best, lat, lon, radius, interval, now))
        left -= set(best)
    return out


def interval_of(text: str, settings: FleetSettings) -> int:
    t = parse_time(text)
    step = settings.interval_s * 1000
    return t - t % step
