"""The public rules of live grants, from the log alone (see :mod:`custodes.access.live`).

``access.requested`` with ``live``
    ``live-minutes``: its minutes are within the logged policy's ``live_max_minutes``
    (``emergency_max_minutes`` for an emergency grant);
    ``emergency-reviewed``: an emergency grant is not started while an earlier emergency
    grant of the same requester is past its review deadline (``emergency_review_s`` of its
    policy) and still neither approved nor denied.
``access.viewed``
    ``viewed-live-grant``: it names a live grant logged before it;
    ``viewed-in-window``: it is logged inside the grant's window (an emergency grant: from
    its own time for its minutes; any other: from the approval that completed it, for its
    minutes), and before any denial, expiry or revocation of the grant; a grant that is not
    an emergency one is also judged by the approval rules of a release (``approver-role``,
    ``approver-scope``, ``enough-approvals``, ``judge-present``).
``access.revoked``
    ``revoker-role``: an approver or judge, not the grant's requester, ended it.

:func:`emergency_reviews` lists every emergency grant with its review deadline and when
(if ever) it was reviewed, so that late and missing reviews can be counted publicly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from custodes.access.rules_model import DECIDING_ROLES, Ev, Report, Violation, _ms, _Request

if TYPE_CHECKING:
    from custodes.access.public_rules import RuleChecker

__all__ = [
    "HANDLERS",
    "LIVE_RULES",
    "LiveState",
    "check_log_live",
    "emergency_reviews",
    "requested",
    "revoked",
    "viewed",
]

LIVE_RULES = (
    "live-minutes",
    "emergency-reviewed",
    "viewed-live-grant",
    "viewed-in-window",
    "revoker-role",
)
DEFAULT_REVIEW_S = 4 * 3600


@dataclass
class LiveState:
    """What the live rules keep beside the checker's own state."""

    emergencies: dict[str, list[str]] = field(default_factory=dict)  # requester -> rids
    revoked: dict[str, Ev] = field(default_factory=dict)


def live_state(checker: RuleChecker) -> LiveState:
    """The live rules' state on ``checker`` (made at first use, with the rules' counters)."""
    state: LiveState | None = checker.__dict__.get("_live_state")
    if state is None:
        state = checker.__dict__["_live_state"] = LiveState()
        for rule in LIVE_RULES:
            checker.report.checked.setdefault(rule, 0)
            checker.report.passed.setdefault(rule, 0)
    return state


HANDLERS: dict[str, Any] = {}  # filled below: kind -> handler(checker, index, obj)


def check_log_live(entries: Iterable[tuple[int, Any]]) -> Report:
    """The public rules with the live rules, over (index, body) pairs in log order."""
    from custodes.access.public_rules import RuleChecker
    from custodes.errors import CustodesError

    checker = RuleChecker()
    live_state(checker)
    for index, obj in entries:
        kind = obj.get("type") if isinstance(obj, dict) else None
        handler = HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            checker.feed(index, obj)
            continue
        checker.report.entries += 1
        try:
            handler(checker, index, obj)
        except (KeyError, TypeError, ValueError, AttributeError, CustodesError) as err:
            j = checker._judge(str(obj.get("request")), index, obj)
            j("well-formed", None, f"cannot check: the {kind} entry is malformed ({err!r})")
    return checker.report


def _live(body: dict[str, Any]) -> tuple[int, bool] | None:
    from custodes.access.live import live_of

    return live_of(body)


def _review_s(checker: RuleChecker, req: _Request) -> int:
    pol = checker._policy(req.body["policy"]) if isinstance(req.body.get("policy"), int) else None
    return int(pol["emergency_review_s"]) if pol is not None else DEFAULT_REVIEW_S


def _reviewed_ms(req: _Request) -> int | None:
    """When an approver first approved or denied the grant (None if never, so far)."""
    times = [_ms(d.body.get("time")) for d in req.approvals]
    if req.denied is not None:
        times.append(_ms(req.denied[1].get("time")))
    known = [t for t in times if t is not None]
    return min(known) if known else None


def requested(checker: RuleChecker, index: int, obj: dict[str, Any]) -> list[Violation]:
    checker._requested(index, obj)
    live = _live(obj)
    if live is None:
        return []
    rid = str(obj["request"])
    req = checker._requests[rid]
    if req.index != index:
        return []
    minutes, emergency = live
    j = checker._judge(rid, index, obj)
    pv = obj.get("policy")
    pol = checker._policy(pv) if isinstance(pv, int) else None
    key = "emergency_max_minutes" if emergency else "live_max_minutes"
    if pol is None:
        j("live-minutes", None, "cannot check: the grant's logged policy is missing")
    else:
        j(
            "live-minutes",
            minutes <= int(pol[key]),
            f"{rid} asks for {minutes} minutes live, over the policy's {key} of {pol[key]}",
        )
    if emergency:
        who = str(obj.get("requester"))
        t = _ms(obj.get("time"))
        state = live_state(checker)
        late: list[_Request] = []
        for other in state.emergencies.get(who, []):
            o = checker._requests[other]
            start = _ms(o.body.get("time"))
            if t is None or start is None:
                continue
            due = start + _review_s(checker, o) * 1000
            reviewed = _reviewed_ms(o)
            if due <= t and (reviewed is None or reviewed > t):
                late.append(o)
        j(
            "emergency-reviewed",
            not late,
            f"{who} started emergency grant {rid} while an earlier one"
            f" ({', '.join(str(o.body.get('request')) for o in late)}) was past its review"
            " deadline and not reviewed",
            *(o.ev for o in late),
        )
        state.emergencies.setdefault(who, []).append(rid)
    return j.out


def window(checker: RuleChecker, req: _Request) -> tuple[int, int] | None:
    """The grant's window by the log, or None if it has not started (not yet approved)."""
    live = _live(req.body)
    if live is None:
        return None
    minutes, emergency = live
    if emergency:
        start = _ms(req.body.get("time"))
    else:
        needed = int((req.body.get("needs") or {}).get("approvals", 1))
        approvals = sorted(req.approvals, key=lambda d: d.index)
        if len(approvals) < needed:
            return None
        start = max((_ms(d.body.get("time")) or 0) for d in approvals)
    if start is None:
        return None
    return start, start + minutes * 60_000


def viewed(checker: RuleChecker, index: int, obj: dict[str, Any]) -> list[Violation]:
    rid = str(obj["request"])
    j = checker._judge(rid, index, obj)
    req = checker._requests.get(rid)
    if req is None or _live(req.body) is None:
        j("viewed-live-grant", False, f"{rid} was viewed live but is no live grant logged before")
        return j.out
    ok = ["viewed-live-grant"]
    rq = req.ev
    _minutes, emergency = _live(req.body) or (0, False)
    if not emergency:
        checker._check_deciders(j, req, list(req.approvals), rid, req.body.get("requester"), ok)
    t = _ms(obj.get("time"))
    win = window(checker, req)
    stopped = req.denied or req.expired or live_state(checker).revoked.get(rid)
    if t is None:
        j("viewed-in-window", None, "cannot check: field missing (time)", rq)
    elif win is None:
        j("viewed-in-window", False, f"{rid} was viewed live before it was approved", rq,
          *(d.ev for d in req.approvals))  # fmt: skip
    elif stopped is not None:
        j("viewed-in-window", False, f"{rid} was viewed live after it was stopped", rq, stopped)
    elif not win[0] <= t < win[1]:
        j("viewed-in-window", False, f"{rid} was viewed live outside its window", rq,
          *(d.ev for d in req.approvals))  # fmt: skip
    else:
        ok.append("viewed-in-window")
    j.passed(ok)
    return j.out


def revoked(checker: RuleChecker, index: int, obj: dict[str, Any]) -> list[Violation]:
    rid = str(obj["request"])
    j = checker._judge(rid, index, obj)
    req = checker._requests.get(rid)
    who = str(obj.get("by"))
    u = checker._users.get(who)
    j(
        "revoker-role",
        req is not None
        and u is not None
        and not u.revoked
        and u.role in DECIDING_ROLES
        and who != req.body.get("requester"),
        f"{rid} was revoked by {who}, who was not an approver or judge other than its requester",
        *((req.ev,) if req is not None else ()),
    )
    live_state(checker).revoked.setdefault(rid, (index, obj))
    return j.out


def emergency_reviews(checker: RuleChecker, now_ms: int) -> list[dict[str, Any]]:
    """Every emergency grant fed so far: its start, deadline, review time, late or missing."""
    from custodes.fleet.model import format_time

    out = []
    for rids in live_state(checker).emergencies.values():
        for rid in rids:
            req = checker._requests[rid]
            start = _ms(req.body.get("time")) or 0
            due = start + _review_s(checker, req) * 1000
            reviewed = _reviewed_ms(req)
            out.append(
                {
                    "request": rid,
                    "requester": req.body.get("requester"),
                    "start": format_time(start),
                    "due": format_time(due),
                    "reviewed": format_time(reviewed) if reviewed is not None else None,
                    "late": reviewed is not None and reviewed > due,
                    "missing": reviewed is None and now_ms >= due,
                }
            )
    return sorted(out, key=lambda r: str(r["start"]))


HANDLERS.update({"access.requested": requested, "access.viewed": viewed, "access.revoked": revoked})
