"""The public rules of DESIGN.md, checked from the public log alone: no private store, no key.

:class:`RuleChecker` is fed the log's entries in order (index, parsed body) and
keeps only what later rules need: the accounts (``user.*``), the policy
versions, camera positions, and each request's entries.  One pass, O(n) in the
log, O(requests + cameras + users) in memory.  Unknown entry kinds are ignored.

Every rule has three outcomes: passed, violated (with the entries as
evidence), or *cannot check* because the log lacks a field the rule needs;
that last one is never counted as a pass.  :func:`check_log` runs it over a
whole list and returns a :class:`Report`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from custodes.fleet.model import parse_time

__all__ = ["DECIDING_ROLES", "RULES", "Report", "RuleChecker", "Violation", "check_log"]

DECIDING_ROLES = ("approver", "judge")

RULES = (
    "requested-first",
    "approvals-logged",
    "distinct-approvers",
    "not-self-approved",
    "approver-role",
    "approver-scope",
    "enough-approvals",
    "judge-present",
    "policy-logged",
    "approvals-unexpired",
    "not-denied",
    "not-expired",
    "not-already-released",
    "disclosed-segments",
    "disclosed-judge",
)


@dataclass(frozen=True)
class Violation:
    """A broken rule (or, with ``cannot_check``, a rule the log cannot settle) and its evidence."""

    rule: str
    request: str
    reason: str
    evidence: tuple[tuple[int, dict[str, Any]], ...]
    cannot_check: bool = False

    @property
    def key(self) -> str:
        """Stable identity: the rule, the request and the index of the entry checked."""
        last = self.evidence[-1][0] if self.evidence else -1
        return f"{self.rule}:{self.request}:{last}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "request": self.request,
            "reason": self.reason,
            "outcome": "cannot check" if self.cannot_check else "violated",
            "evidence": [{"index": i, "entry": e} for i, e in self.evidence],
        }


@dataclass
class Report:
    """What one pass found: releases checked, rule outcomes, violations and unknowns."""

    entries: int = 0
    releases: int = 0
    disclosures: int = 0
    passed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    violations: list[Violation] = field(default_factory=list)
    cannot_check: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "releases": self.releases,
            "disclosures": self.disclosures,
            "passed": dict(self.passed),
            "violations": [v.to_json() for v in self.violations],
            "cannot_check": [v.to_json() for v in self.cannot_check],
        }


@dataclass
class _User:
    role: str
    scope: Any
    revoked_ms: int | None = None
    index: int = -1
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Request:
    index: int
    body: dict[str, Any]
    approvals: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    denied: tuple[int, dict[str, Any]] | None = None
    expired: tuple[int, dict[str, Any]] | None = None
    released: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value, "time")
    except Exception:  # noqa: BLE001 - a malformed time is a "cannot check", not a crash
        return None


class RuleChecker:
    """Feed entries in log order with :meth:`feed`; read :attr:`report` at any point."""

    def __init__(self) -> None:
        self.report = Report()
        # pseudonym -> history of (from_ms, _User); the last is current
        self._users: dict[str, list[tuple[int, _User]]] = {}
        self._policies: dict[int, dict[str, Any]] = {}
        self._cameras: dict[str, dict[str, Any]] = {}
        self._camera_history: dict[str, list[tuple[int, float, float]]] = {}
        self._segments: dict[str, tuple[str, int, int]] = {}
        self._requests: dict[str, _Request] = {}

    # -- feeding ---------------------------------------------------------------------

    def feed(self, index: int, obj: Any) -> list[Violation]:
        """Take one entry; returns the violations (and unknowns) it revealed."""
        self.report.entries += 1
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []
        try:
            found: list[Violation] = handler(self, index, obj)
            return found
        except (KeyError, TypeError, ValueError, AttributeError):
            return []

    def feed_all(self, entries: Iterable[tuple[int, Any]]) -> Report:
        for index, obj in entries:
            self.feed(index, obj)
        return self.report

    # -- state -----------------------------------------------------------------------

    def _user_added(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        t = _ms(obj.get("time")) or 0
        u = _User(str(obj["role"]), obj.get("scope"), None, index, obj)
        self._users.setdefault(str(obj["user"]), []).append((t, u))
        return []

    def _user_revoked(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        t = _ms(obj.get("time")) or 0
        hist = self._users.get(str(obj["user"]))
        if hist:
            last = hist[-1][1]
            hist.append((t, _User(last.role, last.scope, t, index, obj)))
        return []

    def _policy_changed(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        v = obj["version"]
        if isinstance(v, int):
            self._policies[v] = {"index": index, "policy": obj.get("policy")}
        return []

    def _camera_registered(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        cam = obj["camera"]
        if isinstance(cam, dict) and isinstance(cam.get("id"), str):
            self._cameras[cam["id"]] = dict(cam)
            self._note_position(cam["id"], obj)
        return []

    def _camera_changed(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        cam = self._cameras.get(str(obj["camera"]))
        changes = obj["changes"]
        if cam is not None and isinstance(changes, dict):
            cam.update(changes)
            if "lat" in changes or "lon" in changes:
                self._note_position(str(obj["camera"]), obj)
        return []

    def _note_position(self, cam_id: str, obj: dict[str, Any]) -> None:
        cam = self._cameras[cam_id]
        lat, lon = cam.get("lat"), cam.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            t = _ms(obj.get("time")) or 0
            self._camera_history.setdefault(cam_id, []).append((t, float(lat), float(lon)))

    def _segments_batch(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        # Today's batch entries carry a count only; if a later schema lists the
        # segments (sha256, camera, start, duration) they are kept for disclosure.
        for seg in obj.get("segments") or ():
            if isinstance(seg, dict) and isinstance(seg.get("sha256"), str):
                start = _ms(seg.get("start"))
                dur = seg.get("duration")
                if start is not None and isinstance(dur, int | float):
                    self._segments[seg["sha256"]] = (
                        str(seg.get("camera")),
                        start,
                        start + int(dur * 1000),
                    )
        return []

    def _requested(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj["request"])
        if rid not in self._requests:
            self._requests[rid] = _Request(index, obj)
        return []

    def _approved(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        req = self._requests.get(str(obj["request"]))
        if req is not None:
            req.approvals.append((index, obj))
        return []

    def _denied(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        req = self._requests.get(str(obj["request"]))
        if req is not None and req.denied is None:
            req.denied = (index, obj)
        return []

    def _expired(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        req = self._requests.get(str(obj["request"]))
        if req is not None and req.expired is None:
            req.expired = (index, obj)
        return []

    # -- the rules -------------------------------------------------------------------

    def _user_at(self, pseudonym: str, t: int) -> _User | None:
        found = None
        for since, u in self._users.get(pseudonym, ()):
            if since <= t:
                found = u
            else:
                break
        return found

    def _released(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj.get("request"))
        self.report.releases += 1
        out: list[Violation] = []
        rel = (index, obj)

        def judge(
            rule: str, ok: bool | None, reason: str, *evidence: tuple[int, dict[str, Any]]
        ) -> None:
            if ok is True:
                self.report.passed[rule] += 1
                return
            v = Violation(rule, rid, reason, (*evidence, rel), cannot_check=ok is None)
            (self.report.cannot_check if ok is None else self.report.violations).append(v)
            out.append(v)

        req = self._requests.get(rid)
        if req is None:
            judge("requested-first", False, f"{rid} was released with no access.requested before")
            return out
        judge("requested-first", True, "")
        rq = (req.index, req.body)
        t = _ms(obj.get("time"))
        approvals = req.approvals
        judge(
            "approvals-logged",
            bool(approvals),
            f"{rid} was released with no logged access.approved",
            rq,
        )
        approvers = [str(a.get("approver")) for _, a in approvals]
        dup = sorted({p for p in approvers if approvers.count(p) > 1})
        judge(
            "distinct-approvers",
            not dup,
            f"{rid} counts more than one approval from {', '.join(dup)}",
            rq,
            *approvals,
        )
        requester = req.body.get("requester")
        selfs = [a for a in approvals if a[1].get("approver") == requester]
        judge(
            "not-self-approved",
            not selfs,
            f"{rid} was approved by its own requester {requester}",
            rq,
            *selfs,
        )
        # role and scope, at decision time, per the logged user.* entries
        bad_role: list[tuple[int, dict[str, Any]]] = []
        bad_scope: list[tuple[int, dict[str, Any]]] = []
        unknown_scope: list[tuple[int, dict[str, Any]]] = []
        judges = 0
        districts = req.body.get("districts")
        for a in approvals:
            at = _ms(a[1].get("time")) or 0
            u = self._user_at(str(a[1].get("approver")), at)
            if u is None or u.revoked_ms is not None or u.role not in DECIDING_ROLES:
                bad_role.append(a)
                if u is not None:
                    bad_role.append((u.index, u.body))
                continue
            if u.role == "judge":
                judges += 1
            if u.scope == "all":
                continue
            if not isinstance(districts, list) or not isinstance(u.scope, dict):
                unknown_scope.append(a)
            elif not set(districts) <= set(u.scope.get("districts") or ()):
                (unknown_scope if u.scope.get("groups") else bad_scope).append(a)
        judge(
            "approver-role",
            not bad_role,
            f"{rid} was approved by someone who did not hold approver or judge then"
            " (unknown, revoked, or another role)",
            rq,
            *bad_role,
        )
        if bad_scope:
            judge(
                "approver-scope",
                False,
                f"{rid} was approved outside the approver's scope",
                rq,
                *bad_scope,
            )
        elif unknown_scope:
            judge(
                "approver-scope",
                None,
                "cannot check: field missing (the request logs districts, not camera groups;"
                " an approver scoped by group cannot be checked)",
                rq,
                *unknown_scope,
            )
        else:
            judge("approver-scope", True, "")
        needs = req.body.get("needs")
        good = len(
            {str(a[1].get("approver")) for a in approvals if a not in bad_role} - {requester}
        )
        if not isinstance(needs, dict) or not isinstance(needs.get("approvals"), int):
            judge("enough-approvals", None, "cannot check: field missing (needs)", rq)
            judge("judge-present", None, "cannot check: field missing (needs)", rq)
        else:
            judge(
                "enough-approvals",
                good >= needs["approvals"],
                f"{rid} needs {needs['approvals']} approvals and has {good} valid",
                rq,
                *approvals,
            )
            judge(
                "judge-present",
                not needs.get("judge") or judges > 0,
                f"{rid} needs a judge and none approved",
                rq,
                *approvals,
            )
        pv = req.body.get("policy")
        if not isinstance(pv, int):
            judge("policy-logged", None, "cannot check: field missing (policy)", rq)
        else:
            pol = self._policies.get(pv)
            judge(
                "policy-logged",
                pol is not None and pol["index"] < req.index,
                f"{rid} was judged under policy version {pv}, which the log did not hold before",
                rq,
            )
        if t is None:
            judge("approvals-unexpired", None, "cannot check: field missing (time)", rq)
        else:
            lapsed = [a for a in approvals if (_ms(a[1].get("expires")) or -1) < t]
            missing = [a for a in approvals if _ms(a[1].get("expires")) is None]
            if missing and len(missing) == len(lapsed):
                judge(
                    "approvals-unexpired",
                    None,
                    "cannot check: field missing (expires)",
                    rq,
                    *missing,
                )
            else:
                judge(
                    "approvals-unexpired",
                    not lapsed,
                    f"{rid} was released on an approval that had expired",
                    rq,
                    *lapsed,
                )
        ev_d = (req.denied,) if req.denied else ()
        judge("not-denied", req.denied is None, f"{rid} was denied before its release", rq, *ev_d)
        ev_e = (req.expired,) if req.expired else ()
        judge(
            "not-expired", req.expired is None, f"{rid} had expired before its release", rq, *ev_e
        )
        judge(
            "not-already-released",
            not req.released,
            f"{rid} was released a second time",
            rq,
            *req.released,
        )
        req.released.append(rel)
        return out

    def _disclosed(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj.get("request"))
        self.report.disclosures += 1
        req = self._requests.get(rid)
        out: list[Violation] = []
        dis = (index, obj)

        def judge(rule: str, ok: bool | None, reason: str, *ev: tuple[int, dict[str, Any]]) -> None:
            if ok is True:
                self.report.passed[rule] += 1
                return
            v = Violation(rule, rid, reason, (*ev, dis), cannot_check=ok is None)
            (self.report.cannot_check if ok is None else self.report.violations).append(v)
            out.append(v)

        if req is None or not req.released:
            return out
        cams = obj.get("cameras")
        f, to = _ms(obj.get("from")), _ms(obj.get("to"))
        if not isinstance(cams, list) or f is None or to is None:
            judge("disclosed-segments", None, "cannot check: field missing (cameras/from/to)")
            return out
        rq = (req.index, req.body)
        for r in req.released:
            segs = r[1].get("segments") or []
            known = [self._segments.get(s) for s in segs]
            if any(k is None for k in known):
                judge(
                    "disclosed-segments",
                    None,
                    "cannot check: field missing (the log does not tie a segment digest"
                    " to its camera and time)",
                    rq,
                    r,
                )
                continue
            outside = [
                k for k in known if k is not None and (k[0] not in cams or k[2] <= f or k[1] >= to)
            ]
            judge(
                "disclosed-segments",
                not outside,
                f"{rid} released segments outside its disclosed cameras and window",
                rq,
                r,
            )
        pv = req.body.get("policy")
        pol = self._policies.get(pv) if isinstance(pv, int) else None
        if pol is None or not isinstance(pol.get("policy"), dict):
            judge("disclosed-judge", None, "cannot check: field missing (policy)", rq)
            return out
        from custodes.access.policy import Policy

        try:
            policy = Policy.parse(pol["policy"], pv if isinstance(pv, int) else 0)
        except Exception:  # noqa: BLE001 - a logged policy that no longer parses
            judge("disclosed-judge", None, "cannot check: the logged policy does not parse", rq)
            return out
        points = []
        for c in cams:
            hist = self._camera_history.get(str(c), [])
            # positions in force during the window: the last before it and any during it
            before = [p for p in hist if p[0] <= f]
            during = [p for p in hist if f < p[0] < to]
            points += [(p[1], p[2]) for p in before[-1:] + during]
        sensitive = bool(policy.touched_zones(points, f, to))
        judged = any(
            (u := self._user_at(str(a[1].get("approver")), _ms(a[1].get("time")) or 0)) is not None
            and u.role == "judge"
            for a in req.approvals
        )
        judge(
            "disclosed-judge",
            not sensitive or judged,
            f"{rid} touched a sensitive zone by its cameras' logged positions and had no judge",
            rq,
            *req.approvals,
        )
        return out


_HANDLERS: dict[str, Any] = {
    "user.added": RuleChecker._user_added,
    "user.revoked": RuleChecker._user_revoked,
    "policy.changed": RuleChecker._policy_changed,
    "camera.registered": RuleChecker._camera_registered,
    "camera.changed": RuleChecker._camera_changed,
    "segments.batch": RuleChecker._segments_batch,
    "access.requested": RuleChecker._requested,
    "access.approved": RuleChecker._approved,
    "access.denied": RuleChecker._denied,
    "access.expired": RuleChecker._expired,
    "access.released": RuleChecker._released,
    "access.disclosed": RuleChecker._disclosed,
}


def check_log(entries: Iterable[Any]) -> Report:
    """Check the public rules over entries in log order (bodies, or (index, body) pairs)."""
    checker = RuleChecker()
    for i, e in enumerate(entries):
        if isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], int):
            checker.feed(e[0], e[1])
        else:
            checker.feed(i, e)
    return checker.report
