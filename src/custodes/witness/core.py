"""The witness's decision on one ``add-checkpoint`` request (C2SP tlog-witness).

The request body is ``old <N>``, then up to 63 consistency proof hashes in
base64, one a line, then an empty line, then the signed checkpoint note::

    old 15
    PlEvqDnQ5+VHvZlBMGyvhQyWtRJUX/d7hD4GDGYr5F0=
    ...

    example.org/log
    20
    ...

:meth:`Witness.check` decides, in the order of the tlog-witness text, without
writing:

(1) Parse the request strictly (400 when malformed).
(2) Find the log by the checkpoint's origin (404 when unknown).
(3) Verify the checkpoint with the keys trusted for that origin, ignoring
    signatures by other keys (403 when none verifies, or one fails).
(4) ``old`` must not exceed the checkpoint size (400).
(5) ``old`` must equal the size the witness holds (409, ``text/x.tlog.size``).
(6) A checkpoint of size 0 must have the empty tree's root (422).
(7) From ``old`` 0 the proof must be empty (422).
(8) With ``old`` equal to the checkpoint size the proof must be empty and the
    roots equal (422); else the consistency proof must lead from the held root
    to the new one (422).

A request that passes becomes an :class:`~custodes.witness.store.Advance`
carrying the cosignature line, signed but not yet sent: the caller commits it
with the store's compare-and-swap and only then answers with that line.  The
store keeps the line, and :meth:`Witness.monitored` serves the checkpoint with
it (``GET /<hex SHA-256 of the origin>/checkpoint``, the spec's monitoring
endpoint).  Replies are values (:class:`Reply`), not exceptions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from dataclasses import dataclass, field

from custodes.errors import CheckpointError, FormatError, SignatureError, VerificationError
from custodes.tlog import (
    EMPTY_ROOT,
    CosignatureSigner,
    Verifier,
    check_consistency,
    format_note,
    open_note,
    parse_checkpoint,
    parse_note,
)
from custodes.witness.store import Advance, LogState

__all__ = ["MAX_REQUEST", "Reply", "Witness", "origin_hash", "parse_request", "size_reply"]

MAX_REQUEST = 128 * 1024
"""No add-checkpoint body is larger (63 proof lines and a checkpoint note fit easily)."""

MAX_PROOF = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"

_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")
_MAX_SIZE = 1 << 63


@dataclass(frozen=True, kw_only=True)
class Reply:
    """An HTTP answer: status, body and content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def refuse(cls, status: int, message: str) -> Reply:
        return cls(status=status, body=(message + "\n").encode())


def size_reply(size: int) -> Reply:
    """409 Conflict carrying the size the witness holds, as C2SP tlog-witness asks."""
    return Reply(status=409, body=f"{size}\n".encode(), content_type=SIZE_CONTENT_TYPE)


@dataclass(frozen=True, kw_only=True)
class Request:
    old: int
    proof: tuple[bytes, ...]
    note: bytes
    origin: str


def _b64_hash(line: bytes) -> bytes | None:
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32 or base64.b64encode(raw) != line:
        return None
    return raw


def parse_request(body: bytes) -> Request | Reply:
    """The request ``body`` encodes, or a 400 reply saying what is wrong."""
    if len(body) > MAX_REQUEST:
        return Reply.refuse(400, f"The request body is larger than {MAX_REQUEST} bytes.")
    head, sep, note = body.partition(b"\n\n")
    if not sep or not note:
        return Reply.refuse(400, "The request needs an empty line before the checkpoint.")
    lines = head.split(b"\n")
    try:
        first = lines[0].decode("ascii")
    except UnicodeDecodeError:
        first = ""
    match = _OLD.fullmatch(first)
    if match is None or int(match.group(1)) >= _MAX_SIZE:
        return Reply.refuse(400, "The request must start with 'old <size>' in canonical decimal.")
    if len(lines) - 1 > MAX_PROOF:
        return Reply.refuse(400, f"A consistency proof has at most {MAX_PROOF} hashes.")
    proof: list[bytes] = []
    for line in lines[1:]:
        h = _b64_hash(line)
        if h is None:
            return Reply.refuse(400, "A consistency proof line is not base64 of 32 bytes.")
        proof.append(h)
    origin_line, nl, _ = note.partition(b"\n")
    try:
        origin = origin_line.decode("utf-8")
    except UnicodeDecodeError:
        origin = ""
    if not nl or not origin:
        return Reply.refuse(400, "The checkpoint must start with its origin line.")
    return Request(old=int(match.group(1)), proof=tuple(proof), note=note, origin=origin)


@dataclass(kw_only=True)
class _Log:
    verifiers: tuple[Verifier, ...]
    state: LogState


def origin_hash(origin: str) -> str:
    """The monitoring path element of a log: hex SHA-256 of its origin, lowercase."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


@dataclass(kw_only=True)
class Witness:
    """A witness: its cosigning key and what it holds for each log (a cache of the store)."""

    signer: CosignatureSigner
    logs: dict[str, _Log] = field(default_factory=dict)
    by_hash: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_states(cls, signer: CosignatureSigner, states: list[LogState]) -> Witness:
        w = cls(signer=signer)
        for s in states:
            w.remember(s)
        return w

    def remember(self, state: LogState) -> None:
        """Take ``state`` as what the store holds for its log now."""
        known = self.logs.get(state.origin)
        if known is None or known.state.vkey != state.vkey:
            verifiers = tuple(Verifier.from_key(k) for k in state.vkeys)
            self.logs[state.origin] = _Log(verifiers=verifiers, state=state)
            self.by_hash[origin_hash(state.origin)] = state.origin
        else:
            known.state = state

    def held(self, origin: str) -> LogState:
        return self.logs[origin].state

    def check(self, body: bytes) -> Advance | Reply:
        """Steps (1) to (8): the state change to commit, or the refusal."""
        # (1)
        req = parse_request(body)
        if isinstance(req, Reply):
            return req
        # (2)
        log = self.logs.get(req.origin)
        if log is None:
            return Reply.refuse(404, f"This witness does not witness the log {req.origin}.")
        # (3)
        try:
            opened = open_note(req.note, log.verifiers)
            cp = parse_checkpoint(opened.text)
        except SignatureError as err:
            return Reply.refuse(403, str(err))
        except (CheckpointError, FormatError) as err:
            return Reply.refuse(400, str(err))
        # (4)
        if req.old > cp.size:
            return Reply.refuse(
                400, f"The old size {req.old} is larger than the checkpoint size {cp.size}."
            )
        # (5)
        held = log.state
        if req.old != held.size:
            return size_reply(held.size)
        # (6)
        if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
            return Reply.refuse(422, "A checkpoint of size 0 must have the empty tree's root.")
        if req.old == 0:
            # (7)
            if req.proof:
                return Reply.refuse(422, "A consistency proof from size 0 must be empty.")
        elif req.old == cp.size:
            # (8)
            if req.proof:
                return Reply.refuse(422, "A consistency proof between equal sizes is empty.")
            if cp.root_hash != held.root:
                return Reply.refuse(
                    422, f"The witness holds another root hash for size {cp.size} of this log."
                )
        else:
            try:
                check_consistency(
                    req.proof,
                    old_size=req.old,
                    new_size=cp.size,
                    old_root=held.root,
                    new_root=cp.root_hash,
                )
            except VerificationError as err:
                return Reply.refuse(422, str(err))
        return Advance(
            origin=cp.origin,
            old_size=held.size,
            old_root=held.root,
            new_size=cp.size,
            new_root=cp.root_hash,
            checkpoint=req.note,
            cosignature=self.cosign_text(opened.text),
        )

    def committed(self, op: Advance) -> Reply:
        """After ``op`` committed: update the cache and answer with the cosignature."""
        log = self.logs[op.origin]
        log.state = LogState(
            origin=op.origin,
            vkey=log.state.vkey,
            size=op.new_size,
            root=op.new_root,
            checkpoint=op.checkpoint,
            cosignature=op.cosignature,
        )
        return Reply(status=200, body=op.cosignature or self.cosign(op.checkpoint))

    def lost(self, op: Advance, now: LogState) -> Reply:
        """``op`` lost its compare-and-swap; the store holds ``now``."""
        self.remember(now)
        if now.size == op.new_size and now.root == op.new_root:
            return Reply(status=200, body=op.cosignature or self.cosign(op.checkpoint))
        return size_reply(now.size)

    def monitored(self, hashed: str) -> Reply:
        """The latest checkpoint cosigned for the log whose origin hashes to ``hashed``.

        It carries the log's signatures this witness verified and the
        cosignature it answered with; 404 if it never cosigned one.
        """
        origin = self.by_hash.get(hashed)
        log = self.logs.get(origin) if origin is not None else None
        if log is None or log.state.checkpoint is None:
            return Reply.refuse(404, "This witness has cosigned no checkpoint of that log.")
        note = parse_note(log.state.checkpoint)
        trusted = {(v.name, v.key_id) for v in log.verifiers}
        sigs = [s for s in note.signatures if (s.name, s.key_id) in trusted]
        line = log.state.cosignature or self.cosign(log.state.checkpoint)
        mine = parse_note(note.text.encode("utf-8") + b"\n" + line).signatures
        return Reply(status=200, body=format_note(note.text, [*sigs, *mine]))

    def cosign_text(self, text: str, timestamp: int | None = None) -> bytes:
        """The ``cosignature/v1`` signature line for the checkpoint body ``text``."""
        when = int(time.time()) if timestamp is None else timestamp
        sig = self.signer.cosign(text, when)
        blob = sig.key_id.to_bytes(4, "big") + sig.signature
        return f"\u2014 {sig.name} {base64.b64encode(blob).decode('ascii')}\n".encode()

    def cosign(self, note: bytes, timestamp: int | None = None) -> bytes:
        """The ``cosignature/v1`` signature line for the checkpoint in ``note``."""
        return self.cosign_text(parse_note(note).text, timestamp)
