"""Sealed request details under custody, on the gateway: opened by the custodians only.

A mixin of :class:`~custodes.access.opening.Opening`.  Details sealed to the custodians
(:mod:`custodes.access.sealing`, version 2) open in two cases, each for one logged entry:

* a read (:meth:`DetailsOpening.open_details`): the ``access.details_read`` is logged
  first, a checkpoint covering it is cosigned by the witness quorum, then every custodian
  of the details' epoch is asked (``POST /details-partials``) with that checkpoint, the read
  and the request's ``access.requested``, each with its inclusion proof; every answer's
  DLEQ proof is checked, any T valid ones are combined and the details decrypted here, in
  memory.  Fewer than T: a 503 saying how many answered, and nothing is shown;
* a release (:meth:`DetailsOpening._scope`): the same question for the release entry;
  each custodian then answers with its partial encrypted to every custodian (never in the
  clear, so the gateway learns nothing of the details), and those go with the sealed
  details in ``POST /partials``: each custodian opens the details itself and checks that
  every segment lies in their cameras and window
  (:func:`custodes.custody.daemon.details.check_scope`).

The row's sealed details must be the ones the log names (epoch and ephemeral key, logged
in ``access.requested``); an edited row is an alert, before anything is logged or asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from custodes.errors import NotFoundError, StoreUnavailableError, VerificationError

if TYPE_CHECKING:
    from custodes.access.requests import RequestRow
    from custodes.access.service import AccessService
    from custodes.custody.daemon.client import Answers
    from custodes.custody.errors import NotEnoughPartialsError
    from custodes.custody.kem import Partial
    from custodes.custody.keys import EpochPublic
    from custodes.custody.sealed import SealedDetails

__all__ = ["DetailsOpening", "said"]


def said(answers: Answers) -> str:
    """The first refusal, as a sentence of its own, or nothing."""
    if not answers.refused:
        return ""
    who, why = sorted(answers.refused.items())[0]
    return f". Custodian {who} said: {why.rstrip('.')}"


class DetailsOpening:
    """Opening sealed details for a logged read, and the release's scope (see above)."""

    svc: AccessService
    witness_wait_s: float
    custodian_timeout_s: float

    if TYPE_CHECKING:

        def refresh(self) -> Any: ...
        def _alert_wrong(self, rid: str, index: int, answers: Answers) -> None: ...

    def open_details(self, row: RequestRow, cause: int) -> tuple[bytes, dict[str, Any]]:
        """(salt, details) of a request sealed to the custodians, opened for the logged entry
        at ``cause`` (an ``access.details_read``): it is witnessed first, then T custodians
        answer, every proof is checked, and the details are decrypted here in memory.
        Fewer than T valid answers: a 503 saying how many answered, nothing shown."""
        from custodes.access.sealing import open_plain
        from custodes.custody.errors import CustodyFormatError, NotEnoughPartialsError
        from custodes.custody.sealed import open_details

        sealed, valid, answers, public, name = self._details_partials(row, cause, None)
        try:
            plain, _ = open_details(public, valid, sealed, row.id, cause=name)
        except NotEnoughPartialsError as exc:
            raise StoreUnavailableError(
                f"{self._short(row.id, cause, answers, exc)}, so the sealed details of request"
                f" {row.id} cannot be opened and nothing is shown{said(answers)}"
            ) from None
        except CustodyFormatError as exc:
            raise VerificationError(
                f"the sealed details of request {row.id} do not open ({exc})"
            ) from None
        return open_plain(plain)

    def check_seal(self, row: RequestRow) -> None:
        """Details sealed to the custodians are the ones the logged ``access.requested``
        names (its epoch and ephemeral key): an edited row is refused with an alert."""
        from custodes.access.sealing import custody_sealed
        from custodes.custody.errors import CustodyFormatError
        from custodes.custody.group import b64encode
        from custodes.custody.sealed import SealedDetails

        if not custody_sealed(row.sealed):
            return
        req = self.svc.view.request(row.id)
        logged = req.entry.get("sealed") if req is not None else None
        try:
            s = SealedDetails.parse(row.sealed)
            same = logged == {"epoch": s.epoch, "ephemeral": b64encode(s.ephemeral.encode())}
        except CustodyFormatError:
            same = False
        if not same:
            raise self.svc._mismatch(
                f"the sealed details access.db holds for request {row.id} are not the ones its"
                " logged access.requested names",
                (row.id,),
            )

    def _scope(self, rid: str, index: int, note: bytes) -> dict[str, Any] | None:
        """What ``POST /partials`` carries so that each custodian checks the release's scope
        itself: the request's sealed details and the custodians' partials of them (asked
        for the release at ``index``), each encrypted to each custodian, so that this
        gateway cannot combine them; None for details not sealed to the custodians."""
        from custodes.access.sealing import custody_sealed
        from custodes.custody.errors import NotEnoughPartialsError
        from custodes.custody.group import b64encode

        row = self.svc._row(rid)
        if not custody_sealed(row.sealed):
            return None
        _sealed, _valid, answers, public, _name = self._details_partials(row, index, note)
        got = len(answers.relayed)
        if got < public.threshold:
            exc = NotEnoughPartialsError(valid=got, needed=public.threshold, wrong=())
            raise StoreUnavailableError(
                f"{self._short(rid, index, answers, exc)}, so the scope of request {rid} cannot"
                f" be checked and nothing was released; ask again later{said(answers)}"
            )
        return {"sealed": b64encode(row.sealed), "relay": answers.relayed}

    def _short(self, rid: str, index: int, answers: Answers, exc: NotEnoughPartialsError) -> str:
        from custodes.custody.daemon.client import shortfall

        self._alert_wrong(rid, index, answers)
        return shortfall(exc, answers)[:-1]

    def _details_partials(
        self, row: RequestRow, cause: int, note: bytes | None
    ) -> tuple[SealedDetails, list[Partial], Answers, EpochPublic, str]:
        """Ask every custodian of the details' epoch for its partial, for the logged
        ``cause``; the valid ones (each proof checked; a wrong one named in the answers)."""
        from custodes.custody.daemon.client import ask_custodians, details_request
        from custodes.custody.daemon.service import release_name
        from custodes.custody.errors import CustodyFormatError, WrongPartialError
        from custodes.custody.sealed import SealedDetails, verify_details_partial
        from custodes.tlog import parse_checkpoint, parse_note

        try:
            sealed = SealedDetails.parse(row.sealed)
        except CustodyFormatError as exc:
            raise VerificationError(f"the sealed details of request {row.id}: {exc}") from None
        req = self.svc.view.request(row.id)
        if req is None:
            raise NotFoundError(f"request {row.id} is not in the log")
        self.check_seal(row)
        custody = self.refresh().custody
        public, cset = custody.epoch_public(sealed.epoch), custody.epoch_set(sealed.epoch)
        if public is None or cset is None:
            raise StoreUnavailableError(
                f"the custodians' key of epoch {sealed.epoch} is gone or not in the log, so the"
                f" sealed details of request {row.id} cannot be opened"
            )
        if note is None:
            wait = getattr(self.svc.ledger, "wait_published", None)
            if wait is None:
                raise StoreUnavailableError("this gateway cannot wait for witnessed checkpoints")
            note = wait(cause + 1, self.witness_wait_s)
        assert note is not None
        cp = parse_checkpoint(parse_note(note).text)

        def proofs(log: Any) -> tuple[tuple[int, bytes, list[bytes]], ...]:
            return tuple(
                (i, bytes(log.store.read_entries(i, i + 1)[0]), log.inclusion_proof(i, cp.size))
                for i in (cause, req.index)
            )

        at_cause, at_request = self.svc.ledger.read(proofs)
        body = details_request(note, at_cause, at_request)
        answers = ask_custodians(
            cset.custodians, body, timeout=self.custodian_timeout_s, path="/details-partials"
        )
        name = release_name(cp.origin, cause)
        valid: dict[int, Partial] = {}
        for who, (p,) in list(answers.partials.items()):
            try:
                verify_details_partial(public, p, sealed.ephemeral, row.id, cause=name)
            except WrongPartialError as exc:
                answers.wrong[who] = str(exc)
                continue
            if cset.position(who) == p.custodian:
                valid.setdefault(p.custodian, p)
            else:
                answers.wrong[who] = "answered under another custodian's index"
        return sealed, [valid[j] for j in sorted(valid)], answers, public, name
