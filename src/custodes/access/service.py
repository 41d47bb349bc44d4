"""The access gateway: requests, two-person approval, release, reveal, sweep and flags.

Every action that changes anything is a log entry first: the service builds
the entry, hands it to the :class:`~custodes.access.requests.Committer`
(group commit: concurrent callers share one durable append), and only once
the entry is sequenced does the action count.  If the log cannot be written
the action raises :class:`~custodes.errors.StoreUnavailableError` and nothing
happened (fail closed).

Who may do what (the authorisation matrix the tests walk through):

==================  ==================================================
request             investigator, within their scope
get                 the requester; approvers and judges whose scope
                    covers it; auditors
approve / deny      approver or judge, never the requester, within scope;
                    a judge where the request touches a sensitive zone
release             the requester, while every approval is valid
reveal              auditor or judge
sealed, flags       auditor
policy set          admin
==================  ==================================================

Refusals of the wrong person raise :class:`Forbidden` (HTTP 403); the rest are
the usual :mod:`custodes.errors` classes.  Every method takes ``now_ms`` so
that tests and the simulator can run the clock.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.access import entries as E
from custodes.access.authority import AuthorityMixin
from custodes.access.filing import FilingMixin
from custodes.access.identity import Identities, User
from custodes.access.logview import LogView
from custodes.access.opening import Opening
from custodes.access.policy import Policy, PolicyFile
from custodes.access.reading import ReadingMixin
from custodes.access.release import Committer, Ledger
from custodes.access.requests import (
    AccessDB,
    DecisionRow,
    Forbidden,
    RequestInput,
    RequestRow,
    check_text,
    load_case_key,
    resolve_cameras,
)
from custodes.errors import (
    ConflictError,
    FormatError,
    NotFoundError,
)
from custodes.fleet.model import format_time
from custodes.fleet.model import now_ms as _now_ms
from custodes.fleet.registry import FleetDB

__all__ = ["AccessService", "Forbidden", "ReleasePlan", "RequestInput"]

MAX_WINDOW_MS = 31 * 86_400_000
DECIDERS = ("approver", "judge")


@dataclass(frozen=True)
class ReleasePlan:
    """A release that passed every check: what may leave, and how."""

    request: RequestRow
    cameras: tuple[str, ...]
    from_ms: int
    to_ms: int
    unredacted: bool
    requested: int = -1
    """The log index of the request's ``access.requested``."""
    approvals: tuple[int, ...] = ()
    """The log indexes of the ``access.approved`` entries the release relies on."""


class AccessService(AuthorityMixin, ReadingMixin, FilingMixin):
    """The gateway over one instance: the running log, the fleet index and the identities."""

    def __init__(self, ledger: Ledger, fleet: FleetDB, ids: Identities, data: Path) -> None:
        self.ledger = ledger
        self.fleet = fleet
        self.ids = ids
        self.data = Path(data)
        self.db = AccessDB(self.data)
        self.policies = PolicyFile(self.data)
        self._case_key = load_case_key(self.data)
        self._sealer = ids.sealer()
        self._locks = [threading.Lock() for _ in range(64)]
        self._policy_lock = threading.Lock()
        self._policy: Policy | None = None
        self._released: set[str] = set()
        self._cutting = threading.BoundedSemaphore(2)  # clips cut and redacted at once
        self.view = LogView()
        self._sealed_ok: dict[str, tuple[Any, ...]] = {}
        self.opening = Opening(self)
        self._sync(verify=True)
        self._check_policy_file()
        self.catch_up()
        self.committer = Committer(ledger, self.db)

    def close(self) -> None:
        self.committer.close()
        self.db.close()

    def _lock(self, rid: str) -> threading.Lock:
        return self._locks[hash(rid) % len(self._locks)]

    def _commit(self, items: list[tuple[dict[str, Any], str, str]]) -> int:
        return self.committer.submit(items)

    # -- start-up ---------------------------------------------------------------------

    def catch_up(self) -> int:
        """Take into access.db the access entries the log holds past ``meta.applied``."""

        def work(log: Any) -> int:
            end = log.store.next_index()
            start = self.db.applied()
            n = 0
            while start < end:
                stop = min(end, start + 4096)
                raw = log.store.read_entries(start, stop)
                with self.db.transaction():
                    for i, data in enumerate(raw):
                        if b'"type":"access.' not in data and b'"type":"anomaly.' not in data:
                            continue
                        obj = json.loads(data)
                        name = ""
                        if obj.get("type") in ("access.approved", "access.denied"):
                            who = self.ids.by_pseudonym(obj["approver"])
                            name = who.name if who else ""
                        self.db.apply(start + i, obj, name=name)
                        n += 1
                    self.db.set_applied(stop)
                start = stop
            return n

        return self.ledger.write(work)

    # -- policy -----------------------------------------------------------------------

    def policy(self, now_ms: int | None = None) -> Policy:
        """The policy in force: the latest ``policy.changed`` in the log (policy.json is its
        cache); the default is logged at first use."""
        logged = self.view.policy()
        if logged is None:
            with self._policy_lock:
                if self.view.policy() is None:
                    now = _now_ms() if now_ms is None else now_ms
                    self._log_policy({}, 1, now)
                logged = self.view.policy()
                assert logged is not None
        version, doc = logged
        pol = self._policy
        if pol is None or pol.version != version:
            pol = self._policy = Policy.parse(doc, version)
        return pol

    def _log_policy(self, doc: object, version: int, now: int) -> tuple[Policy, int, str]:
        """Log ``policy.changed`` first, then write policy.json (its cache)."""
        new = Policy.parse(doc, version)
        entry = E.policy_changed(new.version, new.doc, now)
        index = self._commit([(entry, "", "")])
        self._sync()
        self.policies.write(new)
        self._policy = new
        return new, index, str(entry["sha256"])

    def set_policy(self, user: User, doc: object, now_ms: int | None = None) -> dict[str, Any]:
        """Admin only: log ``policy.changed`` with the new document, then make it current."""
        self._fresh(user, ("admin",), "change the policy")
        self.policy(now_ms)  # the default is version 1, logged before any change
        with self._policy_lock:
            now = _now_ms() if now_ms is None else now_ms
            logged = self.view.policy()
            new, index, digest = self._log_policy(doc, (logged[0] if logged else 0) + 1, now)
        return {"version": new.version, "index": index, "sha256": digest}

    # -- who ----------------------------------------------------------------------------

    def _fresh(self, user: User, roles: tuple[str, ...], doing: str) -> User:
        """The user as the identity store has them now (active, in one of ``roles``), and as
        the log has them: an identity store that says otherwise is refused with an alert."""
        self._sync()
        now = self.ids.get(user.name)
        if now is None or not now.active:
            raise Forbidden(f"the account {user.name} is revoked, so it may not {doing}")
        acc = self.view.account(now.pseudonym)
        if acc is None or not acc.active or acc.role != now.role or acc.scope != now.scope:
            said = "nothing" if acc is None else (
                f"{'an active' if acc.active else 'a revoked'} {acc.role} ({acc.scope})"
            )  # fmt: skip
            raise self._mismatch(
                f"the identity store says {now.pseudonym} is an active {now.role}"
                f" ({now.scope}), the log says {said}"
            )
        if now.role not in roles:
            raise Forbidden(f"only {' or '.join(roles)} users may {doing}; you are {now.role}")
        return now

    @staticmethod
    def _made_by(user: User, row: RequestRow) -> bool:
        """This account made the request: the same name *and* pseudonym, since a name added
        again after a revocation is a new person with nothing of the old one."""
        return row.requester == user.name and row.pseudonym == user.pseudonym

    def _covers(self, user: User, row: RequestRow) -> bool:
        """The request's places (as access.db has them, and as its logged entry has them)
        all lie within the user's scope."""
        req = self.view.request(row.id)
        logged = req.places if req is not None else []
        return all(user.scope.covers(d, g) for d, g in [*row.places, *logged])

    # -- requests -----------------------------------------------------------------------

    def request(self, user: User, inp: RequestInput, now_ms: int | None = None) -> str:
        """An investigator's request: sealed details kept here, the safe facts logged."""
        me = self._fresh(user, ("investigator",), "request footage")
        now = _now_ms() if now_ms is None else now_ms
        pol = self.policy(now)
        for d in (pol.check_purpose(inp.purpose), pol.check_case(inp.case)):
            if not d.allow:
                raise FormatError(d.reason)
        check_text(inp.justification, "justification", 4000)
        if not inp.from_ms < inp.to_ms:
            raise FormatError("the window must end after it starts")
        if inp.to_ms - inp.from_ms > MAX_WINDOW_MS:
            raise FormatError("the window may be at most 31 days long")
        if inp.from_ms > now:
            raise FormatError("the window starts in the future; only recorded footage is released")
        if inp.to_ms > now:
            raise FormatError(
                "the window ends in the future; only footage already recorded is released"
                " (live viewing will be its own kind of grant)"
            )
        cams = self.ledger.read(lambda _log: resolve_cameras(self.fleet, inp))
        outside = [
            c.id for c in cams if not me.scope.covers(c.district, (c.zone,) if c.zone else ())
        ]
        if outside:
            raise Forbidden(f"camera {outside[0]} is outside your scope ({me.scope})")
        zones = self._zones_when_recorded(cams, inp.from_ms, inp.to_ms, pol)
        window_s = (inp.to_ms - inp.from_ms + 999) // 1000
        approvals, judge, _why = pol.needs(len(cams), window_s, bool(zones))
        rid = "r-" + secrets.token_hex(8)
        scope: dict[str, Any]
        if inp.area is not None:
            scope = {"area": {"lat": inp.area[0], "lon": inp.area[1], "radius_m": inp.area[2]}}
        elif inp.polygon:
            scope = {"polygon": [list(p) for p in inp.polygon]}
        else:
            scope = {"cameras": sorted(set(inp.cameras))}
        details = {
            "request": rid,
            "requester": me.pseudonym,
            "case": inp.case,
            "purpose": inp.purpose,
            "justification": inp.justification,
            "scope": scope,
            "cameras": [c.id for c in cams],
            "from": format_time(inp.from_ms),
            "to": format_time(inp.to_ms),
        }
        self._file_request(
            me, rid, now, pol, inp.purpose, inp.case, cams, zones, inp.from_ms, inp.to_ms,
            details, window_s=window_s, approvals=approvals, judge=judge,
        )  # fmt: skip
        return rid

    # -- state --------------------------------------------------------------------------

    def _row(self, rid: object) -> RequestRow:
        row = self.db.request(rid) if isinstance(rid, str) and len(rid) <= 64 else None
        if row is None:
            raise NotFoundError(f"there is no request {str(rid)[:64]}")
        return row

    def _status(self, row: RequestRow, now: int) -> dict[str, Any]:
        """The request's state and its decisions, as of ``now``."""
        decs = self.db.decisions(row.id)
        yes = [d for d in decs if d.approved]
        no = [d for d in decs if not d.approved]
        release = self.db.release(row.id)
        complete = len(yes) >= row.approvals and (
            not row.judge or any(d.role == "judge" for d in yes)
        )
        expires = min((d.expires_ms or 0) for d in yes) if complete else None
        pol = self.policy(now)
        if release is not None or row.id in self._released:
            state = "released"
        elif no:
            state = "denied"
        elif row.expired_ms is not None:
            state = "expired"
        elif complete:
            state = "approved" if expires is not None and now < expires else "expired"
        elif now >= row.created_ms + pol["request_ttl_s"] * 1000:
            state = "expired"
        else:
            state = "pending"
        return {
            "state": state,
            "approvals": yes,
            "denials": no,
            "complete": complete,
            "expires": expires,
            "release": release,
        }

    def _clip_of(self, rid: str, entry: dict[str, Any], index: int) -> tuple[int, str]:
        """The entry naming a released clip, and its sha256: ``access.released`` itself, or
        under custody the ``access.exported`` of that release."""
        if "output" in entry:
            return index, str(entry["output"]["sha256"])
        got = self.opening.exported(index)
        if got is None:
            raise ConflictError(
                f"the footage of request {rid} was never opened, so there is no clip to fetch;"
                " ask for its release again"
            )
        return got[0], str(got[1]["output"]["sha256"])

    @staticmethod
    def _needs_judge_now(row: RequestRow, yes: list[DecisionRow]) -> bool:
        """The next approval is the last one, and the judge the request needs is missing."""
        return (
            row.judge and not any(d.role == "judge" for d in yes) and len(yes) + 1 >= row.approvals
        )

    # -- decisions ----------------------------------------------------------------------

    def _decide_checks(
        self, user: User, rid: str, now: int
    ) -> tuple[User, RequestRow, dict[str, Any]]:
        me = self._fresh(user, DECIDERS, "decide requests")
        row = self._row(rid)
        if row.requester == me.name or row.pseudonym == me.pseudonym:
            raise Forbidden("you made this request; a second person must decide it")
        if not self._covers(me, row):
            raise Forbidden("this request is outside your scope, so you may not decide it")
        st = self._log_state(row, now)
        if st["state"] != "pending":
            raise ConflictError(f"request {rid} is {st['state']}, so it can no longer be decided")
        req = self.view.request(rid)
        if req is not None and any(d.approver == me.pseudonym for d in req.decisions):
            raise ConflictError(f"you have already decided request {rid}")
        return me, row, st

    def approve(
        self,
        user: User,
        rid: str,
        unredacted: bool = False,
        reason: str = "",
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        now = _now_ms() if now_ms is None else now_ms
        if reason:
            check_text(reason, "reason", 1000)
        with self._lock(rid):
            me, row, st = self._decide_checks(user, rid, now)
            if self._needs_judge_now(row, st["approvals"]) and me.role != "judge":
                raise Forbidden("this request touches a sensitive zone, so a judge must approve it")
            pol = self.policy(now)
            expires = now + pol["approval_ttl_s"] * 1000
            yes = len(st["approvals"]) + 1
            judged = me.role == "judge" or any(d.role == "judge" for d in st["approvals"])
            complete = yes >= row.approvals and (judged or not row.judge)
            entry = E.access_approved(
                rid, me.pseudonym, me.role, expires_ms=expires, unredacted=bool(unredacted),
                complete=complete, reason=reason or "approved", now_ms=now,
            )  # fmt: skip
            index = self._commit([(entry, "", me.name)])
            logged = self.view.request(rid) if complete else None
            live = logged.entry.get("live") if logged is not None else None
            if isinstance(live, dict) and not live.get("emergency"):
                end = now + int(live["minutes"]) * 60_000  # the window the log now fixes
                with self.db.lock:
                    self.db.conn.execute(
                        "UPDATE req_requests SET from_ms = ?, to_ms = ? WHERE id = ?",
                        (now, end, rid),
                    )
        return {
            "request": rid,
            "state": "approved" if complete else "pending",
            "complete": complete,
            "expires": format_time(expires),
            "index": index,
        }

    def deny(self, user: User, rid: str, reason: str, now_ms: int | None = None) -> dict[str, Any]:
        now = _now_ms() if now_ms is None else now_ms
        check_text(reason, "reason for a denial", 1000)
        with self._lock(rid):
            me, _row, _st = self._decide_checks(user, rid, now)
            entry = E.access_denied(rid, me.pseudonym, me.role, reason, now)
            index = self._commit([(entry, "", me.name)])
        return {"request": rid, "state": "denied", "index": index}

    # -- release ------------------------------------------------------------------------

    def check_release(
        self,
        user: User,
        rid: str,
        cameras: tuple[str, ...] | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        now_ms: int | None = None,
        *,
        reopen: bool = False,
    ) -> ReleasePlan:
        """Every check a release must pass, done again right before its entry is logged.

        ``reopen``: the request's custody release is logged but its opening failed; it may
        be opened again (the same checks, on an approval still valid)."""
        now = _now_ms() if now_ms is None else now_ms
        me = self._fresh(user, ("investigator",), "receive footage")
        row = self._row(rid)
        if not self._made_by(me, row):
            raise Forbidden("only the investigator who made the request may receive its footage")
        logged = self.view.request(rid)
        if logged is not None and "live" in logged.entry:
            raise Forbidden(
                f"request {rid} is a live grant: it is watched at /access/live/{rid}/watch,"
                " never exported as a clip"
            )
        self._check_sealed(row)
        st = self._log_state(row, now)
        if reopen and st["state"] == "released":
            if st["expires"] is None or now >= st["expires"]:
                raise Forbidden(f"the approval of request {rid} expired, so nothing is released")
        elif st["state"] == "released":
            raise ConflictError(
                f"request {rid} was already released once; a release is not repeated, but its"
                " requester can fetch the logged clip again until the approval expires"
                f" (GET /access/requests/{rid}/clip)"
            )
        elif st["state"] != "approved":
            raise Forbidden(f"request {rid} is {st['state']}, not approved, so nothing is released")
        if not self._covers(me, row):
            raise Forbidden("the request is no longer inside your scope")
        for d in st["approvals"]:
            lapsed = self._decider_ok(d.approver, d.role, row)
            if lapsed:
                raise Forbidden(lapsed)
        cams = tuple(sorted(set(cameras))) if cameras else row.cameras
        outside = [c for c in cams if c not in row.cameras]
        if outside:
            raise Forbidden(f"camera {outside[0]} is outside the approved scope")
        f = row.from_ms if from_ms is None else from_ms
        t = row.to_ms if to_ms is None else to_ms
        if not row.from_ms <= f < t <= row.to_ms:
            raise Forbidden(
                f"the window must lie within the approved {format_time(row.from_ms)}"
                f" to {format_time(row.to_ms)}"
            )
        unredacted = all(d.unredacted for d in st["approvals"])
        used = tuple(d.index for d in st["approvals"])
        return ReleasePlan(row, cams, f, t, unredacted, st["requested"], used)

    def commit_release(
        self,
        user: User,
        plan: ReleasePlan,
        segments: list[str],
        redaction: dict[str, Any],
        sha256: str | None,
        size: int | None,
        now_ms: int | None = None,
        manifest: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """A release decision: check everything again, then append ``access.released`` durably.

        Only when this returns may the footage leave; if it raises, nothing may.  Under
        custody ``sha256`` and ``size`` are None: the entry is logged before the footage
        is opened (:mod:`custodes.access.opening`), and ``access.exported`` names the clip.
        """
        now = _now_ms() if now_ms is None else now_ms
        rid = plan.request.id
        with self._lock(rid):
            again = self.check_release(user, rid, plan.cameras, plan.from_ms, plan.to_ms, now)
            if again.unredacted != plan.unredacted and redaction.get("method") == "none":
                raise Forbidden("an unredacted export is no longer granted")
            me = self.ids.get(user.name)
            assert me is not None
            entry = E.access_released(
                rid, me.pseudonym, segments, redaction, sha256, size, now,
                requested=again.requested, approvals=list(again.approvals),
                policy_version=self.policy(now).version, manifest=manifest,
            )  # fmt: skip
            index = self._commit([(entry, "", "")])
            self._released.add(rid)
        return {"request": rid, "index": index, "sha256": sha256, "bytes": size,
                "segments": len(segments), "redaction": redaction}  # fmt: skip

    def release(
        self,
        user: User,
        rid: str,
        out: Path,
        cameras: tuple[str, ...] | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        """Check, cut and join the clip to a hidden file, log the release, then put it at ``out``.

        ``out`` appears only once the ``access.released`` entry is durable; on
        any failure the hidden file is removed and ``out`` is not created.
        """
        from custodes.access.release import build_clip

        custody = self.opening.on()
        reopen = custody and self.opening.pending(rid) is not None
        plan = self.check_release(user, rid, cameras, from_ms, to_ms, now_ms, reopen=reopen)
        rows = self.ledger.read(
            lambda _log: [
                s
                for c in plan.cameras
                for s in self.fleet.segments_for(c, plan.from_ms, plan.to_ms)
            ]
        )
        if custody:
            return self.opening.release(user, plan, rows, out, now_ms)
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
        kept = self._kept(rid)
        keep = kept.with_name(f".{kept.name}.{secrets.token_hex(4)}.partial")
        try:
            with self._cutting:
                built = build_clip(self.data, rows, plan, tmp)
            os.link(tmp, keep)  # kept for the requester, from before the entry is logged
            info = self.commit_release(
                user,
                plan,
                built.segments,
                built.redaction,
                built.sha256,
                built.size,
                now_ms,
                manifest=built.manifest,
            )
            os.replace(keep, kept)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            keep.unlink(missing_ok=True)
        return info
