"""The public rules of DESIGN.md, checked from the public log alone: no private store, no key.

:class:`RuleChecker` is fed the log's entries in order (index, parsed body) and
keeps only what later rules need: each account as it stands *in log order*
(``user.added``, ``user.changed``, ``user.revoked``), the policy versions,
camera positions, and each request's entries.  One pass, O(n) in the log,
O(requests + cameras + users) in memory.  Unknown entry kinds are ignored.

An approval or denial is judged by the account as the log held it when the
decision was logged: a snapshot is taken as the decision is fed, so a
revocation logged before an approval makes that approval invalid, and one
logged after it does not.

What is checked, and under which rule name:

``access.released``
    ``requested-first`` (a logged request with that id came first),
    ``release-link`` (v2: ``requested`` is the request's index and every index
    in ``approvals`` is an ``access.approved`` of this request logged before),
    ``approvals-logged``, ``distinct-approvers``, ``not-self-approved``,
    ``approver-role`` (approver or judge, not revoked, at decision time),
    ``approver-scope`` (the approver's scope then covers the request's
    districts, or with v2 its camera groups), ``enough-approvals`` and
    ``judge-present`` (as the request's ``needs`` and the logged policy
    version demand, whichever asks more), ``policy-logged`` (the request's
    policy version was logged before it), ``policy-in-force`` (v2: the
    release names the latest logged version), ``approvals-unexpired``,
    ``not-denied``, ``not-expired``, ``not-already-released``.
``access.exported``
    ``exported-release`` (under custody: it names an earlier ``access.released``
    of the same request that carries no clip digest, and only once;
    :mod:`custodes.access.rules_custody`).
``access.denied``
    ``denied-request-logged``, ``denier-role``, ``denier-not-requester``.
``access.expired``
    ``expired-request-logged``.
``access.disclosed``
    ``disclosed-segments`` and ``disclosed-judge``.
``access.requested`` (live), ``access.viewed``, ``access.revoked``
    ``live-minutes``, ``emergency-reviewed``, ``viewed-live-grant``,
    ``viewed-in-window`` and ``revoker-role`` (:mod:`custodes.access.rules_live`).

Every rule has three outcomes: passed, violated (with the entries as
evidence, the checked entry last), or *cannot check* because the log lacks a
field the rule needs; that last one is never counted as a pass.  An access
entry the checker cannot read at all is *cannot check* under ``well-formed``.
With v1 entries the v2-only rules are simply not applied.

:func:`check_log` runs a checker over a whole list and returns a :class:`Report`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from custodes.access.rules_model import (  # noqa: F401  (re-exported)
    _MINUTES,
    DECIDING_ROLES,
    RULES,
    Ev,
    Report,
    Violation,
    _Decision,
    _Judge,
    _ms,
    _ms_slow,
    _Request,
    _scope_covers,
    _User,
)
from custodes.errors import CustodesError

__all__ = ["DECIDING_ROLES", "RULES", "Report", "RuleChecker", "Violation", "check_log"]


class RuleChecker:
    """Feed entries in log order with :meth:`feed`; read :attr:`report` at any point.

    ``since_ms``/``until_ms`` limit what is *judged and counted* to entries
    whose ``time`` lies in [since, until); every entry still builds the state.
    """

    def __init__(self, *, since_ms: int | None = None, until_ms: int | None = None) -> None:
        self.report = Report()
        self.since_ms, self.until_ms = since_ms, until_ms
        self._users: dict[str, _User] = {}
        self._policies: dict[int, Ev] = {}
        self._parsed: dict[int, Any] = {}
        self._latest_policy: int | None = None
        self._cameras: dict[str, dict[str, Any]] = {}
        self._camera_history: dict[str, list[tuple[int, float, float]]] = {}
        self._segments: dict[str, tuple[str, int, int]] = {}
        self._requests: dict[str, _Request] = {}
        self._decisions: dict[int, _Decision] = {}

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
            return handler(self, index, obj)
        except (KeyError, TypeError, ValueError, AttributeError, CustodesError) as err:
            if not str(kind).startswith("access."):
                return []
            j = self._judge(str(obj.get("request")), index, obj)
            j("well-formed", None, f"cannot check: the {kind} entry is malformed ({err!r})")
            return j.out

    def feed_all(self, entries: Iterable[tuple[int, Any]]) -> Report:
        for index, obj in entries:
            self.feed(index, obj)
        return self.report

    def _judge(self, request: str, index: int, obj: dict[str, Any]) -> _Judge:
        counted = True
        if self.since_ms is not None or self.until_ms is not None:
            t = _ms(obj.get("time"))
            counted = t is not None and (
                (self.since_ms is None or t >= self.since_ms)
                and (self.until_ms is None or t < self.until_ms)
            )
        return _Judge(self.report, request, (index, obj), counted)

    def _counts(self, j: _Judge, what: str) -> None:
        if j.counted:
            d = self.report.__dict__
            d[what] += 1

    # -- state -----------------------------------------------------------------------

    def _user_added(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        self._users[str(obj["user"])] = _User(str(obj["role"]), obj.get("scope"), False, index, obj)
        return []

    def _user_changed(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        who = str(obj["user"])
        old = self._users.get(who)
        role = str(obj["role"]) if "role" in obj else (old.role if old else "")
        scope = obj["scope"] if "scope" in obj else (old.scope if old else None)
        self._users[who] = _User(role, scope, old.revoked if old else False, index, obj)
        return []

    def _user_revoked(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        who = str(obj["user"])
        old = self._users.get(who)
        role = old.role if old else str(obj.get("role"))
        self._users[who] = _User(role, old.scope if old else None, True, index, obj)
        return []

    def _policy_changed(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        v = obj["version"]
        if isinstance(v, int) and not isinstance(v, bool):
            self._policies[v] = (index, obj)
            self._latest_policy = v
        return []

    def _policy(self, version: int) -> Any:
        """The logged policy version, parsed (None if it is not logged or does not parse)."""
        if version not in self._parsed:
            from custodes.access.policy import Policy

            found = self._policies.get(version)
            try:
                doc = found[1].get("policy") if found else None
                self._parsed[version] = Policy.parse(doc, version) if doc is not None else None
            except (CustodesError, KeyError, TypeError, ValueError):
                self._parsed[version] = None
        return self._parsed[version]

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
                    end = start + int(dur * 1000)
                    self._segments[seg["sha256"]] = (str(seg.get("camera")), start, end)
        return []

    def _requested(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj["request"])
        if rid not in self._requests:
            self._requests[rid] = _Request(index, obj)
        return []

    def _decision(self, index: int, obj: dict[str, Any]) -> _Decision:
        who = str(obj.get("approver"))
        return _Decision(
            index, obj, str(obj["request"]), who, self._users.get(who), _ms(obj.get("expires"))
        )

    def _approved(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        d = self._decision(index, obj)
        self._decisions[index] = d
        req = self._requests.get(d.request)
        if req is not None:
            req.approvals.append(d)
        return []

    def _denied(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        d = self._decision(index, obj)
        j = self._judge(d.request, index, obj)
        self._counts(j, "denials")
        req = self._requests.get(d.request)
        if req is None:
            j("denied-request-logged", False, f"{d.request} was denied but never requested")
            return j.out
        j("denied-request-logged", True, "")
        u = d.user
        j(
            "denier-role",
            u is not None and not u.revoked and u.role in DECIDING_ROLES,
            f"{d.request} was denied by {d.who}, who did not hold approver or judge then",
            req.ev,
            *((u.index, u.body) for u in (u,) if u is not None),
        )
        j(
            "denier-not-requester",
            d.who != req.body.get("requester"),
            f"{d.request} was denied by its own requester {d.who}",
            req.ev,
        )
        if req.denied is None:
            req.denied = (index, obj)
        return j.out

    def _expired(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj["request"])
        j = self._judge(rid, index, obj)
        self._counts(j, "expiries")
        req = self._requests.get(rid)
        j("expired-request-logged", req is not None, f"{rid} expired but was never requested")
        if req is not None and req.expired is None:
            req.expired = (index, obj)
        return j.out

    # -- releases --------------------------------------------------------------------

    def _used(
        self, j: _Judge, req: _Request, obj: dict[str, Any], rid: str, ok: list[str]
    ) -> list[_Decision]:
        """The approvals a release rests on: named (v2) or all logged before it (v1)."""
        named = obj.get("approvals")
        linked = obj.get("requested")
        if named is None and linked is None:
            return list(req.approvals)
        bad: list[Ev] = []
        used: list[_Decision] = []
        problems = []
        if linked is not None and linked != req.index:
            problems.append(f"names {linked!r} as its request, not {req.index}")
        if named is not None:
            if not isinstance(named, list):
                problems.append("names its approvals in a malformed field")
                named = []
            for i in named:
                d = self._decisions.get(i) if isinstance(i, int) else None
                if d is None or d.request != rid:
                    problems.append(f"names {i!r}, which is no approval of this request")
                    if d is not None:
                        bad.append(d.ev)
                else:
                    used.append(d)
        else:
            used = list(req.approvals)
        if problems:
            j("release-link", False, f"the release of {rid} {'; '.join(problems)}", req.ev, *bad)
        else:
            ok.append("release-link")
        return used

    def _released(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj["request"])
        j = self._judge(rid, index, obj)
        self._counts(j, "releases")
        rel = (index, obj)
        req = self._requests.get(rid)
        if req is None:
            j("requested-first", False, f"{rid} was released with no access.requested before")
            return j.out
        # Each rule that holds goes into ``ok`` (counted at the end, in one go);
        # only a rule that fails builds its sentence and evidence.
        ok = ["requested-first"]
        rq = req.ev
        used = self._used(j, req, obj, rid, ok)
        if used:
            ok.append("approvals-logged")
        else:
            j("approvals-logged", False, f"{rid} was released with no logged access.approved", rq)
        whos = [d.who for d in used]
        if len(set(whos)) == len(whos):
            ok.append("distinct-approvers")
        else:
            twice = {w for w in whos if whos.count(w) > 1}
            j(
                "distinct-approvers",
                False,
                f"{rid} counts more than one approval from {', '.join(sorted(twice))}",
                rq,
                *(d.ev for d in used if d.who in twice),
            )
        requester = req.body.get("requester")
        if requester not in whos:
            ok.append("not-self-approved")
        else:
            j(
                "not-self-approved",
                False,
                f"{rid} was approved by its own requester {requester}",
                rq,
                *(d.ev for d in used if d.who == requester),
            )
        self._check_deciders(j, req, used, rid, requester, ok)
        self._check_policy(j, req, obj, rid, ok)
        t = _ms(obj.get("time"))
        if t is None:
            j("approvals-unexpired", None, "cannot check: field missing (time)", rq)
        else:
            lapsed = [d for d in used if d.expires_ms is not None and d.expires_ms < t]
            missing = [d for d in used if d.expires_ms is None]
            if lapsed:
                j(
                    "approvals-unexpired",
                    False,
                    f"{rid} was released on an approval that had expired",
                    rq,
                    *(d.ev for d in lapsed),
                )
            elif missing:
                j(
                    "approvals-unexpired",
                    None,
                    "cannot check: field missing (expires)",
                    rq,
                    *(d.ev for d in missing),
                )
            else:
                ok.append("approvals-unexpired")
        if req.denied is None:
            ok.append("not-denied")
        else:
            j("not-denied", False, f"{rid} was denied before its release", rq, req.denied)
        if req.expired is None:
            ok.append("not-expired")
        else:
            j("not-expired", False, f"{rid} had expired before its release", rq, req.expired)
        if not req.released:
            ok.append("not-already-released")
        else:
            j(
                "not-already-released",
                False,
                f"{rid} was released a second time",
                rq,
                *req.released,
            )
        req.released.append(rel)
        j.passed(ok)
        return j.out

    def _check_deciders(
        self,
        j: _Judge,
        req: _Request,
        used: list[_Decision],
        rid: str,
        requester: Any,
        ok: list[str],
    ) -> None:
        """approver-role, approver-scope, enough-approvals and judge-present."""
        rq = req.ev
        bad_role: list[Ev] = []
        bad_scope: list[Ev] = []
        unknown_scope: list[Ev] = []
        valid: set[str] = set()
        judges = 0
        body = req.body
        districts, groups, places = body.get("districts"), body.get("groups"), body.get("places")
        for d in used:
            u = d.user
            if u is None or u.revoked or u.role not in DECIDING_ROLES:
                bad_role.append(d.ev)
                if u is not None:
                    bad_role.append((u.index, u.body))
                continue
            covered = (
                True if u.scope == "all" else _scope_covers(u.scope, districts, groups, places)
            )
            if covered is False:
                bad_scope += [d.ev, (u.index, u.body)]
                continue
            if covered is None:
                unknown_scope.append(d.ev)
            if d.who != requester:
                valid.add(d.who)
                judges += u.role == "judge"
        if not bad_role:
            ok.append("approver-role")
        else:
            j(
                "approver-role",
                False,
                f"{rid} was approved by someone who did not hold approver or judge then"
                " (unknown, revoked, or another role)",
                rq,
                *bad_role,
            )
        if bad_scope:
            j("approver-scope", False, f"{rid} was approved outside the approver's scope", rq,
              *bad_scope)  # fmt: skip
        elif unknown_scope:
            j(
                "approver-scope",
                None,
                "cannot check: the request logs its districts (and groups) as sets, and an"
                " approver scoped by group cannot be matched camera by camera",
                rq,
                *unknown_scope,
            )
        else:
            ok.append("approver-scope")
        needs = body.get("needs")
        if not isinstance(needs, dict) or not isinstance(needs.get("approvals"), int):
            j("enough-approvals", None, "cannot check: field missing (needs)", rq)
            j("judge-present", None, "cannot check: field missing (needs)", rq)
            return
        want, want_judge = needs["approvals"], bool(needs.get("judge"))
        want_judge = want_judge or body.get("sensitive") is True
        pv = body.get("policy")
        pol = self._policy(pv) if isinstance(pv, int) else None
        cams, window = body.get("cameras"), body.get("window_s")
        if pol is not None and isinstance(cams, int) and isinstance(window, int):
            p_want, _judge, _why = pol.needs(cams, window, bool(body.get("sensitive")))
            want = max(want, p_want)
        if len(valid) >= want:
            ok.append("enough-approvals")
        else:
            j(
                "enough-approvals",
                False,
                f"{rid} needs {want} approvals and has {len(valid)} valid",
                rq,
                *(d.ev for d in used),
            )
        if not want_judge or judges > 0:
            ok.append("judge-present")
        else:
            j(
                "judge-present",
                False,
                f"{rid} needs a judge and none approved",
                rq,
                *(d.ev for d in used),
            )

    def _check_policy(
        self, j: _Judge, req: _Request, obj: dict[str, Any], rid: str, ok: list[str]
    ) -> None:
        rq = req.ev
        pv = req.body.get("policy")
        if not isinstance(pv, int):
            j("policy-logged", None, "cannot check: field missing (policy)", rq)
        else:
            pol = self._policies.get(pv)
            if pol is not None and pol[0] < req.index:
                ok.append("policy-logged")
            else:
                j(
                    "policy-logged",
                    False,
                    f"{rid} was judged under policy version {pv}, which the log did not hold"
                    " before",
                    rq,
                    *((pol,) if pol else ()),
                )
        if "policy" in obj:
            named = obj["policy"]
            latest = self._latest_policy
            if named == latest and latest is not None:
                ok.append("policy-in-force")
            else:
                j(
                    "policy-in-force",
                    False,
                    f"the release of {rid} names policy version {named!r}; the log's latest"
                    f" is {latest!r}",
                    rq,
                    *((self._policies[latest],) if latest is not None else ()),
                )

    # -- disclosures -------------------------------------------------------------------

    def _disclosed(self, index: int, obj: dict[str, Any]) -> list[Violation]:
        rid = str(obj["request"])
        j = self._judge(rid, index, obj)
        self._counts(j, "disclosures")
        req = self._requests.get(rid)
        if req is None or not req.released:
            return j.out
        cams = obj.get("cameras")
        f, to = _ms(obj.get("from")), _ms(obj.get("to"))
        if not isinstance(cams, list) or f is None or to is None:
            j("disclosed-segments", None, "cannot check: field missing (cameras/from/to)")
            return j.out
        rq = req.ev
        for r in req.released:
            known = [self._segments.get(s) for s in r[1].get("segments") or []]
            if any(k is None for k in known):
                j(
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
            j(
                "disclosed-segments",
                not outside,
                f"{rid} released segments outside its disclosed cameras and window",
                rq,
                r,
            )
        pv = req.body.get("policy")
        policy = self._policy(pv) if isinstance(pv, int) else None
        if policy is None:
            j("disclosed-judge", None, "cannot check: the request's logged policy is missing", rq)
            return j.out
        points: list[tuple[float, float]] = []
        for c in cams:
            hist = self._camera_history.get(str(c), [])
            # positions in force during the window: the last before it and any during it
            before = [p for p in hist if p[0] <= f]
            during = [p for p in hist if f < p[0] < to]
            points += [(p[1], p[2]) for p in before[-1:] + during]
        sensitive = bool(policy.touched_zones(points, f, to))
        judged = any(
            d.user is not None and not d.user.revoked and d.user.role == "judge"
            for d in req.approvals
        )
        j(
            "disclosed-judge",
            not sensitive or judged,
            f"{rid} touched a sensitive zone by its cameras' logged positions and had no judge",
            rq,
            *(d.ev for d in req.approvals),
        )
        return j.out


from custodes.access import rules_live  # noqa: E402  (it needs RuleChecker)
from custodes.access.rules_custody import exported  # noqa: E402  (it needs RuleChecker)

_Handler = Callable[[RuleChecker, int, dict[str, Any]], list[Violation]]

_HANDLERS: dict[str, _Handler] = {
    "user.added": RuleChecker._user_added,
    "user.changed": RuleChecker._user_changed,
    "user.revoked": RuleChecker._user_revoked,
    "policy.changed": RuleChecker._policy_changed,
    "camera.registered": RuleChecker._camera_registered,
    "camera.changed": RuleChecker._camera_changed,
    "segments.batch": RuleChecker._segments_batch,
    "access.requested": rules_live.requested,  # the base handler, then the live rules
    "access.approved": RuleChecker._approved,
    "access.denied": RuleChecker._denied,
    "access.expired": RuleChecker._expired,
    "access.released": RuleChecker._released,
    "access.disclosed": RuleChecker._disclosed,
    "access.exported": exported,
    "access.viewed": rules_live.viewed,
    "access.revoked": rules_live.revoked,
}


def check_log(
    entries: Iterable[Any], *, since_ms: int | None = None, until_ms: int | None = None
) -> Report:
    """Check the public rules over entries in log order (bodies, or (index, body) pairs)."""
    checker = RuleChecker(since_ms=since_ms, until_ms=until_ms)
    for i, e in enumerate(entries):
        if isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], int):
            checker.feed(e[0], e[1])
        else:
            checker.feed(i, e)
    return checker.report
