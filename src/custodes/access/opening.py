"""A release under custody: logged and witnessed first, opened by the custodians, then cut.

Once the log holds a ``custody.set`` (``custodes custody init``), the archive holds
ciphertext only and the gateway cannot open a segment by itself.  A release then goes:

1. every check of :meth:`AccessService.check_release`, then ``access.released`` (v3)
   durably in the log: the request, the approvals and policy it relies on, the
   plaintext digests of the segments it uses, the redaction; no output digest, since
   nothing is cut yet;
2. a wait, bounded by :attr:`Opening.witness_wait_s` (30 s, or the environment's
   ``CUSTODES_WITNESS_WAIT_S``), for a checkpoint covering that entry cosigned by the
   log's witness quorum (:meth:`LedgerService.wait_published`); none in time is a 503;
3. ``POST /partials`` to every custodian of the segments' epochs at once, with the
   cosigned checkpoint, the release entry and its inclusion proof, and each segment's
   record with its proofs (the record in its batch, the batch in the log), and the
   request's sealed details with T custodians' partials of them, asked for this release,
   so that each custodian checks every segment against the sealed cameras and window
   itself (:mod:`custodes.access.opening_details`); every partial's DLEQ proof is checked
   and any T valid partials of a segment open its key;
4. each ciphertext, checked against its logged digest, is decrypted into memory (an
   anonymous ``memfd``, never a file under the data directory), checked against the
   plaintext digest the log holds, then cut, joined and redacted as without custody;
5. ``access.exported`` (the release's index, the clip's sha256 and size, the
   redaction) durably in the log, and only then is the clip handed out.

With fewer than T valid answers for a segment the release stops with
:class:`~custodes.errors.StoreUnavailableError` (HTTP 503) and a sentence naming how
many custodians answered; nothing is cut and no ``access.exported`` is logged.  A
custodian whose answer fails its proof is named in ``anomaly.flagged`` (rule
``custodian-wrong``), whether or not the release went ahead without it.

A release whose opening failed stays logged, so its requester may ask again with the
same scope while the approval is valid: the same ``access.released`` is opened again
(:meth:`Opening.pending`), nothing new is released.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custodes.access import entries as E
from custodes.access.folding import feed_from
from custodes.access.opening_details import DetailsOpening, said
from custodes.access.release import Built, SegmentOpener, _checked_copy, in_window, segment_path
from custodes.errors import (
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    UsageError,
    VerificationError,
)
from custodes.fleet.containers import Container, sniff
from custodes.fleet.model import format_time
from custodes.fleet.registry import SegmentRow

if TYPE_CHECKING:
    from custodes.access.service import AccessService, ReleasePlan
    from custodes.custody.daemon.client import Answers, SegmentProof
    from custodes.custody.daemon.ledger import CustodyLog
    from custodes.custody.kem import Opened

__all__ = ["Opening", "redaction_for"]

_log = logging.getLogger("custodes.access")


def redaction_for(unredacted: bool) -> dict[str, Any]:
    """What the clip's redaction will be, as the release entry names it before the cut."""
    if unredacted:
        return {"method": "none"}
    from custodes.redact.options import RedactOptions

    return {"faces": True, "plates": False, "method": RedactOptions().mode}


@dataclass
class _Fold:
    """What the log says that a custody release needs: the custody entries folded, and
    each v3 ``access.released`` with the ``access.exported`` that names its clip."""

    custody: CustodyLog
    size: int = 0
    releases: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    exported: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def feed(self, index: int, raw: bytes) -> None:
        self.custody.feed_raw(index, raw)
        self.size = index + 1
        if b'"access.' not in raw:
            return
        if b'"type":"access.released"' in raw:
            obj = json.loads(raw)
            if "output" not in obj:
                self.releases.setdefault(str(obj["request"]), (index, obj))
        elif b'"type":"access.exported"' in raw:
            obj = json.loads(raw)
            if isinstance(obj.get("release"), int):
                self.exported.setdefault(obj["release"], (index, obj))


class Opening(DetailsOpening):
    """The gateway's custody side: is custody on, and the release path when it is."""

    witness_wait_s = 30.0
    custodian_timeout_s = 10.0

    def __init__(self, svc: AccessService) -> None:
        from custodes.custody.daemon.ledger import CustodyLog

        self.svc = svc
        self._lock = threading.Lock()
        self._fold = _Fold(CustodyLog())
        self._opening: set[str] = set()  # requests whose footage is being opened now
        wait = os.environ.get("CUSTODES_WITNESS_WAIT_S")
        if wait:
            try:
                self.witness_wait_s = float(wait)
            except ValueError:
                raise UsageError(f"CUSTODES_WITNESS_WAIT_S must be seconds, not {wait!r}") from None
            if not 0 < self.witness_wait_s <= 3600:
                raise UsageError("CUSTODES_WITNESS_WAIT_S must be more than 0 and at most 3600")

    # -- what the log says ---------------------------------------------------------------

    def refresh(self) -> _Fold:
        with self._lock:
            self.svc.ledger.read(lambda log: feed_from(log.store, self._fold))
            return self._fold

    def on(self) -> bool:
        """Custody is on: the log holds a custodian set."""
        return self.refresh().custody.current is not None

    def pending(self, rid: str) -> tuple[int, dict[str, Any]] | None:
        """The request's custody release whose clip was never logged (an opening that
        failed), or None."""
        fold = self.refresh()
        got = fold.releases.get(rid)
        if got is None or got[0] in fold.exported:
            return None
        return got

    def exported(self, release_index: int) -> tuple[int, dict[str, Any]] | None:
        """The ``access.exported`` of a custody release: (its index, the entry)."""
        return self.refresh().exported.get(release_index)

    # -- the release --------------------------------------------------------------------

    def release(
        self, user: Any, plan: ReleasePlan, rows: list[SegmentRow], out: Path, now_ms: int | None
    ) -> dict[str, Any]:
        """Log the release, have it witnessed and opened, cut the clip, log its export."""
        rid = plan.request.id
        with self._lock:
            if rid in self._opening:
                raise ConflictError(
                    f"the footage of request {rid} is being opened now; wait for that release"
                )
            self._opening.add(rid)
        try:
            return self._release(user, plan, rows, out, now_ms)
        finally:
            with self._lock:
                self._opening.discard(rid)

    def _release(
        self, user: Any, plan: ReleasePlan, rows: list[SegmentRow], out: Path, now_ms: int | None
    ) -> dict[str, Any]:
        svc = self.svc
        used = [s for segs in in_window(rows, plan).values() for s in segs]
        digests = [s.sha256 for s in used]
        again = self.pending(plan.request.id)
        if again is not None:
            index, entry = again
            if entry.get("segments") != digests:
                raise VerificationError(
                    f"request {plan.request.id} was released (log entry {index}) for other"
                    " segments than these; ask again with the cameras and window of that release"
                )
            redaction = dict(entry["redaction"])
        else:
            for s in used:
                if s.encrypted and s.log_index is None:
                    raise StoreUnavailableError(
                        f"the segment of camera {s.camera} at {format_time(s.start_ms)} is not"
                        " logged yet, so the custodians cannot check it; try again shortly"
                    )
            redaction = redaction_for(plan.unredacted)
            self.check_seal(plan.request)  # before anything is logged
            info = svc.commit_release(user, plan, digests, redaction, None, None, now_ms)
            index = int(info["index"])
        opened = self._open(plan.request.id, index, used)
        tmp = out.with_name(f".{out.name}.partial")
        kept = svc._kept(plan.request.id)
        keep = kept.with_name(f".{kept.name}.partial")
        try:
            with _plaintexts() as memory, svc._cutting:
                opener = self._opener(opened, memory)
                from custodes.access.release import build_clip

                built = build_clip(svc.data, rows, plan, tmp, opener=opener)
            _same(built, digests, redaction, index)
            if self.exported(index) is not None:
                raise ConflictError(f"the release at log entry {index} was exported already")
            keep.unlink(missing_ok=True)
            os.link(tmp, keep)
            me = svc.ids.get(user.name)
            assert me is not None
            now = svc_now(now_ms)
            entry = E.access_exported(
                plan.request.id, index, me.pseudonym, built.redaction, built.sha256, built.size,
                now, manifest=built.manifest,
            )  # fmt: skip
            exported = svc._commit([(entry, "", "")])
            os.replace(keep, kept)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            keep.unlink(missing_ok=True)
        return {"request": plan.request.id, "index": exported, "release": index,
                "sha256": built.sha256, "bytes": built.size, "segments": len(digests),
                "redaction": built.redaction, "custody": True}  # fmt: skip

    def _open(self, rid: str, index: int, used: list[SegmentRow]) -> dict[tuple[str, int], bytes]:
        """Ask the custodians for the release at ``index``; each encrypted segment's key."""
        from custodes.custody.daemon.client import (
            ask_custodians,
            open_segments,
            partials_request,
            shortfall,
        )
        from custodes.custody.daemon.service import release_name
        from custodes.custody.errors import CustodyFormatError, NotEnoughPartialsError

        sealed = [s for s in used if s.encrypted]
        if not sealed:
            return {}
        wait = getattr(self.svc.ledger, "wait_published", None)
        if wait is None:
            raise StoreUnavailableError("this gateway cannot wait for witnessed checkpoints")
        note: bytes = wait(index + 1, self.witness_wait_s)
        from custodes.tlog import parse_checkpoint, parse_note

        cp = parse_checkpoint(parse_note(note).text)
        entry, proof, segs = self.svc.ledger.read(
            lambda log: self._proofs(log, index, cp.size, sealed)
        )
        body = partials_request(note, index, entry, proof, segs)
        scope = self._scope(rid, index, note)
        if scope is not None:
            body["details"] = scope
        custody = self.refresh().custody
        people: dict[str, Any] = {}
        for s in sealed:
            cset = custody.epoch_set(str(s.epoch))
            if cset is None:
                raise StoreUnavailableError(
                    f"epoch {s.epoch} has no custodian set in the log, so it cannot be opened"
                )
            for c in cset.custodians:
                people.setdefault(c.name, c)
        answers = ask_custodians(list(people.values()), body, timeout=self.custodian_timeout_s)
        name = release_name(cp.origin, index)
        try:
            opened = open_segments(custody, answers, segs, release=name)
        except NotEnoughPartialsError as exc:
            self._alert_wrong(rid, index, answers)
            _log.warning(
                "release %d: custodians refused %s, unreachable %s, wrong %s",
                index, answers.refused, answers.unreachable, answers.wrong,
            )  # fmt: skip
            raise StoreUnavailableError(
                f"{shortfall(exc, answers)[:-1]}, so the footage of request {rid} cannot be"
                f" opened and nothing was released; ask again later{said(answers)}"
            ) from None
        except CustodyFormatError as exc:
            raise StoreUnavailableError(f"the segments cannot be opened: {exc}") from None
        self._alert_wrong(rid, index, answers)
        return _keys(sealed, opened)

    def _proofs(
        self, log: Any, index: int, size: int, sealed: list[SegmentRow]
    ) -> tuple[bytes, list[bytes], list[SegmentProof]]:
        from custodes.custody.daemon.client import SegmentProof
        from custodes.tlog import MemoryTree, leaf_hash

        entry = bytes(log.store.read_entries(index, index + 1)[0])
        proof = log.inclusion_proof(index, size)
        trees: dict[int, tuple[MemoryTree, bytes, list[bytes]]] = {}
        out = []
        for s in sealed:
            if s.batch not in trees:
                bindex = self.svc.fleet.batch_info(s.batch)[2]
                if bindex is None or bindex >= size:
                    raise StoreUnavailableError(
                        f"the batch of camera {s.camera}'s segment at {format_time(s.start_ms)}"
                        " is not in the witnessed log yet; try again shortly"
                    )
                records = self.svc.fleet.batch_records(s.batch)
                tree = MemoryTree(leaf_hash(r) for r in records)
                braw = bytes(log.store.read_entries(bindex, bindex + 1)[0])
                trees[s.batch] = (tree, braw, log.inclusion_proof(bindex, size))
            tree, braw, bproof = trees[s.batch]
            bindex = self.svc.fleet.batch_info(s.batch)[2]
            assert bindex is not None
            out.append(
                SegmentProof(
                    record=s.record, position=s.pos, proof=tree.prove_inclusion(s.pos),
                    batch_index=bindex, batch_entry=braw, batch_proof=bproof,
                )
            )  # fmt: skip
        return entry, proof, out

    def _alert_wrong(self, rid: str, index: int, answers: Answers) -> None:
        """Each custodian that answered wrongly, named in ``anomaly.flagged``, once."""
        from custodes.access.flags import public_flag_id

        svc = self.svc
        items = []
        for name, why in sorted(answers.wrong.items()):
            fid = public_flag_id(svc._case_key, f"custodian:{name}:{index}")
            if fid in svc.db.flag_keys():
                continue
            reason = (
                f"custodian {name} answered wrongly for the release at log entry {index}"
                f" ({why.rstrip('.')})"
            )
            _log.error("%s", reason)
            items.append(
                (
                    E.anomaly_flagged(
                        fid, "custodian-wrong", "custodian", reason, [rid], svc_now(None)
                    ),
                    fid,
                    "",
                )  # fmt: skip
            )
        if items:
            try:
                svc._commit(items)
            except StoreUnavailableError:
                pass  # the server's log has the lines

    def _opener(self, keys: dict[tuple[str, int], bytes], memory: _Memory) -> SegmentOpener:
        data = self.svc.data

        def get(s: SegmentRow, work: Path, n: int) -> tuple[Path, Container]:
            if not s.encrypted:  # recorded before custody was set up
                return _checked_copy(data, s, work, n)
            return _decrypted(data, s, keys[(s.camera, s.start_ms)], memory)

        return get


def svc_now(now_ms: int | None) -> int:
    from custodes.fleet.model import now_ms as _now

    return _now() if now_ms is None else now_ms


def _keys(sealed: list[SegmentRow], opened: list[Opened]) -> dict[tuple[str, int], bytes]:
    return {(s.camera, s.start_ms): o.key for s, o in zip(sealed, opened, strict=True)}


def _same(built: Built, digests: list[str], redaction: dict[str, Any], index: int) -> None:
    if built.segments != digests or built.redaction != redaction:
        raise VerificationError(
            f"the clip was cut from other segments or redacted otherwise than the release at"
            f" log entry {index} says, so it is not released"
        )


class _Memory:
    """Plaintext files that live in memory only (Linux ``memfd``), or else in a private
    folder outside the data directory; all gone when the release ends."""

    def __init__(self) -> None:
        self.files: list[io.BufferedRandom] = []
        self.folder: Path | None = None

    def new(self) -> tuple[io.BufferedRandom, Path]:
        memfd = getattr(os, "memfd_create", None)
        if memfd is not None:
            fd = memfd("custodes-segment", getattr(os, "MFD_CLOEXEC", 0))
            f = os.fdopen(fd, "w+b")
            self.files.append(f)
            return f, Path(f"/proc/self/fd/{fd}")
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="custodes-open-"))
        path = self.folder / f"seg{len(self.files)}"
        f = open(path, "w+b")  # noqa: SIM115  (closed by close())
        self.files.append(f)
        return f, path

    def close(self) -> None:
        for f in self.files:
            f.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def _plaintexts() -> Iterator[_Memory]:
    m = _Memory()
    try:
        yield m
    finally:
        m.close()


def _decrypted(data: Path, s: SegmentRow, key: bytes, memory: _Memory) -> tuple[Path, Container]:
    """The segment's ciphertext, checked against its logged digest, decrypted in memory and
    checked against its logged plaintext digest."""
    from custodes.custody.errors import CustodyFormatError, SegmentError
    from custodes.custody.kem import SegmentId
    from custodes.custody.stream import decrypt_stream

    where = f"camera {s.camera} at {format_time(s.start_ms)}"
    path = segment_path(data, s.camera, s.start_ms)
    if path is None:
        raise NotFoundError(f"the segment of {where} is not in the archive")
    cipher = path.read_bytes()
    if hashlib.sha256(cipher).hexdigest() != s.ciphertext_sha256:
        raise VerificationError(
            f"the archived ciphertext of {where} does not match its logged digest,"
            " so it is not released"
        )
    rec = json.loads(s.record)
    seg = SegmentId(epoch=str(s.epoch), camera=s.camera, start=str(rec["start"]))
    f, name = memory.new()
    try:
        decrypt_stream(io.BytesIO(cipher), f, key=key, segment=str(seg))
    except (SegmentError, CustodyFormatError) as exc:
        raise VerificationError(
            f"the segment of {where} does not decrypt ({exc}), so it is not released"
        ) from None
    f.flush()
    f.seek(0)
    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    if h.hexdigest() != s.sha256:
        raise VerificationError(
            f"the decrypted segment of {where} does not match its logged digest,"
            " so it is not released"
        )
    kind = sniff(name)
    if kind is None:
        raise VerificationError(
            f"the segment of {where} is not an MP4, MPEG-TS or Matroska file, so it is not released"
        )
    return name, kind
