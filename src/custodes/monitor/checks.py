"""Checks a monitor runs on every new entry and checkpoint, as plug-ins.

:class:`SchemaCheck` is the first: every entry must be a JSON object with a
string ``type``. Recomputing the published statistics (issue 7, section 3)
plugs in here as another :class:`EntryCheck`: it sees each new entry in
order (``check_entry``), then the verified checkpoint they lead to
(``check_checkpoint``), where it can compare its figures with the published
ones and return alerts. It is not written yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from custodes.tlog import SignedCheckpoint

__all__ = ["EntryCheck", "Finding", "SchemaCheck"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What a check found: an alert kind, one sentence, and evidence."""

    kind: str
    message: str
    evidence: dict[str, Any]


class EntryCheck(Protocol):
    def check_entry(self, index: int, entry: bytes) -> Finding | None: ...

    def check_checkpoint(self, signed: SignedCheckpoint) -> list[Finding]: ...


class SchemaCheck:
    """Each entry is a JSON object whose ``type`` is a non-empty string."""

    def check_entry(self, index: int, entry: bytes) -> Finding | None:
        try:
            doc = json.loads(entry)
        except (ValueError, UnicodeDecodeError):
            reason = "is not JSON"
        else:
            if not isinstance(doc, dict):
                reason = "is not a JSON object"
            elif not isinstance(doc.get("type"), str) or not doc["type"]:
                reason = "has no string 'type'"
            else:
                return None
        return Finding(
            kind="schema",
            message=f"Entry {index} {reason}.",
            evidence={"index": index, "entry": entry.decode("utf-8", "replace")[:4096]},
        )

    def check_checkpoint(self, signed: SignedCheckpoint) -> list[Finding]:
        return []
