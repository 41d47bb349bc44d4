"""Checks a monitor runs on every new entry and checkpoint, as plug-ins.

:class:`SchemaCheck` is the first: every entry must be a JSON object with a
string ``type``. Recomputing the published statistics (issue 7, section 3)
plugs in here as another :class:`EntryCheck`: it sees each new entry in
order (``check_entry``), then the verified checkpoint they lead to
(``check_checkpoint``), where it can compare its figures with the published
ones and return alerts.

:class:`PublicRulesCheck` feeds every entry to one
:class:`custodes.access.public_rules.RuleChecker` kept across rounds and
returns one ``public-rules`` finding per violation (a rule the log cannot
settle is not an alert).  Its state is not saved: on start the monitor feeds
it the entries it accepted before, read again from the log and checked
against the remembered tree (see :meth:`Monitor.round`, step (5)).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from custodes.access.public_rules import RuleChecker, Violation
from custodes.tlog import SignedCheckpoint

__all__ = ["EntryCheck", "Finding", "PublicRulesCheck", "SchemaCheck"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What a check found: an alert kind, one sentence, and evidence."""

    kind: str
    message: str
    evidence: dict[str, Any]
    key: str = ""
    """What makes this finding distinct among those of one entry (alerts are raised once)."""


class EntryCheck(Protocol):
    def check_entry(self, index: int, entry: bytes) -> Finding | Sequence[Finding] | None: ...

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


def _parse(entry: bytes) -> Any:
    try:
        return json.loads(entry)
    except (ValueError, UnicodeDecodeError):
        return None


class PublicRulesCheck:
    """The public rules over every entry, in order; one finding per violation."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.checker = RuleChecker()
        self.fed = 0
        """How many entries (0 .. fed - 1) the checker has seen."""

    def prime(self, index: int, entry: bytes) -> None:
        """Feed an entry checked in an earlier run: it builds the state, raises nothing."""
        self.checker.feed(index, _parse(entry))
        self.fed = index + 1

    def check_entry(self, index: int, entry: bytes) -> list[Finding]:
        found = self.checker.feed(index, _parse(entry))
        self.fed = index + 1
        return [self._finding(v) for v in found if not v.cannot_check]

    @staticmethod
    def _finding(v: Violation) -> Finding:
        return Finding(
            kind="public-rules",
            message=f"Entry {v.index} breaks the public rule {v.rule}: {v.reason}.",
            evidence={
                "rule": v.rule,
                "request": v.request,
                "index": v.index,
                "entries": [{"index": i, "entry": e} for i, e in v.evidence],
            },
            key=v.key,
        )

    def check_checkpoint(self, signed: SignedCheckpoint) -> list[Finding]:
        return []
