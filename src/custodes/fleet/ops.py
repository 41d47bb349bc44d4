"""Fleet actions that write: each appends log entries and updates ``fleet.db`` in step.

Every function takes the open :class:`~custodes.ledger.log.Log` (so the
caller holds the writer lock: the CLI through ``Instance.open_log``, the
server through ``LedgerService.write``) and the writable :class:`FleetDB`.

The order of writes keeps the two in step across crashes:

1. Entries whose meaning the log carries in full (cameras, status) are
   appended inside a ``fleet.db`` transaction that is committed after the
   append; a crash in between leaves entries past ``meta.applied``, which
   :func:`catch_up` replays through :func:`apply_entry`.
2. Segment records, which the log holds only as a batch root, are committed
   to ``fleet.db`` first, as a batch not yet logged; then the batch entry is
   appended; :func:`catch_up` appends any batch left unlogged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from custodes.errors import FormatError, NotFoundError, UsageError
from custodes.fleet import entries as E
from custodes.fleet.model import Camera, format_time, now_ms, parse_time, valid_camera_id
from custodes.fleet.registry import FleetDB
from custodes.ledger.log import Log
from custodes.tlog.merkle import MemoryTree, leaf_hash

__all__ = [
    "FleetSettings",
    "add_agent",
    "apply_entry",
    "bind_agent",
    "pseudonym",
    "revoke_agent",
    "catch_up",
    "declare",
    "import_cameras",
    "retire_cameras",
    "token_id",
]

_FLEET_TYPES = (
    "camera.registered",
    "camera.changed",
    "camera.retired",
    "agent.added",
    "agent.bound",
    "agent.revoked",
    "segments.batch",
    "fleet.heard",
    "camera.silent",
    "camera.back",
    "outage.declared",
    "maintenance.declared",
    "outage.correlated",
)


@dataclass(frozen=True, kw_only=True)
class FleetSettings:
    """Read from ``DIR/fleet.json`` when present; every key is optional."""

    interval_s: int = 60
    grace_s: float = 15.0
    silent_after: int = 3
    correlate_radius_m: float = 300.0
    correlate_min: int = 3
    shard_size: int = 4096
    max_batch: int = 20000
    max_future_s: float = 60.0
    max_age_s: float = 7 * 86400.0
    max_duration_s: float = 3600.0
    archive: str | None = None  # s3://BUCKET/PREFIX?endpoint=URL; default DIR/archive

    @classmethod
    def load(cls, data: Path) -> FleetSettings:
        path = data / "fleet.json"
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            known = {f.name: f.type for f in fields(cls)}
            if not isinstance(raw, dict) or set(raw) - set(known):
                raise ValueError(f"unknown keys {sorted(set(raw) - set(known))}")
            s = cls(**raw)
        except (ValueError, TypeError) as err:
            raise UsageError(f"{path} is not valid fleet settings ({err})") from None
        if s.archive is not None and not str(s.archive).startswith("s3://"):
            raise UsageError(f"{path}: archive must be an s3://BUCKET/PREFIX URL")
        if s.interval_s < 1 or s.shard_size < 8 or s.shard_size % 8 or s.silent_after < 1:
            raise UsageError(
                f"{path}: interval_s must be >= 1, shard_size a multiple of 8, silent_after >= 1"
            )
        return s


# -- replay ------------------------------------------------------------------------------


def apply_entry(db: FleetDB, index: int, obj: dict[str, Any], *, live: bool = False) -> None:
    """Take one logged fleet entry into ``fleet.db`` (idempotent).  Inside a transaction.

    ``live``: the caller that wrote the entry updates per-camera heard times itself.
    """
    kind = obj.get("type")
    at = parse_time(obj["time"]) if "time" in obj else 0
    c = db.conn
    if kind == "camera.registered":
        cam = Camera.from_record(obj["camera"])
        db.put_camera(cam, int(obj["seq"]), at)
        _event(db, cam.id, "registered", at, None, None, {}, index)
    elif kind == "camera.changed":
        found = db.camera(obj["camera"])
        if found is None:
            return
        rec = found[0].to_record()
        for key, value in obj["changes"].items():
            if value is None:
                rec.pop(key, None)
            else:
                rec[key] = value
        db.put_camera(Camera.from_record(rec), found[1], at)
        _event(db, obj["camera"], "changed", at, None, None, obj["changes"], index)
    elif kind == "camera.retired":
        db.retire_camera(obj["camera"], at)
        _event(db, obj["camera"], "retired", at, None, None, {"reason": obj["reason"]}, index)
    elif kind == "agent.added":
        c.execute("UPDATE agents SET log_index = ? WHERE id = ?", (index, obj["agent"]))
    elif kind == "agent.bound":
        cams = obj.get("cameras")
        c.execute(
            "UPDATE agents SET cameras = ?, district = ? WHERE id = ?",
            (json.dumps(cams) if cams is not None else None, obj.get("district"), obj["agent"]),
        )
    elif kind == "agent.revoked":
        c.execute(
            "UPDATE agents SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ?",
            (at, obj["agent"]),
        )
    elif kind == "segments.batch":
        c.execute(
            "UPDATE batches SET log_index = ? WHERE id = ? AND root = ?",
            (index, obj["batch"], obj["root"]),
        )
    elif kind == "fleet.heard":
        import base64

        interval = parse_time(obj["interval"])
        bits = base64.b64decode(obj["bitmap"])
        c.execute(
            "INSERT OR REPLACE INTO heard_log VALUES (?, ?, ?, ?, ?)",
            (interval, obj["shard"], obj["first_seq"], bits, index),
        )
        end = interval + int(obj["seconds"]) * 1000
        if not live:
            first = int(obj["first_seq"])
            heard = [(end, first + i) for i in range(len(bits) * 8) if bits[i >> 3] >> (i & 7) & 1]
            c.executemany(
                "UPDATE cameras SET last_heard_ms = MAX(COALESCE(last_heard_ms, 0), ?),"
                " status = CASE status WHEN 'unknown' THEN 'up' ELSE status END WHERE seq = ?",
                heard,
            )
        if end > db.get_meta("closed_until"):
            db.set_meta("closed_until", end)
    elif kind in ("camera.silent", "camera.back"):
        status = "silent" if kind == "camera.silent" else "up"
        c.execute("UPDATE cameras SET status = ? WHERE id = ?", (status, obj["camera"]))
        since = obj.get("since", obj.get("silent_since"))
        _event(db, obj["camera"], kind.split(".")[1], at, None, None, {"since": since}, index)
    elif kind == "outage.correlated":
        since = parse_time(obj["since"])
        detail = {k: obj[k] for k in ("cameras", "lat", "lon", "radius_m")}
        for cam in obj["cameras"]:
            _event(db, cam, "correlated", at, since, at, detail, index)
    elif kind in ("outage.declared", "maintenance.declared"):
        f, t = parse_time(obj["from"]), parse_time(obj["to"])
        detail = {k: obj[k] for k in ("reason", "declared_at", "late")}
        for cam in obj["cameras"]:
            _event(db, cam, kind.split(".")[0], at, f, t, detail, index)


def _event(
    db: FleetDB,
    camera: str,
    kind: str,
    at: int,
    f: int | None,
    t: int | None,
    detail: dict[str, Any],
    index: int,
) -> None:
    exists = db.conn.execute(
        "SELECT 1 FROM events WHERE camera = ? AND log_index = ?", (camera, index)
    ).fetchone()
    if exists is None:
        db.conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (camera, kind, at, f, t, json.dumps(detail), index),
        )


def _append(log: Log, db: FleetDB, objs: list[dict[str, Any]], *, live: bool = False) -> int:
    """Append ``objs`` and apply them, inside ``db.transaction()``; returns the first index."""
    if not objs:
        return log.store.next_index()
    first, count = log.append([E.encode(o) for o in objs])
    for i, o in enumerate(objs):
        apply_entry(db, first + i, o, live=live)
    db.set_meta("applied", first + count)
    return first


def catch_up(log: Log, db: FleetDB, *, chunk: int = 4096) -> int:
    """Replay entries past ``meta.applied`` and log batches left unlogged; returns entries read."""
    end = log.store.next_index()
    start = db.get_meta("applied")
    read = 0
    while start < end:
        stop = min(end, start + chunk)
        raw = log.store.read_entries(start, stop)
        with db.transaction():
            for i, data in enumerate(raw):
                if not data.startswith(b"{") or b'"type"' not in data:
                    continue
                try:
                    obj = json.loads(data)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("type") in _FLEET_TYPES:
                    apply_entry(db, start + i, obj)
            db.set_meta("applied", stop)
        read += stop - start
        start = stop
    pending = db.conn.execute(
        "SELECT id, root, count, agent, encrypted FROM batches WHERE log_index IS NULL ORDER BY id"
    ).fetchall()
    if pending:
        now = now_ms()
        with db.transaction():
            _append(
                log,
                db,
                [
                    E.segments_batch(b, n, bytes.fromhex(r), now, a, encrypted=k or 0)
                    for b, r, n, a, k in pending
                ],
            )
    return read


# -- the registry ----------------------------------------------------------------------


def import_cameras(
    log: Log,
    db: FleetDB,
    cameras: Iterable[Camera],
    *,
    retire_missing: bool = False,
    reason: str = "not in the latest import",
) -> dict[str, Any]:
    """Register new cameras, log changes to known ones; returns what happened, by id."""
    catch_up(log, db)
    now = now_ms()
    registered: list[str] = []
    changed: dict[str, dict[str, Any]] = {}
    unchanged: list[str] = []
    objs: list[dict[str, Any]] = []
    seq = db.next_seq()
    present: set[str] = set()
    with db.transaction():
        for cam in cameras:
            present.add(cam.id)
            found = db.camera(cam.id)
            if found is None:
                objs.append(E.camera_registered(cam, seq, now))
                registered.append(cam.id)
                seq += 1
                continue
            old, _, retired = found
            diff = cam.changes_from(old)
            if retired is not None:
                diff = cam.to_record()
            if diff:
                objs.append(E.camera_changed(cam.id, diff, now))
                changed[cam.id] = diff
            else:
                unchanged.append(cam.id)
        retired_ids: list[str] = []
        if retire_missing:
            for cam_id in sorted(set(db.seq_map()) - present):
                objs.append(E.camera_retired(cam_id, reason, now))
                retired_ids.append(cam_id)
        _append(log, db, objs)
    return {
        "registered": registered,
        "changed": changed,
        "unchanged": len(unchanged),
        "retired": retired_ids,
    }


def retire_cameras(log: Log, db: FleetDB, ids: list[str], reason: str) -> list[str]:
    catch_up(log, db)
    active = db.seq_map()
    missing = [i for i in ids if i not in active]
    if missing:
        raise NotFoundError(f"no active camera with id {', '.join(missing)}")
    now = now_ms()
    with db.transaction():
        _append(log, db, [E.camera_retired(i, reason, now) for i in ids])
    return ids


def token_id(token: str) -> tuple[str, str] | None:
    """(id, sha256 of the token) for a token ``cus_<id>_<secret>``, or None if malformed."""
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != "cus" or len(parts[1]) != 16 or not parts[2]:
        return None
    return parts[1], hashlib.sha256(token.encode()).hexdigest()


ROLES = ("recorder", "operator")


def pseudonym(db: FleetDB, agent_id: str) -> str:
    """The agent's name in the log's entries: a keyed hash of its id, not its name."""
    mac = hmac.new(db.pseudonym_key(), agent_id.encode(), hashlib.sha256).hexdigest()
    return "agent-" + mac[:20]


def _check_binding(db: FleetDB, role: str, cameras: list[str] | None, district: str | None) -> None:
    if cameras is not None and district is not None:
        raise UsageError("bind an agent to --cameras or to a --district, not both")
    if cameras is not None:
        bad = [c for c in cameras if not valid_camera_id(c)]
        if bad or not cameras:
            raise UsageError(f"not a camera id: {', '.join(bad) or '(none given)'}")
    elif district is not None:
        if not district.strip() or len(district) > 100:
            raise UsageError("a district is 1-100 characters")
    elif role == "recorder":
        raise UsageError("a recorder must be bound to its cameras: give --cameras or --district")


def add_agent(
    log: Log,
    db: FleetDB,
    name: str,
    role: str = "recorder",
    *,
    cameras: list[str] | None = None,
    district: str | None = None,
) -> tuple[str, str]:
    """Register an agent; returns (agent id, token).  Only the token's hash is kept.

    A ``recorder`` sends heartbeats, segments and archive files for the cameras
    it is bound to (``cameras``, or those registered in ``district``); an
    ``operator`` may also change the registry, bind agents and declare outages
    through a running server (bound or not: unbound, it may act for any camera).
    """
    if role not in ROLES:
        raise UsageError(f"an agent's role is one of {', '.join(ROLES)}")
    if not name or len(name) > 100 or any(ch in name for ch in "\r\n\t"):
        raise UsageError("an agent's name must be 1-100 characters on one line")
    _check_binding(db, role, cameras, district)
    catch_up(log, db)
    agent = secrets.token_hex(8)
    token = f"cus_{agent}_{secrets.token_urlsafe(32).replace('_', '-')}"
    now = now_ms()
    cams = sorted(set(cameras)) if cameras is not None else None
    with db.transaction():
        db.conn.execute(
            "INSERT INTO agents (id, name, token_sha256, role, created_ms, cameras, district)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                agent,
                name,
                hashlib.sha256(token.encode()).hexdigest(),
                role,
                now,
                json.dumps(cams) if cams is not None else None,
                district,
            ),
        )
        entry = E.agent_added(
            agent, name, role, now, pseudonym=pseudonym(db, agent), cameras=cams, district=district
        )
        _append(log, db, [entry])
    return agent, token


def bind_agent(
    log: Log,
    db: FleetDB,
    agent: str,
    *,
    cameras: list[str] | None = None,
    district: str | None = None,
) -> dict[str, Any]:
    """Change which cameras an agent may act for; logged as ``agent.bound``."""
    catch_up(log, db)
    row = db.agent(agent)
    if row is None or row.revoked_ms is not None:
        raise NotFoundError(f"no agent {agent} that is not revoked")
    if cameras is None and district is None and row.role == "operator":
        pass  # an operator may be unbound again
    else:
        _check_binding(db, row.role, cameras, district)
    cams = sorted(set(cameras)) if cameras is not None else None
    obj = E.agent_bound(agent, pseudonym(db, agent), cams, district, now_ms())
    with db.transaction():
        index = _append(log, db, [obj])
    return {**obj, "index": index}


def revoke_agent(log: Log, db: FleetDB, agent: str, reason: str) -> dict[str, Any]:
    """Revoke an agent's token for good; logged as ``agent.revoked``."""
    if not reason.strip() or len(reason) > 500:
        raise UsageError("a revocation needs a reason (at most 500 characters)")
    catch_up(log, db)
    row = db.agent(agent)
    if row is None or row.revoked_ms is not None:
        raise NotFoundError(f"no agent {agent} that is not revoked")
    obj = E.agent_revoked(agent, pseudonym(db, agent), reason.strip(), now_ms())
    with db.transaction():
        index = _append(log, db, [obj])
    return {**obj, "index": index}


def declare(
    log: Log,
    db: FleetDB,
    kind: str,
    cameras: list[str],
    from_time: str,
    to_time: str,
    reason: str,
) -> dict[str, Any]:
    """Log an outage or maintenance declaration; ``late`` when made after the window began."""
    if kind not in ("outage", "maintenance"):
        raise UsageError("a declaration is an outage or a maintenance window")
    if not reason.strip():
        raise UsageError("a declaration needs a reason")
    f, t = parse_time(from_time, "start"), parse_time(to_time, "end")
    if t <= f:
        raise UsageError("the declared window must end after it starts")
    catch_up(log, db)
    known = db.seq_map()
    missing = [c for c in cameras if c not in known]
    if missing or not cameras:
        raise NotFoundError(f"no active camera with id {', '.join(missing) or '(none given)'}")
    obj = E.declaration(kind, cameras, f, t, reason.strip(), now_ms())
    with db.transaction():
        index = _append(log, db, [obj])
    return {**obj, "index": index}


# -- segments --------------------------------------------------------------------------

_HEX = set("0123456789abcdef")
_SEALING = {"epoch", "ephemeral", "ciphertext"}
Checked = tuple[str, int, float, int, str, E.Sealing | None]


def _sha256(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise FormatError(f"{what} must be 64 lowercase hex digits")
    return value


def _sealing(item: dict[str, Any], start: int, size: int) -> E.Sealing | None:
    """The custody fields of an encrypted segment's record, checked; None for plaintext."""
    present = _SEALING & set(item)
    if not present:
        return None
    if present != _SEALING:
        raise FormatError("an encrypted segment has epoch, ephemeral and ciphertext together")
    from custodes.custody.errors import CustodyFormatError
    from custodes.custody.group import Point, b64decode

    epoch = item["epoch"]
    if not isinstance(epoch, str) or epoch != format_time(start)[:10]:
        raise FormatError("epoch must be the UTC day (YYYY-MM-DD) the segment starts in")
    try:
        Point.decode(b64decode(item["ephemeral"], 32, what="ephemeral"))
    except CustodyFormatError as err:
        raise FormatError(f"ephemeral must be a ristretto255 point in base64 ({err})") from None
    cipher = item["ciphertext"]
    if not isinstance(cipher, dict) or set(cipher) != {"sha256", "bytes"}:
        raise FormatError("ciphertext must be an object with sha256 and bytes")
    c_size = cipher["bytes"]
    if isinstance(c_size, bool) or not isinstance(c_size, int) or not size < c_size < 1 << 51:
        raise FormatError("ciphertext bytes must be an integer larger than the plaintext's")
    digest = _sha256(cipher["sha256"], "ciphertext sha256")
    return E.Sealing(epoch, str(item["ephemeral"]), digest, c_size)


def check_segment(
    item: object, known: dict[str, int], settings: FleetSettings, now: int
) -> Checked:
    """(camera, start_ms, duration, bytes, sha256, sealing) or FormatError with the reason.

    ``sealing`` is None for a plaintext segment (the record has exactly the five fields of
    today's); an encrypted segment's record adds ``epoch``, ``ephemeral`` and
    ``ciphertext`` ({sha256, bytes}).
    """
    if not isinstance(item, dict):
        raise FormatError("a segment must be an object")
    extra = set(item) - {"camera", "start", "duration", "bytes", "sha256"} - _SEALING
    if extra:
        raise FormatError(f"unknown fields {', '.join(sorted(extra))}")
    camera = item.get("camera")
    if not isinstance(camera, str) or not valid_camera_id(camera):
        raise FormatError("camera must be a camera id")
    if camera not in known:
        raise FormatError(f"camera {camera} is not in the registry")
    start = parse_time(item.get("start"), "start")
    _check_time(start, settings.max_age_s, settings, now)
    duration = item.get("duration")
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 < duration <= settings.max_duration_s
    ):
        raise FormatError(f"duration must be seconds in (0, {settings.max_duration_s:g}]")
    size = item.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < 1 << 50:
        raise FormatError("bytes must be a positive integer")
    digest = _sha256(item.get("sha256"), "sha256")
    return camera, start, round(float(duration), 3), size, digest, _sealing(item, start, size)


def _check_time(t: int, max_age_s: float, settings: FleetSettings, now: int) -> None:
    if t > now + settings.max_future_s * 1000:
        raise FormatError(f"the time {format_time(t)} is in the future")
    if t < now - max_age_s * 1000:
        raise FormatError(f"the time {format_time(t)} is older than {max_age_s:g} s")


def ingest_segments(
    log: Log,
    db: FleetDB,
    items: list[object],
    settings: FleetSettings,
    *,
    now: int | None = None,
    agent: str | None = None,
) -> dict[str, Any]:
    """Log new segments as one batch; refuse bad items one by one; re-sends change nothing."""
    catch_up(log, db)
    now = now_ms() if now is None else now
    known = db.seq_map()
    refused: list[dict[str, Any]] = []
    fresh: list[tuple[int, Checked]] = []
    duplicates = 0
    seen: dict[tuple[str, int], str] = {}
    for n, item in enumerate(items):
        try:
            seg = check_segment(item, known, settings, now)
        except FormatError as err:
            refused.append({"item": n, "reason": str(err)})
            continue
        key = (seg[0], seg[1])
        # What the archive will hold: the ciphertext of an encrypted segment.
        stored = seg[5].sha256 if seg[5] is not None else seg[4]
        prior = seen.get(key)
        if prior is None:
            found = db.segment(*key)
            prior = found[0] if found else None
        if prior is not None:
            if prior == stored:
                duplicates += 1
            else:
                refused.append(
                    {
                        "item": n,
                        "reason": f"camera {seg[0]} already has a different segment logged"
                        f" at {format_time(seg[1])}",
                    }
                )
            continue
        seen[key] = stored
        fresh.append((n, seg))
    batch = index = None
    if fresh:
        records = [E.segment_record(c, s, d, b, h, k) for _, (c, s, d, b, h, k) in fresh]
        encrypted = sum(1 for _, seg in fresh if seg[5] is not None)
        tree = MemoryTree(leaf_hash(r) for r in records)
        root = tree.root()
        with db.transaction():
            row = db.conn.execute("SELECT COALESCE(MAX(id) + 1, 1) FROM batches").fetchone()
            batch = int(row[0])
            db.conn.execute(
                "INSERT INTO batches (id, root, count, created_ms, agent, encrypted)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (batch, root.hex(), len(records), now, agent, encrypted or None),
            )
            db.conn.executemany(
                "INSERT INTO segments (camera, start_ms, end_ms, sha256, bytes, record, batch,"
                " pos, epoch, ephemeral, cipher_sha256, cipher_bytes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c,
                        s,
                        s + int(d * 1000),
                        h,
                        b,
                        rec,
                        batch,
                        pos,
                        *((k.epoch, k.ephemeral, k.sha256, k.size) if k else (None,) * 4),
                    )  # fmt: skip
                    for pos, ((_, (c, s, d, b, h, k)), rec) in enumerate(
                        zip(fresh, records, strict=True)
                    )
                ],
            )
        with db.transaction():
            entry = E.segments_batch(batch, len(records), root, now, agent, encrypted=encrypted)
            index = _append(log, db, [entry])
    return {
        "accepted": len(fresh),
        "duplicates": duplicates,
        "refused": refused,
        "batch": batch,
        "index": index,
    }
