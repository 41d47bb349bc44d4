"""The production :class:`~custodes.ledger.store.LogStore`: PostgreSQL, through psycopg 3.

Written for PostgreSQL, not for "a database":

* **Appends stream through binary ``COPY``.**  :meth:`PostgresStore.append`
  builds the ``COPY ... (FORMAT BINARY)`` stream itself, in chunks of about
  1 MiB, while it consumes the caller's generator: no list of entries is
  built, and there is one round trip per chunk, not per entry (about
  500,000 entries of 100 bytes a second over loopback, measured on a 2-core
  VM; psycopg's ``write_row`` managed about 400,000).
* **Two single-row tables, two row locks.**  ``sequencer`` holds the next
  index and ``state`` the integrated state.  An append locks the sequencer
  row (``SELECT ... FOR UPDATE``) before it reads the next index, so two
  writers cannot interleave indexes; an integration locks the state row and
  reads the sequencer without locking it (it only grows), so a long append
  does not hold up signing.
* **Integration is one transaction:** the compare-and-swap on the state row
  and the ``INSERT ... ON CONFLICT DO UPDATE`` of every tile, from arrays
  (``unnest``) in one statement.
* **Failing closed.**  Any psycopg error (a refused connection, an
  administrator's shutdown, a terminated backend, a permission) becomes one
  :class:`~custodes.errors.StoreUnavailableError` sentence.  A broken
  connection is replaced on the next call, so a server restart costs the
  calls made while it was down and no more.  If the connection breaks
  during ``COMMIT`` the outcome of that append is unknown: the caller sees
  the error and may append again, which can store the entries twice but
  never loses an acknowledged one.

The tables live in one schema (``custodes`` unless told), so several logs, or
several tests, can share a database.  Each call is its own transaction; the
store serialises its callers with a lock, so it may be shared between
threads.
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from custodes.errors import (
    ConflictError,
    NotFoundError,
    NotInitialisedError,
    StoreUnavailableError,
    UsageError,
)
from custodes.ledger.store import IntegratedState, TileKey

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TABLES = ("entries", "tiles", "sequencer", "state")
_TILE_BYTES_MAX = 256 * 32
_CHUNK = 1 << 20  # bytes of COPY data per write

# The binary COPY stream (PostgreSQL docs, "COPY", Binary Format): a signature,
# flags and header-extension length; per row a field count and length-prefixed
# fields; a -1 field count at the end.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_ROW_PREFIX = struct.Struct(">hiqi").pack  # 2 fields; 8-byte idx; then data's length

_CREATE = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    "CREATE TABLE IF NOT EXISTS {s}.entries (idx bigint PRIMARY KEY, data bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.tiles ("
    " level integer NOT NULL, idx bigint NOT NULL, hashes bytea NOT NULL,"
    " PRIMARY KEY (level, idx))",
    "CREATE TABLE IF NOT EXISTS {s}.sequencer ("
    " id boolean PRIMARY KEY DEFAULT true CHECK (id), next_index bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.state ("
    " id boolean PRIMARY KEY DEFAULT true CHECK (id), size bigint NOT NULL, checkpoint bytea)",
    "INSERT INTO {s}.sequencer (next_index) VALUES (0) ON CONFLICT DO NOTHING",
    "INSERT INTO {s}.state (size) VALUES (0) ON CONFLICT DO NOTHING",
)


class _Queries:
    """Every statement, composed once for one schema."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)  # the texts above are constants

        self.create = [q(t) for t in _CREATE]
        self.lock_next = q("SELECT next_index FROM {s}.sequencer FOR UPDATE")
        self.next = q("SELECT next_index FROM {s}.sequencer")
        self.set_next = q("UPDATE {s}.sequencer SET next_index = %s")
        self.copy = q("COPY {s}.entries (idx, data) FROM STDIN (FORMAT BINARY)")
        self.entries = q("SELECT data FROM {s}.entries WHERE idx >= %s AND idx < %s ORDER BY idx")
        self.state = q("SELECT size, checkpoint FROM {s}.state")
        self.lock_state = q("SELECT size FROM {s}.state FOR UPDATE")
        self.set_state = q("UPDATE {s}.state SET size = %s, checkpoint = %s")
        self.tiles = q(
            "SELECT level, idx, hashes FROM {s}.tiles"
            " WHERE (level, idx) IN (SELECT * FROM unnest(%s::integer[], %s::bigint[]))"
        )
        self.upsert_tiles = q(
            "INSERT INTO {s}.tiles (level, idx, hashes)"
            " SELECT * FROM unnest(%s::integer[], %s::bigint[], %s::bytea[])"
            " ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes"
        )


class PostgresStore:
    """A log kept in one schema of a PostgreSQL database.  Open it with :meth:`open`."""

    def __init__(self, conn: psycopg.Connection[Any], params: dict[str, Any], schema: str) -> None:
        """Wrap an open, checked connection; use :meth:`open` instead."""
        self._conn: psycopg.Connection[Any] | None = conn
        self._params = params
        self._closed = False
        self._lock = threading.Lock()
        self._q = _Queries(schema)
        self.schema = schema
        self.where = _describe(params, schema)

    # -- opening ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        create: bool = False,
        schema: str = "custodes",
        connect_timeout: int = 10,
    ) -> PostgresStore:
        """Connect to ``url`` and use the log in ``schema``; ``create`` makes it if absent.

        Raises :class:`~custodes.errors.NotInitialisedError` when the schema
        holds no log (unless ``create``), :class:`~custodes.errors.UsageError`
        for a schema name that is not a plain lower-case identifier, and
        :class:`~custodes.errors.StoreUnavailableError` when the server cannot
        be reached.
        """
        if not _SCHEMA_NAME.fullmatch(schema):
            raise UsageError(
                f"the schema name {schema!r} must be lower-case letters, digits and _ (at most 63)"
            )
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error:
            raise UsageError("the PostgreSQL URL is not well formed") from None
        params.setdefault("connect_timeout", connect_timeout)
        params.setdefault("application_name", "custodes")
        # Notice a server that vanished without closing the socket in about a minute,
        # not the two hours of the kernel's default, so callers fail closed promptly.
        params.setdefault("keepalives", 1)
        params.setdefault("keepalives_idle", 30)
        params.setdefault("keepalives_interval", 10)
        params.setdefault("keepalives_count", 3)
        where = _describe(params, schema)
        q = _Queries(schema)
        conn = _connect(params, where)
        try:
            if create:
                with conn.transaction():
                    # Serialise concurrent creators: CREATE ... IF NOT EXISTS can still race.
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"custodes:{schema}",)
                    )
                    for statement in q.create:
                        conn.execute(statement)
            row = conn.execute(
                "SELECT " + ", ".join(["to_regclass(%s) IS NOT NULL"] * len(_TABLES)),
                [f"{schema}.{t}" for t in _TABLES],  # schema names are checked identifiers
            ).fetchone()
            if row is None or not all(row):
                raise NotInitialisedError(
                    f"the {where} holds no custodes log;"
                    " create one first (custodes init --store URL)"
                )
        except BaseException as err:
            conn.close()
            if isinstance(err, psycopg.Error):
                raise _unavailable(where, "open", err) from None
            raise
        return cls(conn, params, schema)

    def close(self) -> None:
        """Close the connection.  Idempotent."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    # -- sequencing ---------------------------------------------------------

    def next_index(self) -> int:
        """The number of entries sequenced so far."""
        with self._lock:
            conn = self._connection()
            try:
                return int(_one(conn.execute(self._q.next))[0])
            except psycopg.Error as err:
                raise self._error("read the next index", err) from None

    def append(self, entries: Iterable[bytes]) -> tuple[int, int]:
        """Store ``entries`` at the next indexes in one transaction, streamed by COPY.

        The sequencer row stays locked until the commit, so a concurrent
        writer waits.  If ``entries`` raises, the COPY is cancelled, the
        transaction rolled back, and the exception propagates.
        """
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    first = int(_one(cur.execute(self._q.lock_next))[0])
                    with cur.copy(self._q.copy) as copy:
                        count = _copy_entries(copy, entries, first)
                    if count:
                        cur.execute(self._q.set_next, (first + count,))
            except psycopg.Error as err:
                raise self._error("append entries", err) from None
            return first, count

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start .. end - 1``; NotFoundError if any is not sequenced."""
        if not 0 <= start <= end:
            raise ValueError(f"no entry range {start}..{end}")
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor(binary=True) as cur:
                    rows = cur.execute(self._q.entries, (start, end)).fetchall()
                    # Indexes are contiguous, so a short answer means the range runs past
                    # the end; an empty range has nothing to count, so it asks.
                    if len(rows) != end - start or (start == end and self._count(cur) < end):
                        raise NotFoundError(
                            f"entry range [{start}, {end}) runs past the end of the log,"
                            f" which holds {self._count(cur)}"
                        )
            except psycopg.Error as err:
                raise self._error("read entries", err) from None
        return [row[0] for row in rows]

    # -- integration --------------------------------------------------------

    def integrated(self) -> IntegratedState:
        """The integrated tree size and its checkpoint."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor(binary=True) as cur:
                    size, checkpoint = _one(cur.execute(self._q.state))
            except psycopg.Error as err:
                raise self._error("read the integrated state", err) from None
        return IntegratedState(size=int(size), checkpoint=checkpoint)

    def read_tiles(self, keys: Sequence[TileKey]) -> list[bytes | None]:
        """The stored hashes of each tile, in one query."""
        if not keys:
            return []
        levels = [level for level, _ in keys]
        indexes = [index for _, index in keys]
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor(binary=True) as cur:
                    rows = cur.execute(self._q.tiles, (levels, indexes)).fetchall()
            except psycopg.Error as err:
                raise self._error("read hash tiles", err) from None
        found: dict[TileKey, bytes] = {(lv, ix): h for lv, ix, h in rows}
        return [found.get((level, index)) for level, index in keys]

    def integrate(
        self,
        *,
        old_size: int,
        new_size: int,
        tiles: dict[TileKey, bytes],
        checkpoint: bytes,
    ) -> None:
        """Write ``tiles`` and move the integrated state, if it is still ``old_size``.

        Raises ValueError for impossible arguments (``new_size < old_size``, a
        malformed tile) before touching the store, and ConflictError (writing
        nothing) when the stored size is not ``old_size`` or fewer than
        ``new_size`` entries are sequenced.
        """
        _check_integrate_args(old_size, new_size, tiles, checkpoint)
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    stored = int(_one(conn.execute(self._q.lock_state))[0])
                    if stored != old_size:
                        raise ConflictError(
                            f"the integrated size is {stored}, not {old_size}:"
                            " another writer moved it"
                        )
                    sequenced = int(_one(conn.execute(self._q.next))[0])
                    if new_size > sequenced:
                        raise ConflictError(
                            f"cannot integrate to size {new_size}:"
                            f" the log holds {sequenced} entries"
                        )
                    if tiles:
                        keys = list(tiles)
                        conn.execute(
                            self._q.upsert_tiles,
                            ([k[0] for k in keys], [k[1] for k in keys], [tiles[k] for k in keys]),
                        )
                    conn.execute(self._q.set_state, (new_size, checkpoint))
            except psycopg.Error as err:
                raise self._error("integrate", err) from None

    # -- helpers ------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The live connection, replacing one that broke (after a restart, say)."""
        if self._closed:
            raise StoreUnavailableError(f"the {self.where} is closed")
        if self._conn is None or self._conn.closed:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._conn = _connect(self._params, self.where)
        return self._conn

    def _count(self, cur: psycopg.Cursor[Any]) -> int:
        return int(_one(cur.execute(self._q.next))[0])

    def _error(self, doing: str, err: psycopg.Error) -> StoreUnavailableError:
        """Turn ``err`` into one sentence; drop a broken connection so the next call reconnects."""
        conn = self._conn
        if conn is not None and (conn.broken or conn.closed):
            conn.close()
            self._conn = None
        return _unavailable(self.where, doing, err)


def _connect(params: dict[str, Any], where: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(**params, autocommit=True)
    except psycopg.Error as err:
        raise _unavailable(where, "connect", err) from None


def _copy_entries(copy: psycopg.Copy, entries: Iterable[bytes], first: int) -> int:
    """Write ``entries`` as binary COPY rows from index ``first``; return how many."""
    buf: list[bytes] = [_COPY_HEADER]
    size = len(_COPY_HEADER)
    index = first
    for entry in entries:
        if not isinstance(entry, bytes):
            raise TypeError(f"log entries must be bytes, not {type(entry).__name__}")
        buf.append(_ROW_PREFIX(2, 8, index, len(entry)))
        buf.append(entry)
        size += 18 + len(entry)
        index += 1
        if size >= _CHUNK:
            copy.write(b"".join(buf))
            buf = []
            size = 0
    buf.append(_COPY_TRAILER)
    copy.write(b"".join(buf))
    return index - first


def _one(cur: psycopg.Cursor[Any]) -> Any:
    row = cur.fetchone()
    if row is None:
        raise StoreUnavailableError("the store's bookkeeping row is missing; the schema is damaged")
    return row


def _check_integrate_args(
    old_size: int, new_size: int, tiles: dict[TileKey, bytes], checkpoint: bytes
) -> None:
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot integrate from size {old_size} to {new_size}")
    if not isinstance(checkpoint, bytes):
        raise TypeError("the checkpoint must be bytes")
    for (level, index), hashes in tiles.items():
        if level < 0 or index < 0:
            raise ValueError(f"no hash tile {level}/{index}")
        if (
            not isinstance(hashes, bytes)
            or not hashes
            or len(hashes) % 32
            or len(hashes) > _TILE_BYTES_MAX
        ):
            raise ValueError(f"hash tile {level}/{index} must be 1 to 256 hashes of 32 bytes")


def _describe(params: dict[str, Any], schema: str) -> str:
    """Where the log is, for messages: never the password."""
    host = params.get("host")
    at = f"{host}:{params.get('port') or 5432}" if host else "the local socket"
    db = params.get("dbname") or params.get("user") or "?"
    return f"PostgreSQL store {db} at {at} (schema {schema})"


def _unavailable(where: str, doing: str, err: psycopg.Error) -> StoreUnavailableError:
    """One sentence: the store, what failed, and the server's reason (first line only)."""
    reason = getattr(err.diag, "message_primary", None) or str(err).strip()
    reason = reason.splitlines()[0] if reason else type(err).__name__
    reason = reason.removeprefix("connection failed: ")
    return StoreUnavailableError(f"the {where} could not {doing}: {reason}")
