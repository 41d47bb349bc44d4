"""The recorder agent's journal (SQLite): what it has seen, hashed, sent and uploaded.

It survives restarts of the agent and of the server; see :mod:`custodes.fleet.agent`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from custodes.errors import UsageError

__all__ = ["Journal"]


class Journal:
    """What the agent has seen, hashed and sent; survives restarts of either side."""

    def __init__(self, path: Path) -> None:
        """Open (or make) the journal at ``path``; a :class:`UsageError` naming the file
        when it cannot be made, or is not an agent's journal."""
        if path.is_dir():
            raise UsageError(f"the agent's journal {path} is a folder; name a file with --journal")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, camera TEXT NOT NULL,"
                " item TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', reason TEXT);"
                "CREATE TABLE IF NOT EXISTS beats (camera TEXT NOT NULL, time TEXT NOT NULL,"
                " PRIMARY KEY (camera, time));"
            )
            cols = {r[1] for r in self.conn.execute("PRAGMA table_info(files)")}
            if not {"path", "camera", "item", "state"} <= cols:
                raise sqlite3.DatabaseError("its files table is some other program's")
            if "uploaded" not in cols:  # 0 to do, 1 stored, -1 refused, -2 file gone
                self.conn.execute(
                    "ALTER TABLE files ADD COLUMN uploaded INTEGER NOT NULL DEFAULT 0"
                )
        except sqlite3.DatabaseError as err:
            raise UsageError(
                f"the agent's journal {path} is not an agent journal ({err}); move it aside"
                " or name another file with --journal"
            ) from None
        except OSError as err:
            raise UsageError(
                f"the agent's journal {path} cannot be opened: {err.strerror or err}"
            ) from None

    def known(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT path FROM files")}

    def add(self, path: Path, camera: str, item: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO files (path, camera, item) VALUES (?, ?, ?)",
            (str(path), camera, json.dumps(item, sort_keys=True)),
        )

    def pending(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        rows = self.conn.execute(
            "SELECT path, item FROM files WHERE state = 'pending' ORDER BY rowid LIMIT ?", (limit,)
        )
        return [(p, json.loads(i)) for p, i in rows]

    def mark(self, results: list[tuple[str, str, str | None]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "UPDATE files SET state = ?, reason = ? WHERE path = ?",
            [(s, r, p) for p, s, r in results],
        )
        self.conn.execute("COMMIT")

    def to_upload(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        rows = self.conn.execute(
            "SELECT path, item FROM files WHERE state = 'sent' AND uploaded = 0"
            " ORDER BY rowid LIMIT ?",
            (limit,),
        )
        return [(p, json.loads(i)) for p, i in rows]

    def mark_uploaded(self, path: str, value: int) -> None:
        self.conn.execute("UPDATE files SET uploaded = ? WHERE path = ?", (value, path))

    def prune(self, *, upload: bool) -> int:
        """Forget files that are done with (sent, and uploaded where uploads are on)
        and that the recorder has since deleted, so the journal does not grow forever.

        A deleted file cannot be found again, so forgetting it cannot cause a
        digest to be sent twice.  Returns how many were forgotten.
        """
        done = "state != 'pending'" + (" AND uploaded != 0" if upload else "")
        gone = [
            (p,)
            for (p,) in self.conn.execute(f"SELECT path FROM files WHERE {done}")
            if not Path(p).exists()
        ]
        if gone:
            self.conn.execute("BEGIN")
            self.conn.executemany("DELETE FROM files WHERE path = ?", gone)
            self.conn.execute("COMMIT")
        return len(gone)

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, COUNT(*) FROM files GROUP BY state")
        return {s: n for s, n in rows}
