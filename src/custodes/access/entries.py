"""The access gateway's log entries: one builder per type, each a canonical JSON object.

Nothing here names a person or a case.  People appear as pseudonyms (``u-`` and
16 hex digits, a keyed hash of the account, see :mod:`custodes.access.identity`),
and a request's details are *sealed*: the entry carries only
``commitment = SHA-256(salt || canonical details)`` and what is safe to publish.

Every entry has ``type``, ``v`` (schema version) and ``time`` (UTC, RFC 3339).
Times inside entries are RFC 3339 strings too; durations are whole seconds.

``user.added``        ``user`` (pseudonym), ``role``, ``scope``: ``"all"`` or
                      ``{"districts": [...], "groups": [...]}``
``user.changed``      (v2) ``user``, ``role``, ``scope``: an active account's
                      new role or scope
``user.revoked``      ``user``, ``role``
``policy.changed``    ``version`` (1, 2, ...), ``sha256`` (of the canonical
                      policy) and ``policy`` (the whole document: purposes, case
                      pattern, thresholds, sensitive zones, disclosure delay)
``access.requested``  ``request`` (id), ``commitment`` (hex), ``requester``,
                      ``purpose``, ``cameras`` (how many), ``districts`` (sorted
                      ids), ``window_s``, ``sensitive`` (touches a sensitive
                      zone), ``needs`` ``{"approvals": 1|2, "judge": bool}``,
                      ``policy`` (the version it was judged under); from v2
                      ``places`` ([district, [groups]] of its cameras) and
                      ``groups``, so that anyone can check an approver's scope
                      A live grant (:mod:`custodes.access.live`) also carries
                      ``live`` ``{"minutes": N, "emergency": bool}`` and no window:
                      its window starts at the ``time`` of the approval that
                      completes it (an emergency grant: at its own ``time``).
                      Under custody it carries ``sealed`` ``{"epoch", "ephemeral"}``:
                      the details are sealed to that epoch's custodians, and they
                      take the ephemeral key from here (:mod:`custodes.custody.sealed`)
``access.approved``   ``request``, ``approver``, ``role`` (approver or judge),
                      ``expires``, ``unredacted`` (an unredacted export is
                      granted), ``complete`` (the policy is now satisfied),
                      ``reason``
``access.denied``     ``request``, ``approver``, ``role``, ``reason``
``access.expired``    ``request``: its approval lapsed unused; from v2 ``reason``
                      ("approval lapsed unused" or "not decided in time")
``access.released``   ``request``, ``by``, ``segments`` (the SHA-256 of each
                      recorded segment used, in order), ``redaction``
                      (``{"faces": bool, "plates": bool, "method": ...}`` or
                      ``{"method": "none"}``), ``output`` ``{"sha256", "bytes"}``;
                      from v2 ``requested`` (the log index of its
                      ``access.requested``), ``approvals`` (the indexes of the
                      ``access.approved`` entries it relies on) and ``policy``
                      (the version in force).  A release of several cameras is an
                      archive (:mod:`custodes.access.archive`): ``output`` is then
                      its manifest's digest and size, with ``manifest``
                      ``{"files": N, "bytes": total}`` (also in ``access.exported``).
                      Under custody (v3) the entry is logged *before* the
                      footage is opened, so it carries no ``output``: it is
                      what the custodians check, and ``access.exported`` names
                      the clip afterwards
``access.exported``   ``request``, ``release`` (the log index of its
                      ``access.released``), ``by``, ``redaction`` and ``output``
                      ``{"sha256", "bytes"}``: the clip cut from the segments the
                      custodians opened for that release, logged before it leaves
``access.disclosed``  ``request``, ``cameras`` (ids), ``from``, ``to``: the place
                      and window of a request, published once the policy's
                      disclosure delay has passed, so that "who looked at this
                      place and time?" can be answered from the log alone
``access.revealed``   ``request``, ``by``, ``reason``, ``salt`` (hex) and
                      ``details`` (the sealed object): anyone can recompute the
                      commitment
``anomaly.flagged``   ``flag`` (id, a keyed hash), ``rule``, ``subject`` (a
                      pseudonym, the word ``gateway`` (a private table
                      disagreed with the log), the word ``custodian`` (rule
                      ``custodian-wrong``: a custodian's partial failed its
                      proof; the reason names it), or the word ``place``: no coordinates and no
                      place id, since a place requested again and again may be
                      someone's home and a stable id would be tied to it by the
                      requests' later disclosure), ``reason`` (a sentence that
                      uses pseudonyms only), ``requests`` (ids)
``anomaly.resolved``  ``flag``, ``by``, ``resolution``
``access.downloaded`` ``request``, ``by``, ``sha256``: the requester fetched the
                      released clip again (kept until the approval's expiry, byte
                      for byte what ``access.released`` names); logged before
                      it is sent
``access.viewed``     ``request``, ``by``, ``segments`` (plaintext SHA-256 of each),
                      ``redaction``: segments of a live grant about to be shown, logged
                      before they are opened (under custody, what the custodians check)
``access.revoked``    ``request``, ``by``, ``role``, ``reason``: an approver or judge
                      ended a live grant early (both built in :mod:`custodes.access.live`)
``access.details_read`` ``request``, ``by`` (pseudonym), ``role`` and ``why``:
                      a request's sealed details were read by someone other
                      than its requester; logged durably before they are shown
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from custodes.fleet.model import format_time
from custodes.records.canonical import canonicalize

__all__ = [
    "ACCESS_TYPES",
    "access_approved",
    "access_denied",
    "access_disclosed",
    "access_expired",
    "access_exported",
    "access_released",
    "access_requested",
    "access_revealed",
    "anomaly_flagged",
    "anomaly_resolved",
    "commitment",
    "policy_changed",
    "user_added",
    "user_changed",
    "user_revoked",
]

V = 1

ACCESS_TYPES = (
    "user.added",
    "user.changed",
    "user.revoked",
    "policy.changed",
    "access.requested",
    "access.approved",
    "access.denied",
    "access.expired",
    "access.released",
    "access.exported",
    "access.disclosed",
    "access.revealed",
    "anomaly.flagged",
    "anomaly.resolved",
)


def commitment(salt: bytes, details: dict[str, Any]) -> str:
    """SHA-256(salt || canonical JSON of details), hex: what a request entry commits to."""
    return hashlib.sha256(salt + canonicalize(details)).hexdigest()


def _base(kind: str, now_ms: int, v: int = V) -> dict[str, Any]:
    return {"type": kind, "v": v, "time": format_time(now_ms)}


def user_added(user: str, role: str, scope: Any, now_ms: int) -> dict[str, Any]:
    return {**_base("user.added", now_ms), "user": user, "role": role, "scope": scope}


def user_changed(user: str, role: str, scope: Any, now_ms: int) -> dict[str, Any]:
    """v2: an active account's role or scope changed; the pseudonym is the same person."""
    return {**_base("user.changed", now_ms, 2), "user": user, "role": role, "scope": scope}


def user_revoked(user: str, role: str, now_ms: int) -> dict[str, Any]:
    return {**_base("user.revoked", now_ms), "user": user, "role": role}


def policy_changed(version: int, policy: dict[str, Any], now_ms: int) -> dict[str, Any]:
    digest = hashlib.sha256(canonicalize(policy)).hexdigest()
    return {
        **_base("policy.changed", now_ms),
        "version": version,
        "sha256": digest,
        "policy": policy,
    }


def access_requested(
    request: str,
    commitment_hex: str,
    requester: str,
    purpose: str,
    *,
    cameras: int,
    districts: list[str],
    window_s: int,
    sensitive: bool,
    approvals: int,
    judge: bool,
    policy_version: int,
    now_ms: int,
    places: Sequence[tuple[str | None, tuple[str, ...]]] | None = None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if places is not None:  # v2: the (district, groups) of its cameras, for scope checks
        extra["places"] = sorted([d or "", sorted(g)] for d, g in places)
        extra["groups"] = sorted({x for _d, g in places for x in g})
    return {
        **_base("access.requested", now_ms, 2 if places is not None else V),
        **extra,
        "request": request,
        "commitment": commitment_hex,
        "requester": requester,
        "purpose": purpose,
        "cameras": cameras,
        "districts": sorted(districts),
        "window_s": window_s,
        "sensitive": sensitive,
        "needs": {"approvals": approvals, "judge": judge},
        "policy": policy_version,
    }


def access_approved(
    request: str,
    approver: str,
    role: str,
    *,
    expires_ms: int,
    unredacted: bool,
    complete: bool,
    reason: str,
    now_ms: int,
) -> dict[str, Any]:
    return {
        **_base("access.approved", now_ms),
        "request": request,
        "approver": approver,
        "role": role,
        "expires": format_time(expires_ms),
        "unredacted": unredacted,
        "complete": complete,
        "reason": reason,
    }


def access_denied(
    request: str, approver: str, role: str, reason: str, now_ms: int
) -> dict[str, Any]:
    return {
        **_base("access.denied", now_ms),
        "request": request,
        "approver": approver,
        "role": role,
        "reason": reason,
    }


def access_expired(request: str, now_ms: int, reason: str = "") -> dict[str, Any]:
    if reason:  # v2: "approval lapsed unused" or "not decided in time"
        return {**_base("access.expired", now_ms, 2), "request": request, "reason": reason}
    return {**_base("access.expired", now_ms), "request": request}


def access_released(
    request: str,
    by: str,
    segments: list[str],
    redaction: dict[str, Any],
    output_sha256: str | None,
    output_bytes: int | None,
    now_ms: int,
    *,
    requested: int | None = None,
    approvals: list[int] | None = None,
    policy_version: int | None = None,
    manifest: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The release; ``output_sha256=None`` makes the custody form (v3, no ``output``)."""
    extra: dict[str, Any] = {}
    if requested is not None and approvals is not None and policy_version is not None:
        extra = {"requested": requested, "approvals": sorted(approvals),
                 "policy": policy_version}  # fmt: skip
    v = 3 if output_sha256 is None and extra else 2 if extra else V
    out: dict[str, Any] = {
        **_base("access.released", now_ms, v),
        **extra,
        "request": request,
        "by": by,
        "segments": segments,
        "redaction": redaction,
    }
    if output_sha256 is not None:
        out["output"] = {"sha256": output_sha256, "bytes": output_bytes}
        if manifest is not None:
            out["output"]["manifest"] = manifest
    return out


def access_exported(
    request: str,
    release: int,
    by: str,
    redaction: dict[str, Any],
    output_sha256: str,
    output_bytes: int,
    now_ms: int,
    manifest: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The clip of a custody release, named once it is cut and before it leaves."""
    output: dict[str, Any] = {"sha256": output_sha256, "bytes": output_bytes}
    if manifest is not None:
        output["manifest"] = manifest
    return {
        **_base("access.exported", now_ms),
        "request": request,
        "release": release,
        "by": by,
        "redaction": redaction,
        "output": output,
    }


def access_disclosed(
    request: str, cameras: list[str], from_ms: int, to_ms: int, now_ms: int
) -> dict[str, Any]:
    return {
        **_base("access.disclosed", now_ms),
        "request": request,
        "cameras": sorted(cameras),
        "from": format_time(from_ms),
        "to": format_time(to_ms),
    }


def access_downloaded(request: str, by: str, sha256: str, now_ms: int) -> dict[str, Any]:
    return {**_base("access.downloaded", now_ms), "request": request, "by": by, "sha256": sha256}


def access_details_read(request: str, by: str, role: str, why: str, now_ms: int) -> dict[str, Any]:
    return {**_base("access.details_read", now_ms), "request": request, "by": by,
            "role": role, "why": why}  # fmt: skip


def access_revealed(
    request: str, by: str, reason: str, salt: bytes, details: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    return {
        **_base("access.revealed", now_ms),
        "request": request,
        "by": by,
        "reason": reason,
        "salt": salt.hex(),
        "details": details,
    }


def anomaly_flagged(
    flag: str, rule: str, subject: str, reason: str, requests: list[str], now_ms: int
) -> dict[str, Any]:
    return {
        **_base("anomaly.flagged", now_ms),
        "flag": flag,
        "rule": rule,
        "subject": subject,
        "reason": reason,
        "requests": requests,
    }


def anomaly_resolved(flag: str, by: str, resolution: str, now_ms: int) -> dict[str, Any]:
    return {**_base("anomaly.resolved", now_ms), "flag": flag, "by": by, "resolution": resolution}
