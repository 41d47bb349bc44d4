"""Filing a request and opening its sealed details: the part of the gateway that seals.

A mixin of :class:`~custodes.access.service.AccessService`.  The clip request
(:meth:`AccessService.request`) and the live grant
(:meth:`custodes.access.live.LiveGrants.request`) both file through
:meth:`FilingMixin._file_request`: the details are sealed (:mod:`custodes.access.sealing`),
the row is kept, and ``access.requested`` is logged, the row dropped again if the log
cannot be written.  Under custody the details are sealed to the custodians of the day's
epoch key and the entry logs that key's epoch and the ephemeral key (``sealed``); they are
opened again only by T custodians, for a read logged first.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from custodes.access import entries as E
from custodes.access.requests import RequestRow
from custodes.errors import ConflictError, StoreUnavailableError
from custodes.fleet.model import now_ms as _now_ms

if TYPE_CHECKING:
    from custodes.access.identity import User
    from custodes.access.opening import Opening
    from custodes.access.policy import Policy
    from custodes.access.requests import AccessDB
    from custodes.access.sealing import Sealed, Sealer

__all__ = ["FilingMixin"]


class FilingMixin:
    """Sealing, filing and opening (see the module's docstring)."""

    db: AccessDB
    opening: Opening
    _sealer: Sealer
    _case_key: bytes

    if TYPE_CHECKING:  # what the service provides

        def _commit(self, items: list[tuple[dict[str, Any], str, str]]) -> int: ...

    def _seal(self, rid: str, details: dict[str, Any], now: int) -> Sealed:
        """Under custody, sealed to the custodians of the day's epoch key (nothing here opens
        it); without custody, with the instance's sealing key (version 1)."""
        if not self.opening.on():
            return self._sealer.seal(details)
        from custodes.access.sealing import seal_to_custodians
        from custodes.custody.daemon.entries import epoch_of

        custody = self.opening.refresh().custody
        epoch = epoch_of(now)
        public = custody.epoch_public(epoch) or custody.epoch_public(epoch_of(_now_ms()))
        if public is None:
            raise StoreUnavailableError(
                f"the custodians' key for epoch {epoch} is not in the log yet, so the request's"
                " details cannot be sealed to them; try again shortly"
            )
        return seal_to_custodians(public, rid, details)

    def _file_request(
        self,
        me: User,
        rid: str,
        now: int,
        pol: Policy,
        purpose: str,
        case: str,
        cams: list[Any],
        zones: list[Any],
        from_ms: int,
        to_ms: int,
        details: dict[str, Any],
        *,
        window_s: int,
        approvals: int,
        judge: bool,
        live: dict[str, Any] | None = None,
        also: tuple[tuple[dict[str, Any], str, str], ...] = (),
    ) -> int:
        """Seal the details, keep the row, log ``access.requested`` (with ``also`` in the same
        durable append); the row is dropped again if the log cannot be written.  The clip
        request and the live grant both file this way.  Returns the entry's index."""
        from custodes.access.anomaly import cell_of

        sealed = self._seal(rid, details, now)
        case_key = hmac.new(self._case_key, case.encode(), hashlib.sha256).hexdigest()[:32]
        places = sorted({(c.district, (c.zone,) if c.zone else ()) for c in cams}, key=str)
        districts = sorted({c.district for c in cams if c.district})
        row = RequestRow(
            rid, me.name, me.pseudonym, now, purpose, case_key,
            tuple(c.id for c in cams), tuple(districts), tuple(places),
            tuple(sorted({cell_of(c.lat, c.lon) for c in cams})),
            from_ms, to_ms, bool(zones), any(z.kind == "assembly" for z in zones),
            approvals, judge, pol.version, sealed.commitment, sealed.ciphertext,
            None, None, None, None,
        )  # fmt: skip
        with self.db.lock:
            self.db.insert_request(row)
        entry = E.access_requested(
            rid, sealed.commitment, me.pseudonym, purpose,
            cameras=len(cams), districts=districts, window_s=window_s, sensitive=bool(zones),
            approvals=approvals, judge=judge, policy_version=pol.version, now_ms=now,
            places=places,
        )  # fmt: skip
        if live is not None:
            entry["live"] = live
        if sealed.logged is not None:  # the custodians take the ephemeral key from the log
            entry["sealed"] = sealed.logged
        try:
            return self._commit([(entry, "", ""), *also])
        except BaseException:
            with self.db.lock:
                self.db.conn.execute("DELETE FROM req_requests WHERE id = ?", (rid,))
            raise

    def _open(self, row: RequestRow, read: int | None = None) -> tuple[bytes, dict[str, Any]]:
        """(salt, details): with the instance's sealing key (version 1), or, sealed to the
        custodians, opened by T of them for the logged ``access.details_read`` at ``read``."""
        from custodes.access.sealing import custody_sealed

        if not custody_sealed(row.sealed):
            return self._sealer.open(row.sealed)
        if read is None:
            raise ConflictError(
                f"the details of request {row.id} are sealed to the custodians; they open only"
                " for a read logged first"
            )
        return self.opening.open_details(row, read)
