"""What a monitor remembers between rounds, in one JSON file replaced atomically.

It holds the last checkpoint the monitor accepted (verbatim), the right edge
of that tree (one hash per maximal complete subtree) so the next round can
extend it with just the new entries, the leaf hashes of the last partial
entry bundle (to check that the bundle, once full, still starts with them),
when the log last moved, and which alerts were already raised.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from custodes.errors import UsageError
from custodes.tlog import RightEdge

__all__ = ["MonitorState"]

_MAX_ALERT_KEYS = 256


@dataclass(kw_only=True)
class MonitorState:
    checkpoint: bytes | None = None
    edge: RightEdge = field(default_factory=RightEdge)
    tail: list[bytes] = field(default_factory=list)
    last_new: float | None = None
    alerted: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> MonitorState:
        if path is None or not path.exists():
            return cls()
        try:
            doc = json.loads(path.read_text())
            return cls(
                checkpoint=doc["checkpoint"].encode() if doc["checkpoint"] else None,
                edge=RightEdge(doc["size"], [bytes.fromhex(h) for h in doc["edge"]]),
                tail=[bytes.fromhex(h) for h in doc["tail"]],
                last_new=doc["last_new"],
                alerted=list(doc["alerted"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise UsageError(f"The monitor state file {path} is not readable: {err}.") from err

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        doc = {
            "checkpoint": self.checkpoint.decode() if self.checkpoint else None,
            "size": self.edge.size,
            "edge": [h.hex() for h in self.edge.hashes],
            "tail": [h.hex() for h in self.tail],
            "last_new": self.last_new,
            "alerted": self.alerted[-_MAX_ALERT_KEYS:],
        }
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            raise UsageError(
                f"The monitor state file {path} cannot be written: {err.strerror}."
            ) from None

    def first_time(self, key: str) -> bool:
        """Whether the alert ``key`` is new; remembers it."""
        if key in self.alerted:
            return False
        self.alerted.append(key)
        return True
