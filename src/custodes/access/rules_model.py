"""The public rules' vocabulary: the rule names, the report, and the small records and
helpers the checker (:mod:`custodes.access.public_rules`) keeps its state in.

Like the checker, this imports nothing private: no store, no key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custodes.errors import CustodesError
from custodes.fleet.model import parse_time

DECIDING_ROLES = ("approver", "judge")

RULES = (
    "requested-first",
    "release-link",
    "approvals-logged",
    "distinct-approvers",
    "not-self-approved",
    "approver-role",
    "approver-scope",
    "enough-approvals",
    "judge-present",
    "policy-logged",
    "policy-in-force",
    "approvals-unexpired",
    "not-denied",
    "not-expired",
    "not-already-released",
    "exported-release",
    "denied-request-logged",
    "denier-role",
    "denier-not-requester",
    "expired-request-logged",
    "disclosed-segments",
    "disclosed-judge",
    "live-minutes",
    "emergency-reviewed",
    "viewed-live-grant",
    "viewed-in-window",
    "revoker-role",
    "well-formed",
)

Ev = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Violation:
    """A broken rule (or, with ``cannot_check``, a rule the log cannot settle) and its evidence."""

    rule: str
    request: str
    reason: str
    evidence: tuple[Ev, ...]
    cannot_check: bool = False

    @property
    def index(self) -> int:
        """The index of the entry checked (the last piece of evidence)."""
        return self.evidence[-1][0] if self.evidence else -1

    @property
    def key(self) -> str:
        """Stable identity: the rule, the request and the index of the entry checked."""
        return f"{self.rule}:{self.request}:{self.index}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "request": self.request,
            "reason": self.reason,
            "outcome": "cannot check" if self.cannot_check else "violated",
            "evidence": [{"index": i, "type": e.get("type"), "entry": e} for i, e in self.evidence],
        }


@dataclass
class Report:
    """What one pass found: entries checked by kind, rule outcomes, violations and unknowns."""

    entries: int = 0
    releases: int = 0
    denials: int = 0
    expiries: int = 0
    disclosures: int = 0
    passed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    violations: list[Violation] = field(default_factory=list)
    cannot_check: list[Violation] = field(default_factory=list)
    judged: list[list[Any]] = field(default_factory=list)
    """One row per entry judged: [index, type, request, rules passed, rules checked]."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "releases": self.releases,
            "denials": self.denials,
            "expiries": self.expiries,
            "disclosures": self.disclosures,
            "rules": {
                r: {"checked": self.checked[r], "passed": self.passed[r]}
                for r in RULES
                if self.checked[r]
            },
            "violations": [v.to_json() for v in self.violations],
            "cannot_check": [v.to_json() for v in self.cannot_check],
        }


@dataclass(frozen=True)
class _User:
    """An account as the log held it at one point (never mutated: decisions keep it)."""

    role: str
    scope: Any
    revoked: bool
    index: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Decision:
    index: int
    body: dict[str, Any]
    request: str
    who: str
    user: _User | None
    expires_ms: int | None

    @property
    def ev(self) -> Ev:
        return (self.index, self.body)


@dataclass
class _Request:
    index: int
    body: dict[str, Any]
    approvals: list[_Decision] = field(default_factory=list)
    denied: Ev | None = None
    expired: Ev | None = None
    released: list[Ev] = field(default_factory=list)
    exported: list[Ev] = field(default_factory=list)

    @property
    def ev(self) -> Ev:
        return (self.index, self.body)


_MINUTES: dict[str, int] = {}


def _ms(value: Any) -> int | None:
    """Milliseconds of an RFC 3339 time; None if it is not one (a "cannot check", not a crash).

    The form every entry uses (``2026-01-02T03:04:05.678Z`` or without the
    fraction) is read by slicing, with the minute's start (checked by the
    strict :func:`custodes.fleet.model.parse_time`) cached; anything else goes
    through ``parse_time`` itself.
    """
    if not isinstance(value, str):
        return None
    n = len(value)
    if (n == 24 or n == 20) and value[-1] == "Z" and value[16] == ":":
        minute = _MINUTES.get(value[:16])
        if minute is None:
            minute = _ms_slow(value[:16] + ":00Z")
            if minute is None:
                return None
            if len(_MINUTES) > 50_000:
                _MINUTES.clear()
            _MINUTES[value[:16]] = minute
        ss = value[17:19]
        if n == 20:
            if ss.isdigit() and ss < "61":
                return minute + min(int(ss), 59) * 1000
        else:
            frac = value[20:23]
            if value[19] == "." and ss.isdigit() and frac.isdigit() and ss < "61":
                return minute + min(int(ss), 59) * 1000 + int(frac)
    return _ms_slow(value)


def _ms_slow(value: str) -> int | None:
    try:
        return parse_time(value, "time")
    except CustodesError:
        return None


def _scope_covers(scope: Any, districts: Any, groups: Any, places: Any = None) -> bool | None:
    """Whether ``scope`` (as ``user.added`` logs it) covers a request's places; None: unknown.

    From v2 the request logs ``places``, the (district, groups) of its
    cameras, and the check is exact: every place must be inside the scope.
    Before, the log holds the request's districts (and perhaps its groups) as
    sets, not per camera, so a scope that leaves a district out but has groups
    can only be settled when none of the request's groups is among them.
    """
    if scope == "all":
        return True
    if not isinstance(scope, dict):
        return None
    own_d = set(scope.get("districts") or ())
    own_g = set(scope.get("groups") or ())
    if not own_d and not own_g:
        return True
    if isinstance(places, list):
        return all((bool(p[0]) and p[0] in own_d) or bool(own_g.intersection(p[1])) for p in places)
    if not isinstance(districts, list):
        return None
    if set(districts) <= own_d:
        return True
    if not own_g:
        return False
    if isinstance(groups, list) and not own_g.intersection(groups):
        return False
    return None


class _Judge:
    """Records one checked entry's rule outcomes into the report (or nowhere, out of period)."""

    __slots__ = ("checked", "counted", "out", "report", "request", "row")

    def __init__(self, report: Report, request: str, checked: Ev, counted: bool) -> None:
        self.report, self.request, self.checked, self.counted = report, request, checked, counted
        self.out: list[Violation] = []
        self.row: list[Any] | None = None

    def __call__(self, rule: str, ok: bool | None, reason: str, *evidence: Ev) -> None:
        if not self.counted:
            return
        rep = self.report
        if self.row is None:
            self.row = [self.checked[0], self.checked[1].get("type"), self.request, 0, 0]
            rep.judged.append(self.row)
        self.row[4] += 1
        rep.checked[rule] += 1
        if ok is True:
            self.row[3] += 1
            rep.passed[rule] += 1
            return
        v = Violation(rule, self.request, reason, (*evidence, self.checked), ok is None)
        (rep.cannot_check if ok is None else rep.violations).append(v)
        self.out.append(v)

    def passed(self, rules: list[str]) -> None:
        """Count ``rules`` as checked and passed, in one go."""
        if not self.counted or not rules:
            return
        rep = self.report
        if self.row is None:
            self.row = [self.checked[0], self.checked[1].get("type"), self.request, 0, 0]
            rep.judged.append(self.row)
        self.row[3] += len(rules)
        self.row[4] += len(rules)
        checked, passed = rep.checked, rep.passed
        for r in rules:
            checked[r] += 1
            passed[r] += 1
