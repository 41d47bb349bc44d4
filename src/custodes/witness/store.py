"""The witness's durable state: one SQLite database in the data directory.

Per witnessed log it keeps the origin, the log's verifier keys (one or more,
one a line: a log may sign with several, and a key's name need not be the
origin), and the latest checkpoint it cosigned (size, root hash, the signed
note verbatim, and the cosignature line the witness answered with, which the
monitoring endpoint serves). A log added with ``add-log`` starts at size 0
with the empty tree's root.

The only way the state moves is :meth:`WitnessStore.advance`, a batch of
compare-and-swap updates in one ``BEGIN IMMEDIATE`` transaction::

    UPDATE logs SET size=?, root=?, checkpoint=?, cosignature=?
     WHERE origin=? AND size=<old size> AND root=<old root>

An update whose row count is 0 lost the race (the state is not what the
request was checked against) and is refused. The caller cosigns only what
:meth:`advance` reports as committed, so a crash before the commit leaves no
cosignature, and a crash after it leaves state that already covers the
cosignature. ``fault`` is called between the updates and the commit; tests
use it to kill the process there.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from custodes.errors import NotFoundError, UsageError
from custodes.tlog import EMPTY_ROOT

__all__ = ["Advance", "LogState", "WitnessStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin     TEXT PRIMARY KEY,
    vkey       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL,
    checkpoint BLOB,
    cosignature BLOB
);
"""
_COLUMNS = "origin, vkey, size, root, checkpoint, cosignature"


@dataclass(frozen=True, kw_only=True)
class LogState:
    """What the witness holds for one log."""

    origin: str
    vkey: str
    size: int
    root: bytes
    checkpoint: bytes | None
    cosignature: bytes | None = None

    @property
    def vkeys(self) -> tuple[str, ...]:
        """The log's verifier keys."""
        return tuple(self.vkey.split("\n"))


@dataclass(frozen=True, kw_only=True)
class Advance:
    """One compare-and-swap: move ``origin`` from (old_size, old_root) to the new checkpoint."""

    origin: str
    old_size: int
    old_root: bytes
    new_size: int
    new_root: bytes
    checkpoint: bytes
    cosignature: bytes | None = None


class WitnessStore:
    """The SQLite state of one witness; one writer connection, used by one thread at a time."""

    def __init__(self, path: Path, *, fault: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.fault = fault
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(logs)")}
        if "cosignature" not in columns:  # a witness made before the column existed
            self._db.execute("ALTER TABLE logs ADD COLUMN cosignature BLOB")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def add_log(self, origin: str, vkeys: Sequence[str]) -> None:
        """Start witnessing ``origin``, or trust more keys for it; refuse keys it has already."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT vkey FROM logs WHERE origin = ?", (origin,)
                ).fetchone()
                have = row[0].split("\n") if row else []
                new = [k for k in dict.fromkeys(vkeys) if k not in have]
                if not new:
                    raise UsageError(
                        f"The witness already witnesses the log {origin} with that key."
                    )
                if row is None:
                    self._db.execute(
                        "INSERT INTO logs (origin, vkey, size, root) VALUES (?, ?, 0, ?)",
                        (origin, "\n".join(new), EMPTY_ROOT),
                    )
                else:
                    self._db.execute(
                        "UPDATE logs SET vkey = ? WHERE origin = ?", ("\n".join(have + new), origin)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def logs(self) -> list[LogState]:
        """Every witnessed log, by origin."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM logs ORDER BY origin").fetchall()
        return [_state(row) for row in rows]

    def get(self, origin: str) -> LogState:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM logs WHERE origin = ?", (origin,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"The witness does not witness the log {origin}.")
        return _state(row)

    def advance(self, batch: Sequence[Advance]) -> list[bool]:
        """Apply each compare-and-swap in order in one transaction; which ones took effect.

        Nothing is reported committed unless the transaction committed.
        """
        done: list[bool] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for op in batch:
                    cur = db.execute(
                        "UPDATE logs SET size = ?, root = ?, checkpoint = ?, cosignature = ?"
                        " WHERE origin = ? AND size = ? AND root = ?",
                        (
                            op.new_size,
                            op.new_root,
                            op.checkpoint,
                            op.cosignature,
                            op.origin,
                            op.old_size,
                            op.old_root,
                        ),
                    )
                    done.append(cur.rowcount == 1)
                if self.fault is not None:
                    self.fault("before-commit")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return done


def _state(row: tuple[str, str, int, bytes, bytes | None, bytes | None]) -> LogState:
    origin, vkey, size, root, checkpoint, cosignature = row
    return LogState(
        origin=origin,
        vkey=vkey,
        size=size,
        root=bytes(root),
        checkpoint=checkpoint,
        cosignature=cosignature,
    )
