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
settle is not an alert).  It also follows emergency live grants
(:mod:`custodes.access.live`): once one is past its review deadline (by the
log's latest entry time or the monitor's clock, whichever is later) and no
approver has approved or denied it, an ``emergency-review`` alert names it,
once per grant.  Its state is not saved: on start the monitor feeds
it the entries it accepted before, read again from the log and checked
against the remembered tree (see :meth:`Monitor.round`, step (5)).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from custodes.access.public_rules import RuleChecker, Violation
from custodes.tlog import SignedCheckpoint

__all__ = ["EmergencyReviews", "EntryCheck", "Finding", "PublicRulesCheck", "SchemaCheck"]


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

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.checker = RuleChecker()
        self.emergencies = EmergencyReviews()
        self.fed = 0
        """How many entries (0 .. fed - 1) the checker has seen."""

    def prime(self, index: int, entry: bytes) -> None:
        """Feed an entry checked in an earlier run: it builds the state, raises nothing."""
        doc = _parse(entry)
        self.checker.feed(index, doc)
        self.emergencies.feed(doc)
        self.fed = index + 1

    def check_entry(self, index: int, entry: bytes) -> list[Finding]:
        doc = _parse(entry)
        found = self.checker.feed(index, doc)
        self.emergencies.feed(doc)
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
        now = max(self.emergencies.latest_ms, int(self.clock() * 1000))
        return self.emergencies.overdue(now)


class EmergencyReviews:
    """Emergency live grants and their reviews, from the entries alone."""

    def __init__(self) -> None:
        self.review_s: dict[int, int] = {}
        self.open: dict[str, tuple[int, str, int]] = {}  # rid -> (due ms, requester, index)
        self.latest_ms = 0
        self.fed = 0

    def feed(self, doc: Any) -> None:
        from custodes.access.live import live_of
        from custodes.errors import CustodesError
        from custodes.fleet.model import parse_time

        self.fed += 1
        if not isinstance(doc, dict):
            return
        try:
            t = parse_time(doc["time"], "time")
        except (KeyError, TypeError, CustodesError):
            return
        self.latest_ms = max(self.latest_ms, t)
        kind, rid = doc.get("type"), doc.get("request")
        if kind == "policy.changed" and isinstance(doc.get("version"), int):
            got = (doc.get("policy") or {}).get("emergency_review_s", 4 * 3600)
            self.review_s[doc["version"]] = got if isinstance(got, int) else 4 * 3600
        elif kind == "access.requested" and isinstance(rid, str):
            live = live_of(doc)
            if live is not None and live[1]:
                due = t + self.review_s.get(doc.get("policy"), 4 * 3600) * 1000  # type: ignore[arg-type]
                self.open.setdefault(rid, (due, str(doc.get("requester")), self.fed - 1))
        elif kind in ("access.approved", "access.denied") and isinstance(rid, str):
            self.open.pop(rid, None)

    def overdue(self, now_ms: int) -> list[Finding]:
        from custodes.fleet.model import format_time

        return [
            Finding(
                kind="emergency-review",
                message=(
                    f"Emergency live grant {rid} of {who} was not reviewed by an approver by"
                    f" its deadline {format_time(due)}; until it is, {who} may start no"
                    " further emergency grant."
                ),
                evidence={
                    "request": rid,
                    "requester": who,
                    "due": format_time(due),
                    "requested_index": index,
                },  # fmt: skip
                key=f"emergency-review:{rid}",
            )
            for rid, (due, who, index) in sorted(self.open.items())
            if now_ms >= due
        ]
