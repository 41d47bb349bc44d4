"""The log as the gateway's only authority: its view of the log, and the caches checked
against it.

A mixin of :class:`~custodes.access.service.AccessService`.  The gateway decides from
:class:`~custodes.access.logview.LogView` (built from log entries alone); ``access.db``,
the identity store and ``policy.json`` are caches, and one that disagrees with the view
stops the action (:class:`~custodes.errors.CacheMismatchError`, HTTP 409) and is said in
the log (``anomaly.flagged``, rule ``cache-disagrees``, subject ``gateway``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from custodes.access import entries as E
from custodes.access.flags import public_flag_id
from custodes.access.logview import Decided, LogView
from custodes.access.policy import Policy, PolicyFile
from custodes.access.requests import RequestRow
from custodes.errors import CacheMismatchError, StoreUnavailableError
from custodes.fleet.model import format_time
from custodes.fleet.model import now_ms as _now_ms

if TYPE_CHECKING:
    from pathlib import Path

    from custodes.access.identity import Identities
    from custodes.access.release import Ledger
    from custodes.access.requests import AccessDB

__all__ = ["AuthorityMixin"]

DECIDERS = ("approver", "judge")


class AuthorityMixin:
    """The view of the log and the checks of the caches against it."""

    view: LogView
    ledger: Ledger
    data: Path
    db: AccessDB
    ids: Identities
    policies: PolicyFile
    _case_key: bytes
    _sealed_ok: dict[str, tuple[Any, ...]]

    if TYPE_CHECKING:  # what the service provides

        def _commit(self, items: list[tuple[dict[str, Any], str, str]]) -> int: ...
        def _status(self, row: RequestRow, now: int) -> dict[str, Any]: ...
        def _open(
            self, row: RequestRow, read: int | None = None
        ) -> tuple[bytes, dict[str, Any]]: ...
        def policy(self, now_ms: int | None = None) -> Policy: ...

    def _sync(self, verify: bool = False) -> None:
        """Bring :attr:`view` up to the log's end; with ``verify``, the entries must hash
        to the root of the log's latest signed checkpoint (VerificationError if not)."""
        from custodes.tlog.checkpoint import open_checkpoint
        from custodes.tlog.note import Verifier

        def work(log: Any) -> None:
            cp = None
            note = log.latest_checkpoint() if verify else None
            if note:
                vkey = (self.data / "keys" / "log.vkey").read_text().strip()
                signed = open_checkpoint(note, Verifier.from_key(vkey)).checkpoint
                cp = (signed.size, signed.root_hash)
            self.view.catch_up(log.store, checkpoint=cp)

        log = None if verify else getattr(self.ledger, "log", None)
        if log is not None:  # the store locks itself; the service's lock is the writers'
            # What this process appended is in memory; the store's lock is held across
            # each commit's fsync, so asking it after every decision halves the rate.
            tail = getattr(log, "tail", None)
            if tail is None or not self.view.follow(tail):
                self.view.catch_up(log.store)
        else:
            self.ledger.read(work)

    def _alert(self, what: str, requests: tuple[str, ...] = ()) -> None:
        """A private table disagreed with the log: say so in the log (``anomaly.flagged``,
        rule ``cache-disagrees``, subject ``gateway``), once per finding."""
        import logging

        logging.getLogger("custodes.access").error("cache disagrees with the log: %s", what)
        fid = public_flag_id(self._case_key, "cache:" + what)
        if fid in self.db.flag_keys():
            return
        entry = E.anomaly_flagged(fid, "cache-disagrees", "gateway", what, list(requests),
                                  _now_ms())  # fmt: skip
        try:
            self._commit([(entry, fid, "")])
        except StoreUnavailableError:
            pass  # the action is refused anyway; the server's log has the line

    def _mismatch(self, what: str, requests: tuple[str, ...] = ()) -> CacheMismatchError:
        self._alert(what, requests)
        return CacheMismatchError(
            f"{what}; the log is the authority, so nothing was done and an alert was raised"
        )

    def _check_policy_file(self) -> None:
        """policy.json must be the latest logged policy; a missing file is rewritten."""
        logged = self.view.policy()
        current = self.policies.read()
        if logged is None:
            if current is not None:
                raise CacheMismatchError(
                    f"policy.json holds version {current.version}, but the log holds no policy;"
                    " remove the file and set the policy with `custodes access policy set`"
                )
            return
        version, doc = logged
        if current is None:
            self.policies.write(Policy.parse(doc, version))
            return
        # Both with the defaults filled in: a policy logged before a key existed means that
        # key's default, so an older instance starts on a newer release.
        doc = Policy.parse(doc, version).doc
        differ = sorted(k for k in set(doc) | set(current.doc) if doc.get(k) != current.doc.get(k))
        if current.version != version or differ:
            what = ", ".join(differ) if differ else f"the version ({current.version})"
            raise CacheMismatchError(
                f"policy.json differs from the logged policy version {version} in {what};"
                " the server does not start on it: remove the file to take the logged policy,"
                " or change the policy with `custodes access policy set`"
            )

    def _log_state(self, row: RequestRow, now: int) -> dict[str, Any]:
        """The request's state by the log; a cache (``access.db``) that says otherwise is
        refused (CacheMismatchError) and raises an alert."""
        st = self.view.status(row.id, now, self.policy(now)["request_ttl_s"])
        if st is None:
            raise self._mismatch(f"request {row.id} is in access.db but not in the log", (row.id,))
        cached = self._status(row, now)

        def facts(ds: list[Any]) -> list[tuple[str, str, bool, int | None]]:
            return sorted(
                (d.approver if isinstance(d, Decided) else d.pseudonym, d.role,
                 bool(d.unredacted), d.expires_ms)
                for d in ds
            )  # fmt: skip

        if (
            cached["state"] != st["state"]
            or facts(cached["approvals"]) != facts(st["approvals"])
            or facts(cached["denials"]) != facts(st["denials"])
        ):
            raise self._mismatch(
                f"access.db says request {row.id} is {cached['state']} with"
                f" {len(cached['approvals'])} approval(s), the log says {st['state']} with"
                f" {len(st['approvals'])}",
                (row.id,),
            )
        return st

    def _decider_ok(self, pseudonym: str, role: str, row: RequestRow) -> str:
        """Why an approval no longer holds at release ('' when it does): by the log and by
        the identity store, the approver is active, still of the role, and in scope."""
        acc = self.view.account(pseudonym)
        who = self.ids.by_pseudonym(pseudonym)
        for a in (acc, who):
            if a is None or not a.active or a.role not in DECIDERS:
                return f"approver {pseudonym} was revoked or changed role, so the approval lapsed"
            if role == "judge" and a.role != "judge":
                return f"judge {pseudonym} is no longer a judge, so the approval lapsed"
            if not all(a.scope.covers(d, g) for d, g in row.places):
                return f"the request is no longer within approver {pseudonym}'s scope"
        return ""

    def _zones_when_recorded(
        self, cams: list[Any], from_ms: int, to_ms: int, pol: Policy
    ) -> list[Any]:
        """The sensitive zones any camera was in while it recorded the window: every position
        the log held for it in the window, against every policy in force then and now."""
        points: list[tuple[float, float]] = []
        for c in cams:
            logged = self.view.positions_during(c.id, from_ms, to_ms)
            points.extend(logged or [(c.lat, c.lon)])
        found: dict[str, Any] = {}
        for p in [*self.view.policies_during(from_ms, to_ms), pol]:
            for z in p.touched_zones(points, from_ms, to_ms):
                found.setdefault(z.name, z)
        return list(found.values())

    def _check_sealed(self, row: RequestRow) -> None:
        """The sealed details kept here open to the commitment the log holds, and name the
        cameras and window access.db holds: an edited row is refused with an alert."""
        req = self.view.request(row.id)
        if req is None:
            raise self._mismatch(f"request {row.id} is in access.db but not in the log", (row.id,))
        seen = (row.sealed, row.cameras, row.from_ms, row.to_ms, req.entry.get("commitment"))
        if self._sealed_ok.get(row.id) == seen:
            return  # these very bytes were checked before
        if row.sealed[:1] == b"\x02":
            return  # sealed to the custodians: they open it and check each release's scope
        try:
            salt, details = self._open(row)
        except Exception:
            raise self._mismatch(
                f"the sealed details of request {row.id} do not open", (row.id,)
            ) from None
        if E.commitment(salt, details) != req.entry.get("commitment"):
            raise self._mismatch(
                f"the sealed details of request {row.id} do not match its logged commitment",
                (row.id,),
            )
        if (
            tuple(details.get("cameras", ())) != row.cameras
            or details.get("from") != format_time(row.from_ms)
            or details.get("to") != format_time(row.to_ms)
        ):
            raise self._mismatch(
                f"access.db names other cameras or another window for request {row.id} than"
                " its sealed details",
                (row.id,),
            )
        self._sealed_ok[row.id] = seen
