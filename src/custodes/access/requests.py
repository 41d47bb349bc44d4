"""The gateway's private tables in ``DIR/access.db``: requests, decisions, releases, flags.

The identity store (:mod:`custodes.access.identity`) keeps its ``users``
table in the same file; these tables are the gateway's own.  The log is the
record and these tables its index, kept in step as the fleet's are:

* a request's row, with its sealed details, is committed *before* its
  ``access.requested`` entry is appended (``log_index`` is NULL until then);
  a row whose entry never reached the log stays unlogged and is never shown
  or decided;
* every other entry is appended first, then taken in here; ``meta.applied``
  says how far the log has been taken in, and :meth:`AccessDB.apply` (called
  by :func:`custodes.access.service.AccessService.catch_up`) replays the
  rest at start-up, so a crash between an append and this file's commit
  cannot, for instance, let one approval's footage be released twice.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.access.policy import haversine_m, parse_polygon, point_in_polygon
from custodes.errors import FormatError, NotFoundError, UsageError
from custodes.fleet.model import Camera, format_time, parse_time
from custodes.fleet.registry import FleetDB

__all__ = [
    "AccessDB",
    "Forbidden",
    "DecisionRow",
    "RequestInput",
    "RequestRow",
    "check_text",
    "load_case_key",
    "public_view",
    "resolve_cameras",
]


DB_FILE = "access.db"
MAX_CAMERAS = 1000
MAX_RADIUS_M = 5000.0
CASE_KEY_FILE = Path("keys") / "cases.key"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS req_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS req_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    case_key TEXT NOT NULL,
    cameras TEXT NOT NULL,
    districts TEXT NOT NULL,
    places TEXT NOT NULL,
    cells TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    sensitive INTEGER NOT NULL,
    assembly INTEGER NOT NULL,
    approvals INTEGER NOT NULL,
    judge INTEGER NOT NULL,
    policy INTEGER NOT NULL,
    commitment TEXT NOT NULL,
    sealed BLOB NOT NULL,
    log_index INTEGER,
    expired_ms INTEGER,
    disclosed_ms INTEGER,
    revealed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS req_requests_created ON req_requests (created_ms);
CREATE TABLE IF NOT EXISTS req_decisions (
    request TEXT NOT NULL,
    approver TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    role TEXT NOT NULL,
    approved INTEGER NOT NULL,
    unredacted INTEGER NOT NULL,
    reason TEXT NOT NULL,
    decided_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (request, pseudonym)
);
CREATE TABLE IF NOT EXISTS req_releases (
    request TEXT PRIMARY KEY,
    by TEXT NOT NULL,
    released_ms INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    segments INTEGER NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS req_flags (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    requests TEXT NOT NULL,
    flagged_ms INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    resolved_ms INTEGER,
    resolved_by TEXT,
    resolution TEXT
);
"""


class Forbidden(UsageError):
    """The person is authenticated but may not do this (HTTP 403)."""


@dataclass(frozen=True)
class RequestRow:
    id: str
    requester: str
    pseudonym: str
    created_ms: int
    purpose: str
    case_key: str
    cameras: tuple[str, ...]
    districts: tuple[str, ...]
    places: tuple[tuple[str | None, tuple[str, ...]], ...]
    """Each distinct (district, groups) of the cameras: what scopes must cover."""
    cells: tuple[str, ...]
    from_ms: int
    to_ms: int
    sensitive: bool
    assembly: bool
    approvals: int
    judge: bool
    policy: int
    commitment: str
    sealed: bytes
    log_index: int | None
    expired_ms: int | None
    disclosed_ms: int | None
    revealed_ms: int | None


@dataclass(frozen=True)
class DecisionRow:
    request: str
    approver: str
    pseudonym: str
    role: str
    approved: bool
    unredacted: bool
    reason: str
    decided_ms: int
    expires_ms: int | None
    log_index: int


_REQ_COLS = (
    "id, requester, pseudonym, created_ms, purpose, case_key, cameras, districts, places, cells,"
    " from_ms, to_ms, sensitive, assembly, approvals, judge, policy, commitment, sealed,"
    " log_index, expired_ms, disclosed_ms, revealed_ms"
)


def _req(row: Any) -> RequestRow:
    r = list(row)
    for i in (6, 7, 9):
        r[i] = tuple(json.loads(r[i]))
    r[8] = tuple((d, tuple(g)) for d, g in json.loads(r[8]))
    for i in (12, 13, 15):
        r[i] = bool(r[i])
    r[18] = bytes(r[18])
    return RequestRow(*r)


def _dec(row: Any) -> DecisionRow:
    r = list(row)
    r[4], r[5] = bool(r[4]), bool(r[5])
    return DecisionRow(*r)


class AccessDB:
    """One connection to ``access.db`` for the gateway; every call holds :attr:`lock`."""

    def __init__(self, data: Path) -> None:
        self.path = data / DB_FILE
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        # The log is the record: a commit lost in a power cut is replayed from it.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------

    def applied(self) -> int:
        with self.lock:
            row = self.conn.execute("SELECT value FROM req_meta WHERE key = 'applied'").fetchone()
        return int(row[0]) if row else 0

    def set_applied(self, index: int) -> None:
        """Inside a transaction: the log has been taken in up to ``index`` (exclusive)."""
        self.conn.execute(
            "INSERT INTO req_meta (key, value) VALUES ('applied', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
            (index,),
        )

    # -- requests ---------------------------------------------------------------------

    def insert_request(self, r: RequestRow) -> None:
        with self.lock:
            self.conn.execute(
                f"INSERT INTO req_requests ({_REQ_COLS}) VALUES ({', '.join('?' * 23)})",
                (
                    r.id,
                    r.requester,
                    r.pseudonym,
                    r.created_ms,
                    r.purpose,
                    r.case_key,
                    json.dumps(list(r.cameras)),
                    json.dumps(list(r.districts)),
                    json.dumps([[d, list(g)] for d, g in r.places]),
                    json.dumps(list(r.cells)),
                    r.from_ms,
                    r.to_ms,
                    int(r.sensitive),
                    int(r.assembly),
                    r.approvals,
                    int(r.judge),
                    r.policy,
                    r.commitment,
                    r.sealed,
                    None,
                    None,
                    None,
                    None,
                ),
            )

    def request(self, rid: str) -> RequestRow | None:
        """A logged request, or None (unknown ids and unlogged rows alike)."""
        with self.lock:
            row = self.conn.execute(
                f"SELECT {_REQ_COLS} FROM req_requests WHERE id = ? AND log_index IS NOT NULL",
                (rid,),
            ).fetchone()
        return _req(row) if row else None

    def requests(self, where: str = "1", args: tuple[Any, ...] = ()) -> list[RequestRow]:
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_REQ_COLS} FROM req_requests WHERE log_index IS NOT NULL AND ({where})"
                " ORDER BY created_ms, id",
                args,
            ).fetchall()
        return [_req(r) for r in rows]

    def decisions(self, rid: str | None = None, since_ms: int = 0) -> list[DecisionRow]:
        sql = (
            "SELECT request, approver, pseudonym, role, approved, unredacted, reason,"
            " decided_ms, expires_ms, log_index FROM req_decisions WHERE decided_ms >= ?"
        )
        args: tuple[Any, ...] = (since_ms,)
        if rid is not None:
            sql += " AND request = ?"
            args += (rid,)
        with self.lock:
            rows = self.conn.execute(sql + " ORDER BY log_index", args).fetchall()
        return [_dec(r) for r in rows]

    def release(self, rid: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT by, released_ms, sha256, bytes, segments, log_index FROM req_releases"
                " WHERE request = ?",
                (rid,),
            ).fetchone()
        if row is None:
            return None
        keys = ("by", "released_ms", "sha256", "bytes", "segments", "index")
        return dict(zip(keys, row, strict=True))

    # -- flags ------------------------------------------------------------------------

    def flag_keys(self) -> set[str]:
        with self.lock:
            return {r[0] for r in self.conn.execute("SELECT id FROM req_flags")}

    def flags(self, open_only: bool = True) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, rule, subject, reason, requests, flagged_ms, log_index, resolved_ms,"
            " resolved_by, resolution FROM req_flags"
        )
        if open_only:
            sql += " WHERE resolved_ms IS NULL"
        with self.lock:
            rows = self.conn.execute(sql + " ORDER BY log_index").fetchall()
        keys = (
            "flag",
            "rule",
            "subject",
            "reason",
            "requests",
            "flagged_ms",
            "index",
            "resolved_ms",
            "resolved_by",
            "resolution",
        )
        out = []
        for row in rows:
            item = dict(zip(keys, row, strict=True))
            item["requests"] = json.loads(item["requests"])
            out.append(item)
        return out

    # -- taking in logged entries ----------------------------------------------------

    def apply(self, index: int, obj: dict[str, Any], *, key: str = "", name: str = "") -> None:
        """Take in one logged access entry (idempotent); inside a transaction.

        ``key`` is a flag's dedupe key and ``name`` a decider's account name,
        which the log does not carry; replayed without them, a flag is keyed
        by its id and a decision names the pseudonym only.
        """
        kind = obj.get("type")
        c = self.conn
        rid = obj.get("request")
        at = parse_time(obj["time"], "time")
        if kind == "access.requested":
            c.execute(
                "UPDATE req_requests SET log_index = ? WHERE id = ? AND log_index IS NULL",
                (index, rid),
            )
        elif kind in ("access.approved", "access.denied"):
            approved = kind == "access.approved"
            row = c.execute("SELECT requester FROM req_requests WHERE id = ?", (rid,)).fetchone()
            if row is None:
                return
            c.execute(
                "INSERT OR IGNORE INTO req_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    name or obj["approver"],
                    obj["approver"],
                    obj["role"],
                    int(approved),
                    int(bool(obj.get("unredacted", False))),
                    obj["reason"],
                    at,
                    parse_time(obj["expires"], "expires") if approved else None,
                    index,
                ),
            )
        elif kind == "access.released":
            c.execute(
                "INSERT OR IGNORE INTO req_releases VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    obj["by"],
                    at,
                    (obj.get("output") or {}).get("sha256", ""),  # "" until access.exported
                    (obj.get("output") or {}).get("bytes", 0),
                    len(obj["segments"]),
                    index,
                ),
            )
        elif kind == "access.exported":  # the clip of a custody release (its digest, its size)
            out = obj["output"]
            c.execute(
                "UPDATE req_releases SET sha256 = ?, bytes = ? WHERE request = ? AND sha256 = ''",
                (out["sha256"], out["bytes"], rid),
            )
        elif kind == "access.expired":
            c.execute(
                "UPDATE req_requests SET expired_ms = ? WHERE id = ? AND expired_ms IS NULL",
                (at, rid),
            )
        elif kind == "access.disclosed":
            c.execute(
                "UPDATE req_requests SET disclosed_ms = ? WHERE id = ? AND disclosed_ms IS NULL",
                (at, rid),
            )
        elif kind == "access.revealed":
            c.execute(
                "UPDATE req_requests SET revealed_ms = ? WHERE id = ? AND revealed_ms IS NULL",
                (at, rid),
            )
        elif kind == "anomaly.flagged":
            c.execute(
                "INSERT OR IGNORE INTO req_flags (id, key, rule, subject, reason, requests,"
                " flagged_ms, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    obj["flag"],
                    obj["flag"],  # the key is the public id, so a replay rebuilds the same row
                    obj["rule"],
                    obj["subject"],
                    obj["reason"],
                    json.dumps(obj["requests"]),
                    at,
                    index,
                ),
            )
        elif kind == "anomaly.resolved":
            c.execute(
                "UPDATE req_flags SET resolved_ms = ?, resolved_by = ?, resolution = ?"
                " WHERE id = ? AND resolved_ms IS NULL",
                (at, obj["by"], obj["resolution"], obj["flag"]),
            )


# -- what a request asks for -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestInput:
    """What an investigator asks for: exactly one of cameras, area and polygon."""

    from_ms: int
    to_ms: int
    purpose: str
    case: str
    justification: str
    cameras: tuple[str, ...] = ()
    area: tuple[float, float, float] | None = None
    """(lat, lon, radius in metres)."""
    polygon: tuple[tuple[float, float], ...] = ()


def load_case_key(data: Path) -> bytes:
    """The key that hashes case references for the anomaly rules (made at first use)."""
    path = data / CASE_KEY_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key: bytes = path.read_bytes()
    if len(key) != 32:
        raise UsageError(f"{path} is not a 32-byte key; restore it from a backup")
    return key


def check_text(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise FormatError(f"the {what} must be 1-{limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise FormatError(f"the {what} must not hold control characters")
    return value


def resolve_cameras(fleet: FleetDB, inp: RequestInput) -> list[Camera]:
    """The registered cameras a request names or whose position lies in its area."""
    kinds = sum((bool(inp.cameras), inp.area is not None, bool(inp.polygon)))
    if kinds != 1:
        raise FormatError("a request names cameras, or an area, or a polygon: exactly one")

    def lookup(_log: Any) -> list[Camera]:
        if inp.cameras:
            if len(set(inp.cameras)) > MAX_CAMERAS:
                raise FormatError(f"a request may name at most {MAX_CAMERAS} cameras")
            out = []
            for cid in sorted(set(inp.cameras)):
                found = fleet.camera(cid) if isinstance(cid, str) else None
                if found is None:
                    raise NotFoundError(f"camera {cid} is not in the registry")
                out.append(found[0])
            return out
        if inp.area is not None:
            lat, lon, radius = inp.area
            ok = -90 <= lat <= 90 and -180 <= lon <= 180 and 1 <= radius <= MAX_RADIUS_M
            if not ok:
                raise FormatError(
                    f"an area is a lat, lon and a radius of 1-{MAX_RADIUS_M:g} metres"
                )
            dlat = radius / 111_000 + 1e-6
            dlon = dlat / max(0.01, abs(math.cos(math.radians(lat))))
            near = fleet.cameras_near(lat, lon, dlat, dlon)
            return [c for c in near if haversine_m(lat, lon, c.lat, c.lon) <= radius]
        poly = list(parse_polygon([list(p) for p in inp.polygon]))
        lats, lons = [p[0] for p in poly], [p[1] for p in poly]
        clat, clon = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
        near = fleet.cameras_near(
            clat, clon, (max(lats) - min(lats)) / 2 + 1e-9, (max(lons) - min(lons)) / 2 + 1e-9
        )
        return [c for c in near if point_in_polygon(c.lat, c.lon, poly)]

    cams = lookup(None)
    if not cams:
        raise NotFoundError("no registered camera lies in the requested area")
    if len(cams) > MAX_CAMERAS:
        raise FormatError(f"the area holds {len(cams)} cameras; at most {MAX_CAMERAS}")
    return sorted(cams, key=lambda c: c.id)


def public_view(row: RequestRow, st: dict[str, Any]) -> dict[str, Any]:
    """A request's public fields and state (``st`` from the service's status)."""
    out: dict[str, Any] = {
        "request": row.id,
        "state": st["state"],
        "requester": row.pseudonym,
        "created": format_time(row.created_ms),
        "purpose": row.purpose,
        "cameras": len(row.cameras),
        "districts": list(row.districts),
        "window_s": (row.to_ms - row.from_ms + 999) // 1000,
        "sensitive": row.sensitive,
        "needs": {"approvals": row.approvals, "judge": row.judge},
        "policy": row.policy,
        "commitment": row.commitment,
        "index": row.log_index,
        "approvals": [
            {
                "approver": d.pseudonym,
                "role": d.role,
                "expires": format_time(d.expires_ms or 0),
                "unredacted": d.unredacted,
                "index": d.log_index,
            }
            for d in st["approvals"]
        ],
        "denials": [
            {"approver": d.pseudonym, "role": d.role, "reason": d.reason, "index": d.log_index}
            for d in st["denials"]
        ],
        "expires": format_time(st["expires"]) if st["expires"] is not None else None,
        "released": st["release"],
    }
    return out
