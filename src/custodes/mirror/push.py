"""The mirror's write API (C2SP tlog-mirror): ``add-checkpoint`` and ``add-entries``.

A mirror client first sends the log's signed checkpoint with a consistency
proof from the mirror's pending checkpoint (``POST /add-checkpoint``, the
witness request; the answer is an empty 200, or 409 ``text/x.tlog.size`` with
the pending size), then the entries up to it (``POST /add-entries``)::

    u16 len || log origin || u64 upload_start || u64 upload_end || u16 len || ticket
    then, per 256-aligned package of [upload_start, upload_end):
        each entry as u16 len || bytes, then u8 num_hashes (<= 63) and that many
        hashes: the subtree consistency proof of [package start rounded down to
        256, package end) in the checkpoint of size upload_end

The body may be gzip-compressed (``Content-Encoding: gzip``) and is read as a
stream, one package at a time: each is authenticated, then saved as an entry
bundle with its hash tiles, before the next is read.  Answers, in the order of
the spec: 404 unknown origin; 422 no pending checkpoint ever; 409 an
``upload_end`` that is not a recent pending size or is below the mirror
checkpoint, an ``upload_start`` past the next entry, or too many entries sent
again; 400 a malformed header, or no package before the body ended; 422 a
package whose proof fails; 202 some packages saved but not all (mirror info);
200 with the mirror's cosignature once the mirror checkpoint is
``upload_end``.  409 and 202 carry ``text/x.tlog.mirror-info``: the pending
size, the next entry and the ticket (empty here: the mirror keeps its last
:data:`~custodes.mirror.follow.RECENT_PENDING` pending checkpoints itself).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from custodes.errors import CheckpointError, FormatError, SignatureError, VerificationError
from custodes.mirror.follow import Gap, Mirror
from custodes.tlog import (
    EMPTY_ROOT,
    TILE_WIDTH,
    SignedCheckpoint,
    check_consistency,
    open_checkpoint,
    parse_note,
)
from custodes.witness.core import Reply, parse_request, size_reply

__all__ = [
    "MAX_EXCESS",
    "MIRROR_INFO",
    "add_checkpoint",
    "add_entries",
    "mirror_info",
    "signature_lines",
]

MIRROR_INFO = "text/x.tlog.mirror-info"
MAX_EXCESS = 32 * TILE_WIDTH
"""At most this many entries the mirror holds already may be sent again (else 409)."""
MAX_PROOF = 63
_CHUNK = 1 << 20

Runner = Callable[..., Awaitable[Any]]
"""Runs a blocking call off the event loop: ``await run(func, *args)``."""


class _Truncated(Exception):
    """The body ended inside an entry package."""


def mirror_info(mirror: Mirror, status: int, size: int | None = None) -> Reply:
    """A 409 or 202 answer: pending size, next entry, ticket (empty), one a line."""
    pending = mirror.pending_size if size is None else size
    body = f"{pending}\n{mirror.next_entry}\n{base64.b64encode(b'').decode()}\n".encode()
    return Reply(status=status, body=body, content_type=MIRROR_INFO)


def signature_lines(mirror: Mirror, note: bytes) -> bytes:
    """The mirror's own signature lines in ``note``, as an add-checkpoint answer carries them."""
    mine = (mirror.signer.name, mirror.signer.key_id)
    lines = [
        line + "\n"
        for line, sig in zip(_lines(note), parse_note(note).signatures, strict=False)
        if (sig.name, sig.key_id) == mine
    ]
    return "".join(lines).encode()


def _lines(note: bytes) -> list[str]:
    text = note.decode("utf-8")
    return text[text.rfind("\n\n") + 2 :].rstrip("\n").split("\n")


def add_checkpoint(mirror: Mirror, body: bytes) -> Reply:
    """``POST /add-checkpoint``: update the pending checkpoint, as a witness would check it."""
    req = parse_request(body)
    if isinstance(req, Reply):
        return req
    origin = (
        mirror.log_key.name if mirror.checkpoint is None else mirror.checkpoint.checkpoint.origin
    )
    if req.origin != origin:
        return Reply.refuse(404, f"This mirror does not mirror the log {req.origin}.")
    try:
        signed = open_checkpoint(req.note, mirror.log_key)
    except SignatureError as err:
        return Reply.refuse(403, str(err))
    except (CheckpointError, FormatError) as err:
        return Reply.refuse(400, str(err))
    cp = signed.checkpoint
    if req.old > cp.size:
        return Reply.refuse(
            400, f"The old size {req.old} is larger than the checkpoint size {cp.size}."
        )
    with mirror.lock:
        held = mirror.pending_at(mirror.pending_size)
        held_size = held.checkpoint.size if held is not None else 0
        if req.old != held_size:
            return size_reply(held_size)
        if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
            return Reply.refuse(422, "A checkpoint of size 0 must have the empty tree's root.")
        if req.old == 0:
            if req.proof:
                return Reply.refuse(422, "A consistency proof from size 0 must be empty.")
        elif req.old == cp.size:
            if req.proof:
                return Reply.refuse(422, "A consistency proof between equal sizes is empty.")
            if held is not None and cp.root_hash != held.checkpoint.root_hash:
                return Reply.refuse(
                    422, f"The mirror holds another root hash for size {cp.size} of this log."
                )
        else:
            assert held is not None
            try:
                check_consistency(
                    req.proof,
                    old_size=req.old,
                    new_size=cp.size,
                    old_root=held.checkpoint.root_hash,
                    new_root=cp.root_hash,
                )
            except VerificationError as err:
                return Reply.refuse(422, str(err))
        mirror.take_pending(signed)
    return Reply(status=200, body=b"")


class _Body:
    """The request body read as a stream, gunzipped on the way when it is gzip."""

    def __init__(self, chunks: AsyncIterator[bytes], gzipped: bool) -> None:
        self._chunks = chunks
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        self._buf = bytearray()
        self._eof = False

    async def read(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None when the body ends first."""
        while len(self._buf) < n:
            if self._z is not None and self._z.unconsumed_tail:
                self._buf += self._z.decompress(self._z.unconsumed_tail, _CHUNK)
                continue
            if self._eof:
                return None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._eof = True
                if self._z is not None:
                    self._buf += self._z.flush()
                continue
            if self._z is None:
                self._buf += chunk
            else:
                try:
                    self._buf += self._z.decompress(chunk, _CHUNK)
                except zlib.error as err:
                    raise FormatError(f"The gzip request body is damaged: {err}.") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def uint(self, size: int) -> int | None:
        raw = await self.read(size)
        return None if raw is None else int.from_bytes(raw, "big")


@dataclass(frozen=True, kw_only=True)
class _Header:
    origin: str
    start: int
    end: int


async def _header(body: _Body) -> _Header | Reply:
    bad = Reply.refuse(400, "The add-entries body ends inside its header.")
    n = await body.uint(2)
    raw_origin = await body.read(n) if n is not None else None
    start = await body.uint(8)
    end = await body.uint(8)
    ticket_size = await body.uint(2)
    ticket = await body.read(ticket_size) if ticket_size is not None else None
    if raw_origin is None or start is None or end is None or ticket is None:
        return bad
    try:
        origin = raw_origin.decode("utf-8")
    except UnicodeDecodeError:
        return Reply.refuse(400, "The log origin in the add-entries header is not UTF-8.")
    return _Header(origin=origin, start=start, end=end)


async def _package(body: _Body, count: int) -> tuple[list[bytes], list[bytes]]:
    """One package's entries and proof; raises _Truncated if the body ends first."""
    entries: list[bytes] = []
    for _ in range(count):
        size = await body.uint(2)
        entry = await body.read(size) if size is not None else None
        if entry is None:
            raise _Truncated
        entries.append(entry)
    num = await body.uint(1)
    if num is None:
        raise _Truncated
    if num > MAX_PROOF:
        raise FormatError(f"A package proof has at most {MAX_PROOF} hashes, not {num}.")
    raw = await body.read(32 * num)
    if raw is None:
        raise _Truncated
    return entries, [raw[i : i + 32] for i in range(0, len(raw), 32)]


async def add_entries(
    mirror: Mirror, chunks: AsyncIterator[bytes], *, gzipped: bool, run: Runner
) -> Reply:
    """``POST /add-entries``: authenticate and save packages, then commit ``upload_end``.

    ``run`` runs a blocking call off the event loop (Starlette's threadpool).
    """
    body = _Body(chunks, gzipped)
    try:
        head = await _header(body)
        if isinstance(head, Reply):
            return head
        origin = (
            mirror.log_key.name
            if mirror.checkpoint is None
            else mirror.checkpoint.checkpoint.origin
        )
        if head.origin != origin:
            return Reply.refuse(404, f"This mirror does not mirror the log {head.origin}.")
        with mirror.lock:
            if not mirror.has_pending():
                return Reply.refuse(
                    422, "The mirror has no checkpoint of this log yet; send add-checkpoint first."
                )
            if head.start > head.end:
                return Reply.refuse(
                    400, f"upload_start {head.start} is larger than upload_end {head.end}."
                )
            pending = mirror.pending_at(head.end)
            nxt = mirror.next_entry
            if pending is None or head.end < mirror.size:
                return mirror_info(mirror, 409)
            if head.start > nxt:  # upload_end is valid: name it, so the client keeps its proofs
                return mirror_info(mirror, 409, head.end)
            if min(head.end, nxt) - head.start > MAX_EXCESS:
                return mirror_info(mirror, 409, head.end)
        saved = await _upload(mirror, body, head, pending, run)
        if isinstance(saved, Reply):
            return saved
        done: Reply = await run(_finish, mirror, pending)
        return done
    except FormatError as err:
        return Reply.refuse(400, str(err))


async def _upload(
    mirror: Mirror, body: _Body, head: _Header, pending: SignedCheckpoint, run: Runner
) -> int | Reply:
    """Read and save the packages; the count saved, or the answer to give now."""
    saved = 0
    if head.start == head.end:
        return 0
    rounded = head.start - head.start % TILE_WIDTH
    total = -(-head.end // TILE_WIDTH) - rounded // TILE_WIDTH
    for i in range(total):
        start = max(head.start, rounded + i * TILE_WIDTH)
        end = min(head.end, rounded + (i + 1) * TILE_WIDTH)
        try:
            entries, proof = await _package(body, end - start)
        except (_Truncated, FormatError) as err:
            if saved:  # a prefix, deliberate or interrupted: say where to go on from
                return mirror_info(mirror, 202, head.end)
            if isinstance(err, FormatError):
                return Reply.refuse(400, str(err))
            return Reply.refuse(
                400, "The add-entries body ended before its first entry package was complete."
            )
        try:
            await run(mirror.add_package, pending, start, end, entries, proof)
        except Gap:
            return mirror_info(mirror, 409, head.end)
        except VerificationError as err:
            return Reply.refuse(422, f"Entry package [{start}, {end}) is refused: {err}")
        saved += 1
    return saved


def _finish(mirror: Mirror, pending: SignedCheckpoint) -> Reply:
    size = pending.checkpoint.size
    with mirror.lock:
        if size < mirror.size:
            return mirror_info(mirror, 409)
        if mirror.next_entry < size:
            return mirror_info(mirror, 202, size)
        if size == mirror.size:
            note = mirror.served_checkpoint()
            if note is not None:
                return Reply(status=200, body=signature_lines(mirror, note))
        note = mirror.commit(pending)
    return Reply(status=200, body=signature_lines(mirror, note))
