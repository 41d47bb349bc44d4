"""The fleet's state table: ``DIR/fleet.db``, a SQLite file kept in step with the log.

The log is the record; this file is the index that answers questions fast
and holds what the log commits to but does not carry (segment records under a
batch root, agents' token hashes).  ``meta.applied`` is the log index up to
which the file has taken in the log's fleet entries; at start-up
:func:`custodes.fleet.ops.catch_up` replays anything past it, so a crash
between a log append and this file's commit loses nothing.

Only the log's writer (the process holding the data directory's lock) opens
it for writing; anyone may read it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.errors import NotFoundError
from custodes.fleet.model import Camera

__all__ = ["AgentRow", "FleetDB", "SegmentRow", "FLEET_DB"]

FLEET_DB = "fleet.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    record TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    registered_ms INTEGER NOT NULL,
    retired_ms INTEGER,
    status TEXT NOT NULL DEFAULT 'unknown',
    last_heard_ms INTEGER,
    missed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cameras_pos ON cameras (lat, lon);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'recorder',
    created_ms INTEGER NOT NULL,
    log_index INTEGER,
    cameras TEXT,
    district TEXT,
    revoked_ms INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    count INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    log_index INTEGER,
    agent TEXT,
    encrypted INTEGER
);
CREATE TABLE IF NOT EXISTS heard_agents (
    interval_ms INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    agent TEXT NOT NULL,
    PRIMARY KEY (interval_ms, shard, agent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    camera TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    record BLOB NOT NULL,
    batch INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    epoch TEXT,
    ephemeral TEXT,
    cipher_sha256 TEXT,
    cipher_bytes INTEGER,
    PRIMARY KEY (camera, start_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_digest ON segments (sha256);
CREATE INDEX IF NOT EXISTS segments_batch ON segments (batch, pos);
CREATE INDEX IF NOT EXISTS batches_unlogged ON batches (id) WHERE log_index IS NULL;
CREATE TABLE IF NOT EXISTS heard (
    interval_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (interval_ms, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heard_log (
    interval_ms INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    bitmap BLOB NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (interval_ms, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    camera TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    from_ms INTEGER,
    to_ms INTEGER,
    detail TEXT NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, at_ms);
"""


@dataclass(frozen=True)
class AgentRow:
    """One agent: its binding is ``cameras`` (ids) or ``district``; neither means any camera."""

    id: str
    name: str
    role: str
    created_ms: int
    cameras: frozenset[str] | None
    district: str | None
    revoked_ms: int | None

    def may_act_for(self, camera: str, districts: dict[str, str]) -> bool:
        """A set lookup: is ``camera`` within this agent's binding?"""
        if self.cameras is not None:
            return camera in self.cameras
        if self.district is not None:
            return districts.get(camera) == self.district
        return self.role == "operator"

    def binding(self) -> dict[str, Any]:
        if self.cameras is not None:
            return {"cameras": sorted(self.cameras)}
        if self.district is not None:
            return {"district": self.district}
        return {"cameras": "all" if self.role == "operator" else []}


_AGENT_SQL = "SELECT id, name, role, created_ms, cameras, district, revoked_ms FROM agents"


def _agent_row(row: tuple[Any, ...]) -> AgentRow:
    cams = frozenset(json.loads(row[4])) if row[4] is not None else None
    return AgentRow(str(row[0]), str(row[1]), str(row[2]), int(row[3]), cams, row[5], row[6])


@dataclass(frozen=True)
class SegmentRow:
    """One logged segment; ``sha256`` and ``size`` are the plaintext's.

    A segment encrypted under custody also has ``epoch``, ``ephemeral`` (base64 of the
    32-byte ephemeral key) and ``ciphertext_sha256``/``ciphertext_size``, the stored
    file's; for a plaintext segment all four are None.
    """

    camera: str
    start_ms: int
    end_ms: int
    sha256: str
    size: int
    record: bytes
    batch: int
    pos: int
    log_index: int | None
    epoch: str | None = None
    ephemeral: str | None = None
    ciphertext_sha256: str | None = None
    ciphertext_size: int | None = None

    @property
    def encrypted(self) -> bool:
        return self.epoch is not None

    @property
    def stored_sha256(self) -> str:
        """The digest of the file the archive holds (the ciphertext's when encrypted)."""
        return self.ciphertext_sha256 or self.sha256


class FleetDB:
    """One connection to ``fleet.db``; ``readonly`` for anyone but the log's writer."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise NotFoundError(
                    f"{path} does not exist yet; import cameras with 'custodes cameras import'"
                )
            self.conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
            self._migrate()
        self.conn.execute("PRAGMA busy_timeout=5000")
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(segments)")}
        # A file not yet migrated (opened read-only before its writer ran): no custody.
        self._custody_sql = (
            "s.epoch, s.ephemeral, s.cipher_sha256, s.cipher_bytes"
            if "cipher_sha256" in have
            else "NULL, NULL, NULL, NULL"
        )
        self._seqs: dict[str, int] | None = None
        self._districts: dict[str, str] | None = None

    def _migrate(self) -> None:
        """Columns added since the first release (agents' bindings, batches' agent)."""
        for table, column, kind in (
            ("agents", "cameras", "TEXT"),
            ("agents", "district", "TEXT"),
            ("agents", "revoked_ms", "INTEGER"),
            ("batches", "agent", "TEXT"),
            ("batches", "encrypted", "INTEGER"),
            ("segments", "epoch", "TEXT"),
            ("segments", "ephemeral", "TEXT"),
            ("segments", "cipher_sha256", "TEXT"),
            ("segments", "cipher_bytes", "INTEGER"),
        ):
            have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self.conn.execute(
            "CREATE INDEX IF NOT EXISTS segments_cipher ON segments (cipher_sha256)"
            " WHERE cipher_sha256 IS NOT NULL"
        )

    @classmethod
    def for_instance(cls, data: Path, *, readonly: bool = False) -> FleetDB:
        return cls(data / FLEET_DB, readonly=readonly)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------

    def get_meta(self, key: str, default: int = 0) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def set_meta(self, key: str, value: int) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    # -- cameras ----------------------------------------------------------------------

    def camera(self, camera_id: str) -> tuple[Camera, int, int | None] | None:
        """(camera, seq, retired_ms) or None."""
        row = self.conn.execute(
            "SELECT record, seq, retired_ms FROM cameras WHERE id = ?", (camera_id,)
        ).fetchone()
        if row is None:
            return None
        return Camera.from_record(json.loads(row[0])), row[1], row[2]

    def cameras(
        self, *, include_retired: bool = False, step_ms: int = 60_000
    ) -> list[dict[str, Any]]:
        """The registry; ``last_heard_ms`` of a camera that is up is worked out from
        the last closed interval (it is stored only when the camera's status changes)."""
        closed = self.get_meta("closed_until")
        sql = (
            "SELECT record, seq, registered_ms, retired_ms, status, last_heard_ms, missed"
            " FROM cameras"
        )
        if not include_retired:
            sql += " WHERE retired_ms IS NULL"
        out = []
        for rec, seq, reg, ret, status, heard, missed in self.conn.execute(sql + " ORDER BY seq"):
            if status == "up" and closed:
                heard = max(heard or 0, closed - missed * step_ms)
            out.append(
                {
                    "camera": json.loads(rec),
                    "seq": seq,
                    "registered_ms": reg,
                    "retired_ms": ret,
                    "status": status,
                    "last_heard_ms": heard,
                }
            )
        return out

    def next_seq(self) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM cameras").fetchone()
        return int(row[0])

    def put_camera(self, cam: Camera, seq: int, at_ms: int) -> None:
        self._seqs = self._districts = None
        self.conn.execute(
            "INSERT INTO cameras (id, seq, record, lat, lon, registered_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET record = excluded.record, lat = excluded.lat,"
            " lon = excluded.lon, retired_ms = NULL",
            (cam.id, seq, json.dumps(cam.to_record()), cam.lat, cam.lon, at_ms),
        )

    def retire_camera(self, camera_id: str, at_ms: int) -> None:
        self._seqs = self._districts = None
        self.conn.execute("UPDATE cameras SET retired_ms = ? WHERE id = ?", (at_ms, camera_id))

    def seq_map(self) -> dict[str, int]:
        """Active cameras' ids to seqs (cached: this connection is the file's only writer)."""
        if self._seqs is None:
            rows = self.conn.execute("SELECT id, seq FROM cameras WHERE retired_ms IS NULL")
            self._seqs = dict(rows.fetchall())
        return self._seqs

    def districts(self) -> dict[str, str]:
        """Active cameras' ids to their registered district (cached like :meth:`seq_map`)."""
        if self._districts is None:
            out: dict[str, str] = {}
            for cam_id, rec in self.conn.execute(
                "SELECT id, record FROM cameras WHERE retired_ms IS NULL"
            ):
                district = json.loads(rec).get("district")
                if isinstance(district, str):
                    out[cam_id] = district
            self._districts = out
        return self._districts

    def cameras_near(self, lat: float, lon: float, dlat: float, dlon: float) -> list[Camera]:
        rows = self.conn.execute(
            "SELECT record FROM cameras WHERE lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
            (lat - dlat, lat + dlat, lon - dlon, lon + dlon),
        )
        return [Camera.from_record(json.loads(r)) for (r,) in rows]

    # -- agents -----------------------------------------------------------------------

    def agent_hash(self, agent_id: str) -> tuple[str, str] | None:
        """(token SHA-256, role) of an agent not revoked, or None."""
        row = self.conn.execute(
            "SELECT token_sha256, role FROM agents WHERE id = ? AND revoked_ms IS NULL",
            (agent_id,),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def agent(self, agent_id: str) -> AgentRow | None:
        row = self.conn.execute(_AGENT_SQL + " WHERE id = ?", (agent_id,)).fetchone()
        return _agent_row(row) if row else None

    def agents(self) -> list[AgentRow]:
        return [_agent_row(r) for r in self.conn.execute(_AGENT_SQL + " ORDER BY created_ms, id")]

    def pseudonym_key(self) -> bytes:
        """The key agents' pseudonyms are made with (created on first use; writer only)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'agent_key'").fetchone()
        if row is not None:
            return bytes.fromhex(str(row[0]))
        key = secrets.token_bytes(32)
        self.conn.execute("INSERT INTO meta (key, value) VALUES ('agent_key', ?)", (key.hex(),))
        return key

    # -- segments ---------------------------------------------------------------------

    def segment(self, camera: str, start_ms: int) -> tuple[str, int, str | None] | None:
        """(digest of the file the archive takes, batch, epoch) of a logged segment.

        The digest is the ciphertext's for a segment encrypted under custody (its epoch
        then not None), the plaintext's otherwise.
        """
        if self._custody_sql.startswith("NULL"):
            old = self.conn.execute(
                "SELECT sha256, batch FROM segments WHERE camera = ? AND start_ms = ?",
                (camera, start_ms),
            ).fetchone()
            return (str(old[0]), int(old[1]), None) if old else None
        row = self.conn.execute(
            "SELECT COALESCE(cipher_sha256, sha256), batch, epoch FROM segments"
            " WHERE camera = ? AND start_ms = ?",
            (camera, start_ms),
        ).fetchone()
        return (str(row[0]), int(row[1]), row[2]) if row else None

    def plaintext_digest(self, camera: str, start_ms: int) -> str | None:
        """The logged plaintext SHA-256 of a segment, encrypted or not."""
        row = self.conn.execute(
            "SELECT sha256 FROM segments WHERE camera = ? AND start_ms = ?", (camera, start_ms)
        ).fetchone()
        return str(row[0]) if row else None

    def _segment_rows(self, sql: str, args: Iterable[Any]) -> list[SegmentRow]:
        q = (
            "SELECT s.camera, s.start_ms, s.end_ms, s.sha256, s.bytes, s.record, s.batch, s.pos,"
            f" b.log_index, {self._custody_sql}"
            " FROM segments s JOIN batches b ON b.id = s.batch WHERE " + sql
        )
        return [SegmentRow(*r) for r in self.conn.execute(q, tuple(args))]

    def starts_of_size(self, camera: str, size: int) -> list[int]:
        """Starts of ``camera``'s segments whose plaintext, or stored ciphertext, is
        ``size`` bytes."""
        sql = "SELECT start_ms FROM segments WHERE camera = ? AND (bytes = ?"
        sql += ")" if self._custody_sql.startswith("NULL") else " OR cipher_bytes = ?)"
        args = (camera, size) if self._custody_sql.startswith("NULL") else (camera, size, size)
        return [int(r[0]) for r in self.conn.execute(sql + " ORDER BY start_ms", args)]

    def segments_by_digest(self, sha256: str) -> list[SegmentRow]:
        """Segments whose plaintext has this digest."""
        return self._segment_rows("s.sha256 = ? ORDER BY s.start_ms", (sha256,))

    def segments_by_ciphertext(self, sha256: str) -> list[SegmentRow]:
        """Segments encrypted under custody whose stored ciphertext has this digest."""
        if self._custody_sql.startswith("NULL"):
            return []
        return self._segment_rows("s.cipher_sha256 = ? ORDER BY s.start_ms", (sha256,))

    def segments_for(self, camera: str, from_ms: int, to_ms: int) -> list[SegmentRow]:
        return self._segment_rows(
            "s.camera = ? AND s.start_ms < ? AND s.end_ms > ? ORDER BY s.start_ms",
            (camera, to_ms, from_ms),
        )

    def batch_records(self, batch: int) -> list[bytes]:
        rows = self.conn.execute(
            "SELECT record FROM segments WHERE batch = ? ORDER BY pos", (batch,)
        )
        return [bytes(r[0]) for r in rows]

    def batch_info(self, batch: int) -> tuple[str, int, int | None]:
        row = self.conn.execute(
            "SELECT root, count, log_index FROM batches WHERE id = ?", (batch,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"segment batch {batch} is not in {self.path}")
        return str(row[0]), int(row[1]), row[2]

    # -- status -----------------------------------------------------------------------

    def events_for(self, camera: str, from_ms: int, to_ms: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT kind, at_ms, from_ms, to_ms, detail, log_index FROM events WHERE camera = ?"
            " AND ((from_ms IS NULL AND at_ms BETWEEN ? AND ?)"
            " OR (from_ms IS NOT NULL AND from_ms < ? AND to_ms > ?)) ORDER BY at_ms",
            (camera, from_ms, to_ms, to_ms, from_ms),
        )
        return [
            {
                "kind": k,
                "at_ms": at,
                "from_ms": f,
                "to_ms": t,
                "detail": json.loads(d),
                "log_index": i,
            }
            for k, at, f, t, d, i in rows
        ]

    def heard_rows(self, shard: int, from_ms: int, to_ms: int) -> list[tuple[int, int, bytes, int]]:
        rows = self.conn.execute(
            "SELECT interval_ms, first_seq, bitmap, log_index FROM heard_log"
            " WHERE shard = ? AND interval_ms >= ? AND interval_ms < ? ORDER BY interval_ms",
            (shard, from_ms, to_ms),
        )
        return [(int(a), int(b), bytes(c), int(d)) for a, b, c, d in rows]
