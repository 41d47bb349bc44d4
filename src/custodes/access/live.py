"""Live grants: watching a camera is a request, approved and logged, each segment a release.

A live grant is an ``access.requested`` entry with ``live`` ``{"minutes": N, "emergency":
bool}``: no window of recorded footage, but N minutes that start when the approval that
completes the request is logged (the ``time`` of that ``access.approved``), so that the
window is fixed by the log alone.  An *emergency* grant starts at its own ``time``, before
any approval, for at most the policy's ``emergency_max_minutes``; it is flagged at once
(``anomaly.flagged``, rule ``emergency-grant``) and must be approved or denied by an
approver within ``emergency_review_s``; until a late one is, its requester may start no
further emergency grant.

Entries this module logs (beyond the request):

``access.viewed``   ``request``, ``by`` (pseudonym), ``segments`` (the plaintext SHA-256 of
                    each segment about to be shown), ``redaction``: logged durably before the
                    segments are opened; under custody it is what the custodians check
``access.revoked``  ``request``, ``by``, ``role``, ``reason``: an approver or judge ended a
                    live grant before its time

:class:`LiveGrants` does the requests and the state; :mod:`custodes.access.live_view`
serves the segments.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from custodes.access import entries as E
from custodes.access.folding import feed_from
from custodes.access.requests import Forbidden, RequestRow, check_text, resolve_cameras
from custodes.errors import ConflictError, FormatError, NotFoundError
from custodes.fleet.model import format_time, parse_time
from custodes.fleet.model import now_ms as _now_ms

if TYPE_CHECKING:
    from custodes.access.identity import User
    from custodes.access.service import AccessService

__all__ = ["Grant", "LiveGrants", "LiveInput", "access_revoked", "access_viewed", "live_of"]

MAX_CAMERAS_LIVE = 16


def access_viewed(
    request: str, by: str, segments: list[str], redaction: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    """Segments about to be shown under a live grant (logged before they are opened)."""
    return {"type": "access.viewed", "v": 1, "time": format_time(now_ms), "request": request,
            "by": by, "segments": segments, "redaction": redaction}  # fmt: skip


def access_revoked(request: str, by: str, role: str, reason: str, now_ms: int) -> dict[str, Any]:
    """A live grant ended early by an approver or judge."""
    return {"type": "access.revoked", "v": 1, "time": format_time(now_ms), "request": request,
            "by": by, "role": role, "reason": reason}  # fmt: skip


def live_of(entry: dict[str, Any]) -> tuple[int, bool] | None:
    """(minutes, emergency) of a logged ``access.requested``, or None if it is not live."""
    live = entry.get("live")
    if not isinstance(live, dict):
        return None
    minutes = live.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        return None
    return minutes, live.get("emergency") is True


@dataclass(frozen=True, kw_only=True)
class LiveInput:
    """What an investigator asks to watch: cameras, for how long, and why."""

    cameras: tuple[str, ...]
    minutes: int
    purpose: str
    case: str
    justification: str
    emergency: bool = False


@dataclass(frozen=True)
class Grant:
    """A live grant as the log has it now."""

    request: str
    minutes: int
    emergency: bool
    state: str
    """pending, live, ended, denied, revoked or expired."""
    start_ms: int | None
    end_ms: int | None
    unredacted: bool
    review_due_ms: int | None
    """For an emergency grant not yet reviewed: when its review is due."""
    reason: str
    requester: str = ""

    def to_json(self) -> dict[str, Any]:
        t = format_time
        return {
            "request": self.request, "live": True, "emergency": self.emergency,
            "minutes": self.minutes, "state": self.state,
            "start": t(self.start_ms) if self.start_ms is not None else None,
            "end": t(self.end_ms) if self.end_ms is not None else None,
            "unredacted": self.unredacted,
            "review_due": t(self.review_due_ms) if self.review_due_ms is not None else None,
            "reason": self.reason,
        }  # fmt: skip


@dataclass
class _Fold:
    """The live entries of the log: revocations and views, by request."""

    size: int = 0
    revoked: dict[str, tuple[int, int]] = field(default_factory=dict)  # rid -> (index, ms)
    viewed: dict[str, list[int]] = field(default_factory=dict)

    def feed(self, index: int, raw: bytes) -> None:
        self.size = index + 1
        if b'"type":"access.revoked"' in raw:
            obj = json.loads(raw)
            self.revoked.setdefault(str(obj["request"]), (index, parse_time(obj["time"], "time")))
        elif b'"type":"access.viewed"' in raw:
            obj = json.loads(raw)
            self.viewed.setdefault(str(obj["request"]), []).append(index)


class LiveGrants:
    """Live and emergency grants over one gateway (:class:`AccessService`)."""

    def __init__(self, svc: AccessService) -> None:
        self.svc = svc
        self._lock = threading.Lock()
        self._fold = _Fold()
        self._cameras: tuple[int, frozenset[str]] | None = None
        self._changed = 0  # grants revoked here: a set worked out before one is not kept

    def refresh(self) -> _Fold:
        with self._lock:
            self.svc.ledger.read(lambda log: feed_from(log.store, self._fold))
            return self._fold

    # -- requests -----------------------------------------------------------------------

    def request(self, user: User, inp: LiveInput, now_ms: int | None = None) -> dict[str, Any]:
        """A live (or emergency) grant request: sealed details kept, the safe facts logged;
        an emergency grant is flagged in the same durable append."""
        from custodes.access.flags import public_flag_id
        from custodes.access.requests import RequestInput

        svc = self.svc
        me = svc._fresh(user, ("investigator",), "watch cameras live")
        now = _now_ms() if now_ms is None else now_ms
        pol = svc.policy(now)
        for d in (
            pol.check_purpose(inp.purpose),
            pol.check_case(inp.case),
            pol.check_live(inp.minutes, inp.emergency),
        ):
            if not d.allow:
                raise FormatError(d.reason)
        check_text(inp.justification, "justification", 4000)
        if not inp.cameras:
            raise FormatError("a live grant names its cameras (--cameras ID,...)")
        if len(set(inp.cameras)) > MAX_CAMERAS_LIVE:
            raise FormatError(f"a live grant may name at most {MAX_CAMERAS_LIVE} cameras")
        if inp.emergency:
            overdue = self.overdue(me.pseudonym, now)
            if overdue:
                raise Forbidden(
                    f"your emergency grant {overdue[0]} was not reviewed in time; no further"
                    " emergency grant until an approver has reviewed it"
                )
        end = now + inp.minutes * 60_000
        rin = RequestInput(from_ms=now, to_ms=end, purpose=inp.purpose, case=inp.case,
                           justification=inp.justification, cameras=inp.cameras)  # fmt: skip
        cams = svc.ledger.read(lambda _log: resolve_cameras(svc.fleet, rin))
        outside = [
            c.id for c in cams if not me.scope.covers(c.district, (c.zone,) if c.zone else ())
        ]
        if outside:
            raise Forbidden(f"camera {outside[0]} is outside your scope ({me.scope})")
        zones = svc._zones_when_recorded(cams, now, end, pol)
        window_s = inp.minutes * 60
        approvals, judge, _why = pol.needs(len(cams), window_s, bool(zones))
        rid = "r-" + secrets.token_hex(8)
        details = {
            "request": rid, "requester": me.pseudonym, "case": inp.case,
            "purpose": inp.purpose, "justification": inp.justification,
            "scope": {"cameras": sorted(set(inp.cameras))}, "cameras": [c.id for c in cams],
            "live": {"minutes": inp.minutes, "emergency": inp.emergency},
        }  # fmt: skip
        also: tuple[tuple[dict[str, Any], str, str], ...] = ()
        if inp.emergency:
            fid = public_flag_id(svc._case_key, f"emergency:{rid}")
            due = now + int(pol["emergency_review_s"]) * 1000
            reason = (
                f"{me.pseudonym} started emergency live grant {rid} of {inp.minutes} minutes"
                f" without approval; an approver must review it by {format_time(due)}"
            )
            flag = E.anomaly_flagged(fid, "emergency-grant", me.pseudonym, reason, [rid], now)
            also = ((flag, fid, ""),)
        index = svc._file_request(
            me, rid, now, pol, inp.purpose, inp.case, cams, zones, now, end, details,
            window_s=window_s, approvals=approvals, judge=judge,
            live={"minutes": inp.minutes, "emergency": inp.emergency}, also=also,
        )  # fmt: skip
        svc._sync()
        out = self.grant(rid, now).to_json()
        out["index"] = index
        return out

    # -- state --------------------------------------------------------------------------

    def grant(self, rid: str, now_ms: int | None = None) -> Grant:
        """The grant's state by the log (NotFoundError if there is no such live request)."""
        svc = self.svc
        now = _now_ms() if now_ms is None else now_ms
        svc._sync()
        req = svc.view.request(rid) if isinstance(rid, str) and len(rid) <= 64 else None
        live = live_of(req.entry) if req is not None else None
        if req is None or live is None:
            raise NotFoundError(f"there is no live grant {str(rid)[:64]}")
        minutes, emergency = live
        pol = svc.policy(now)
        st = svc.view.status(rid, now, pol["request_ttl_s"])
        assert st is not None
        created = parse_time(req.entry["time"], "time")
        yes = st["approvals"]
        unredacted = bool(yes) and st["complete"] and all(d.unredacted for d in yes)
        start: int | None = None
        if emergency:
            start = created
        elif st["complete"]:
            start = max(d.time_ms for d in yes)
        end = start + minutes * 60_000 if start is not None else None
        if end is not None and st["expires"] is not None and not emergency:
            end = min(end, int(st["expires"]))
        due = None
        if emergency and not st["complete"] and not st["denials"]:
            due = created + int(pol["emergency_review_s"]) * 1000
        revoked = self.refresh().revoked.get(rid)
        if st["denials"]:
            state, why = "denied", f"live grant {rid} was denied"
        elif revoked is not None:
            state, why = "revoked", f"live grant {rid} was revoked (log entry {revoked[0]})"
        elif start is None:
            expired = st["state"] == "expired"
            state = "expired" if expired else "pending"
            why = f"live grant {rid} is {state}, not approved"
        elif end is not None and now >= end:
            state, why = "ended", f"live grant {rid} ended at {format_time(end)}"
        elif now < start:
            state, why = "pending", f"live grant {rid} starts at {format_time(start)}"
        else:
            state, why = "live", f"live grant {rid} lasts until {format_time(end or 0)}"
        requester = str(req.entry.get("requester", ""))
        return Grant(rid, minutes, emergency, state, start, end, unredacted, due, why, requester)

    def overdue(self, pseudonym: str, now: int) -> list[str]:
        """This requester's emergency grants whose review is past due, oldest first."""
        return [g.request for g in self.reviews_overdue(now) if g.requester == pseudonym]

    def reviews_overdue(self, now_ms: int | None = None) -> list[Grant]:
        """Every emergency grant whose review is past due (for the monitor's alert)."""
        now = _now_ms() if now_ms is None else now_ms
        view = self.svc.view
        with view.lock:
            emergencies = [
                rid for rid, req in view.requests.items() if (live_of(req.entry) or (0, 0))[1]
            ]
        out = []
        for rid in emergencies:
            g = self.grant(rid, now)
            if g.review_due_ms is not None and now >= g.review_due_ms:
                out.append(g)
        return out

    def cameras_live(self, now_ms: int | None = None) -> frozenset[str]:
        """The cameras of every live grant that is live now or waiting for its approval:
        their recorders should cut short segments (the fleet tells them in its answer to
        their heartbeats).  Worked out at most once a second."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            cached, changed = self._cameras, self._changed
        if cached is not None and 0 <= now - cached[0] < 1000:
            return cached[1]
        view = self.svc.view
        with view.lock:
            lives = [rid for rid, req in view.requests.items() if live_of(req.entry)]
        cams: set[str] = set()
        for rid in lives:
            if self.grant(rid, now).state in ("live", "pending"):
                cams.update(self.svc._row(rid).cameras)
        got = frozenset(cams)
        with self._lock:  # never a set worked out before a revocation, nor an older one
            if changed == self._changed and (self._cameras is None or self._cameras[0] <= now):
                self._cameras = (now, got)
        return got

    # -- who may watch ------------------------------------------------------------------

    def watcher(self, user: User, rid: str, now: int) -> tuple[User, RequestRow, Grant]:
        """The requester, while the grant is live (Forbidden otherwise)."""
        svc = self.svc
        me = svc._fresh(user, ("investigator",), "watch cameras live")
        row = svc._row(rid)
        if not svc._made_by(me, row):
            raise Forbidden("only the investigator who made the live grant may watch it")
        g = self.grant(rid, now)
        if g.state != "live":
            raise Forbidden(f"{g.reason}, so nothing is shown")
        if not svc._covers(me, row):
            raise Forbidden("the grant is no longer inside your scope")
        if not g.emergency:
            st = svc.view.status(rid, now, svc.policy(now)["request_ttl_s"]) or {}
            for d in st.get("approvals", []):
                lapsed = svc._decider_ok(d.approver, d.role, row)
                if lapsed:
                    raise Forbidden(lapsed)
        return me, row, g

    def revoke(
        self, user: User, rid: str, reason: str, now_ms: int | None = None
    ) -> dict[str, Any]:
        """An approver or judge (not the requester, within scope) ends a live grant now."""
        svc = self.svc
        now = _now_ms() if now_ms is None else now_ms
        check_text(reason, "reason for a revocation", 1000)
        me = svc._fresh(user, ("approver", "judge"), "revoke live grants")
        row = svc._row(rid)
        if row.pseudonym == me.pseudonym:
            raise Forbidden("you made this grant; a second person must revoke it")
        if not svc._covers(me, row):
            raise Forbidden("this grant is outside your scope, so you may not revoke it")
        g = self.grant(rid, now)
        if g.state in ("ended", "denied", "revoked", "expired"):
            raise ConflictError(f"{g.reason}; there is nothing to revoke")
        index = svc._commit([(access_revoked(rid, me.pseudonym, me.role, reason, now), "", "")])
        with self._lock:  # recorders hear of it at their next heartbeat, not a second later
            self._cameras = None
            self._changed += 1
        return {"request": rid, "state": "revoked", "index": index}
