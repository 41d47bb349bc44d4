"""Sealed request details on the custodian: ``POST /details-partials`` and the scope check.

Under custody a request's details are sealed to the custodians (:mod:`custodes.custody.sealed`;
the ephemeral key and epoch are logged in its ``access.requested`` as ``sealed``).  A
custodian helps open them in two cases, each for one logged entry, the *cause*:

* an ``access.details_read`` (someone read the details; logged first by the gateway);
* an ``access.released`` or ``access.viewed`` of that request, so that every custodian can
  check the release's scope (:func:`check_scope`).

:func:`check_details` is every step before an answer to ``POST /details-partials``:

(1) the checkpoint verifies with the log key and this custodian's witness policy;
(2) the cause and the request's ``access.requested`` are both included in it, are the
    entries this custodian followed at those indexes, and name the same request, the
    request first;
(3) the request's details are sealed to the custodians (its entry carries ``sealed``);
(4) for a read: by the log, the reader held the role the read names when it was logged,
    not revoked, and that role may read details (an approver, judge or auditor; an
    investigator only their own request); for a release: the public rules hold for it;
(5) the epoch is not shredded here nor gone in the log, and this custodian holds its share.

The answer is this custodian's partial of the logged ephemeral key with a DLEQ proof bound
to the request and the cause, recorded first in the append-only answer record.  For a read
it is given in the clear (``partial``); for a release it is encrypted to each custodian of
the epoch (``relay``, by name), so the gateway that relays it learns nothing of the
details, and only custodians combine them in :func:`check_scope`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from custodes.custody.errors import CustodyFormatError, NotEnoughPartialsError
from custodes.custody.group import Point, b64decode, b64encode
from custodes.custody.kem import Partial
from custodes.custody.keys import EpochShare
from custodes.custody.sealed import (
    SealedDetails,
    details_partial,
    open_details,
    open_relayed,
    relay_partial,
)
from custodes.errors import CustodesError

if TYPE_CHECKING:
    from custodes.custody.daemon.service import Follower

__all__ = ["READERS", "answer_details", "check_details", "check_scope"]

READERS = ("approver", "judge", "auditor")
"""Roles that may read any request's details (the requester may read their own)."""
MAX_SEALED = 64 << 10
_CAUSES = ("access.details_read", "access.released", "access.viewed")


def _refusal(text: str) -> Exception:
    from custodes.custody.daemon.service import Refusal

    return Refusal(text)


def logged_seal(req: dict[str, Any], rid: str) -> tuple[str, Point]:
    """The epoch and ephemeral key the request's ``access.requested`` logged."""
    sealed = req.get("sealed")
    if not isinstance(sealed, dict) or set(sealed) != {"epoch", "ephemeral"}:
        raise _refusal(
            f"the details of request {rid} are not sealed to the custodians, so they cannot"
            " open them or check its scope."
        )
    try:
        eph = Point.decode(b64decode(sealed["ephemeral"], 32, what="ephemeral"))
    except CustodyFormatError:
        raise _refusal(f"request {rid} logged no valid ephemeral key for its details.") from None
    epoch = sealed["epoch"]
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        raise _refusal(f"request {rid} logged no valid epoch for its details.")
    return epoch, eph


def _role_at(f: Follower, who: str, index: int) -> tuple[str, bool] | None:
    """(role, revoked) of pseudonym ``who`` by the entries before ``index``."""
    got: tuple[str, bool] | None = None
    for i in sorted(k for k in f.entries if k < index):
        raw = f.entries[i]
        if b'"user.' not in raw or who.encode() not in raw:
            continue
        obj = json.loads(raw)
        if obj.get("user") != who:
            continue
        kind = obj.get("type")
        if kind == "user.added":
            got = (str(obj.get("role")), False)
        elif kind == "user.changed" and got is not None:
            got = (str(obj.get("role", got[0])), got[1])
        elif kind == "user.revoked" and got is not None:
            got = (got[0], True)
    return got


def _share(f: Follower, epoch: str) -> EpochShare:
    state = f.me.state
    if epoch in state.shredded or f.custody.gone(epoch):
        raise _refusal(f"epoch {epoch} was shredded; the details sealed in it are gone.")
    share = state.shares.get(epoch)
    if share is None:
        raise _refusal(f"this custodian holds no share of epoch {epoch}.")
    return share


def check_details(f: Follower, body: object) -> tuple[str, str, Point, EpochShare, dict[str, Any]]:
    """Steps (1) to (5); returns (cause name, request id, ephemeral key, share, cause)."""
    from custodes.custody.daemon.service import followed, included, release_name, witnessed

    if not isinstance(body, dict) or set(body) != {"checkpoint", "cause", "request"}:
        raise _refusal("the request must give checkpoint, cause and request.")
    # (1)
    cp = witnessed(f, body["checkpoint"]).checkpoint
    # (2)
    ci, craw, cause = included(f, body["cause"], "cause", cp.size, cp.root_hash)
    ri, rraw, req = included(f, body["request"], "request entry", cp.size, cp.root_hash)
    if cause.get("type") not in _CAUSES:
        raise _refusal(f"entry {ci} is not an access.details_read, released or viewed entry.")
    rid = cause.get("request")
    if req.get("type") != "access.requested" or req.get("request") != rid or ri >= ci:
        raise _refusal(f"entry {ri} is not the access.requested of request {rid}, logged first.")
    assert isinstance(rid, str)
    followed(f, cp.size)
    with f.lock:
        f.me.refresh()
        if f.entries.get(ci) != craw or f.entries.get(ri) != rraw:
            raise _refusal("the entries given are not the ones this custodian followed.")
        # (3)
        epoch, eph = logged_seal(req, rid)
        # (4)
        if cause["type"] == "access.details_read":
            by, role = str(cause.get("by")), str(cause.get("role"))
            held = _role_at(f, by, ci)
            if held is None or held[0] != role or held[1]:
                raise _refusal(f"by the log, {by} was no active {role} when the read was logged.")
            own = role == "investigator" and by == req.get("requester")
            if role not in READERS and not own:
                raise _refusal(f"a {role} may not read the sealed details of request {rid}.")
        else:
            from custodes.custody.daemon.service import public_rules_violations

            if f.rules[0] != f.size:
                kept = [(i, json.loads(f.entries[i])) for i in sorted(f.entries)]
                f.rules = (f.size, public_rules_violations(kept))
            violation = f.rules[1].get(ci)
            if violation:
                raise _refusal(violation)
        # (5)
        share = _share(f, epoch)
    return release_name(cp.origin, ci), rid, eph, share, cause


def answer_details(f: Follower, body: object) -> dict[str, Any]:
    """Check, record durably, then return this custodian's partial for the details."""
    from custodes.custody.daemon.entries import now_ms

    name, rid, eph, share, cause = check_details(f, body)
    partial = details_partial(share, eph, rid, cause=name)
    out: dict[str, Any] = {"custodian": f.me.name, "index": share.index, "for": name}
    if cause["type"] == "access.details_read":
        out["partial"] = partial.to_json()
    else:  # a release's scope check: for the custodians' eyes only, never the gateway's
        cset = f.custody.epoch_set(share.public.epoch)
        if cset is None:
            raise _refusal(f"epoch {share.public.epoch} has no custodian set in the log.")
        out["relay"] = {
            c.name: b64encode(relay_partial(partial, c.key, request=rid, cause=name, recipient=j))
            for j, c in enumerate(cset.custodians, 1)
        }
    f.me.append_answer(
        {"time": now_ms(), "kind": "details", "details": rid, "for": name,
         "cause": cause.get("type"), "by": cause.get("by")}
    )  # fmt: skip
    return out


def _window(f: Follower, rid: str, req: dict[str, Any], det: dict[str, Any], index: int
            ) -> tuple[int, int]:  # fmt: skip
    """The window a segment must lie in: the sealed one, or a live grant's by the log."""
    from custodes.fleet.model import parse_time

    live = req.get("live")
    if not isinstance(live, dict):
        return parse_time(det.get("from"), "from"), parse_time(det.get("to"), "to")
    minutes = int(live["minutes"])
    if live.get("emergency"):
        start = parse_time(req.get("time"))
    else:
        needed = int((req.get("needs") or {}).get("approvals", 1))
        times = []
        for i in f.approvals.get(rid, []):
            if i < index:
                times.append(parse_time(json.loads(f.entries[i]).get("time")))
        if len(times) < needed:
            raise _refusal(f"live grant {rid} was not approved before entry {index}.")
        start = max(times)
    return start, start + minutes * 60_000


def _relayed(f: Follower, relay: object, rid: str, name: str, epoch: str) -> list[Partial]:
    """The partials the other custodians encrypted to this one (those that open)."""
    cset = f.custody.epoch_set(epoch)
    me = cset.position(f.me.name) if cset is not None else None
    if cset is None or me is None or not isinstance(relay, dict) or len(relay) > 64:
        return []
    key = f.me.state.encryption_key
    out = []
    for sender, row in relay.items():
        j = cset.position(sender) if isinstance(sender, str) else None
        text = row.get(f.me.name) if isinstance(row, dict) else None
        if j is None or text is None:
            continue
        try:
            raw = b64decode(text, what="relayed partial")
            out.append(open_relayed(raw, key.secret, key.public, request=rid, cause=name,
                                    sender=j, recipient=me))  # fmt: skip
        except CustodyFormatError:
            continue  # counted as missing: the threshold decides
    return out


def check_scope(
    f: Follower,
    name: str,
    index: int,
    release: dict[str, Any],
    details: object,
    records: list[dict[str, Any]],
) -> None:
    """Open the request's sealed details from T custodians' partials and refuse, in one
    sentence naming it, any segment outside their cameras or window."""
    from custodes.access.entries import commitment
    from custodes.fleet.model import format_time, parse_time

    rid = str(release.get("request"))
    with f.lock:
        ri = f.requests.get(rid)
        rraw = f.entries.get(ri) if ri is not None else None
        custody = f.custody
    if ri is None or rraw is None or ri >= index:
        raise _refusal(f"request {rid} has no access.requested before entry {index}.")
    req = json.loads(rraw)
    epoch, eph = logged_seal(req, rid)
    if not isinstance(details, dict) or set(details) != {"sealed", "relay"}:
        raise _refusal(
            f"the request must give the sealed details of request {rid} and custodians'"
            " partials for them, so that the scope can be checked."
        )
    try:
        blob = b64decode(details["sealed"], what="sealed")
        if len(blob) > MAX_SEALED:
            raise CustodyFormatError("too large")
        sealed = SealedDetails.parse(blob)
    except CustodyFormatError as exc:
        raise _refusal(f"the sealed details given are unreadable ({exc}).") from None
    partials = _relayed(f, details["relay"], rid, name, epoch)
    if sealed.epoch != epoch or sealed.ephemeral != eph:
        raise _refusal(f"the sealed details given are not the ones request {rid} logged.")
    public = custody.epoch_public(epoch)
    if public is None:
        raise _refusal(f"epoch {epoch} has no key in the log, or is gone.")
    try:
        plain, _wrong = open_details(public, partials, sealed, rid, cause=name)
    except NotEnoughPartialsError as exc:
        raise _refusal(
            f"{exc.valid} valid partials of the sealed details of request {rid} were given;"
            f" {exc.needed} are needed to check its scope."
        ) from None
    except CustodyFormatError as exc:
        raise _refusal(f"{str(exc).rstrip('.')}.") from None
    try:
        det = json.loads(plain[32:])
        ok = isinstance(det, dict) and commitment(plain[:32], det) == req.get("commitment")
    except (ValueError, CustodesError):
        ok = False
    if not ok:
        raise _refusal(f"the sealed details of request {rid} do not match its logged commitment.")
    cameras = det.get("cameras")
    cams = {c for c in cameras if isinstance(c, str)} if isinstance(cameras, list) else set()
    try:
        lo, hi = _window(f, rid, req, det, index)
    except (CustodesError, KeyError, TypeError, ValueError):
        raise _refusal(f"the window of request {rid} cannot be worked out.") from None
    for rec in records:
        where = f"segment {rec.get('camera')}@{rec.get('start')}"
        if rec.get("camera") not in cams:
            raise _refusal(
                f"{where} is outside the sealed scope of request {rid}: its camera is not one"
                " of the request's."
            )
        try:
            start = parse_time(rec.get("start"), "start")
            dur = rec.get("duration")
            end = start + max(1, round(float(dur) * 1000)) if dur is not None else start + 1
        except (CustodesError, TypeError, ValueError):
            raise _refusal(f"{where} carries no valid start and duration.") from None
        live = isinstance(req.get("live"), dict)
        inside = lo <= start < hi if live else start < hi and end > lo
        if not inside:
            raise _refusal(
                f"{where} is outside the sealed scope of request {rid}: it lies outside the"
                f" window {format_time(lo)} to {format_time(hi)}."
            )
