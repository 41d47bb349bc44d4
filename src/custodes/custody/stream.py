"""Segment encryption: the STREAM construction over AES-256-GCM, in constant memory.

A ciphertext file is a header and then chunks (Hoang, Reyhanitabar, Rogaway and Vizár,
"Online authenticated-encryption and its nonce-reuse misuse-resistance", 2015)::

    header  = "custodes-seg" (12 bytes) | version 1 (1) | aead 1 = AES-256-GCM (1)
              | chunk size (4, big-endian) | epoch length (1) | epoch (ASCII)
              | ephemeral key R (32)
    chunk i = AES-256-GCM(key, nonce_i, plaintext[i*size : (i+1)*size], aad = header)
    nonce_i = 7 zero bytes | i (4, big-endian) | 1 if last else 0 (1)

Every chunk but the last holds exactly ``chunk size`` bytes of plaintext; the last holds
0 to ``chunk size`` and is always present.  The key is used for one segment only (the
KEM makes a fresh one per segment), so the counter nonce never repeats.  The chunk number
in the nonce refuses reordering; the last-chunk flag refuses truncation at a chunk
boundary and a dropped last chunk; the header in every chunk's associated data refuses a
changed header; and a chunk spliced from another segment fails (another key).  Each
failure raises :class:`~custodes.custody.errors.SegmentError` naming the segment and the
chunk.  A decryptor writes out only authenticated chunks, but learns that the stream was
truncated only at its end: the caller discards the output on error (the gateway decrypts
in memory).

AES-256-GCM rather than ChaCha20-Poly1305: on machines with AES-NI (every server we
target) ``cryptography``'s AES-GCM runs about 3.5x faster (2.4 against 0.67 GB/s on a
1 MiB chunk here); the header's ``aead`` byte leaves room for ChaCha20-Poly1305 if needed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custodes.custody.errors import CustodyFormatError, SegmentError
from custodes.custody.group import Point
from custodes.custody.kem import KEY_BYTES, SegmentId, encapsulate
from custodes.custody.keys import EpochPublic

__all__ = [
    "DEFAULT_CHUNK",
    "MAGIC",
    "TAG_BYTES",
    "Header",
    "Sealed",
    "StreamDigests",
    "decrypt_stream",
    "encrypt_segment",
    "encrypt_stream",
    "read_header",
]

MAGIC = b"custodes-seg"
VERSION = 1
AEAD_AES256GCM = 1
TAG_BYTES = 16
DEFAULT_CHUNK = 1 << 20
MIN_CHUNK = 16
MAX_CHUNK = 16 << 20
_FIXED = len(MAGIC) + 1 + 1 + 4 + 1
MAX_HEADER = _FIXED + 64 + 32


@dataclass(frozen=True, slots=True)
class Header:
    epoch: str
    ephemeral: Point
    chunk_size: int = DEFAULT_CHUNK

    def encode(self) -> bytes:
        if not self.epoch.isascii() or not self.epoch.isprintable():
            raise CustodyFormatError("an epoch is 1 to 64 printable ASCII characters")
        epoch = self.epoch.encode("ascii")
        if not 0 < len(epoch) <= 64:
            raise CustodyFormatError("an epoch is 1 to 64 printable ASCII characters")
        if not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise CustodyFormatError(f"chunk size must be {MIN_CHUNK} to {MAX_CHUNK} bytes")
        return b"".join(
            (
                MAGIC,
                bytes((VERSION, AEAD_AES256GCM)),
                self.chunk_size.to_bytes(4, "big"),
                bytes((len(epoch),)),
                epoch,
                self.ephemeral.encode(),
            )
        )

    @classmethod
    def decode(cls, raw: bytes) -> Header:
        if len(raw) < _FIXED or raw[: len(MAGIC)] != MAGIC:
            raise CustodyFormatError("not a custodes segment ciphertext")
        version, aead = raw[len(MAGIC)], raw[len(MAGIC) + 1]
        if version != VERSION or aead != AEAD_AES256GCM:
            raise CustodyFormatError(f"unsupported segment format {version}/{aead}")
        chunk = int.from_bytes(raw[len(MAGIC) + 2 : len(MAGIC) + 6], "big")
        n = raw[_FIXED - 1]
        if len(raw) != _FIXED + n + 32:
            raise CustodyFormatError("segment header has the wrong length")
        try:
            epoch = raw[_FIXED : _FIXED + n].decode("ascii")
        except UnicodeDecodeError as exc:
            raise CustodyFormatError("segment header: epoch is not ASCII") from exc
        header = cls(epoch, Point.decode(raw[_FIXED + n :]), chunk)
        if header.encode() != raw:
            raise CustodyFormatError("segment header is not canonical")
        return header


@dataclass(frozen=True, slots=True)
class StreamDigests:
    """What the segment record logs about the file (SHA-256 hex digests and sizes)."""

    plaintext_sha256: str
    plaintext_size: int
    ciphertext_sha256: str
    ciphertext_size: int


@dataclass(frozen=True, slots=True)
class Sealed:
    """:func:`encrypt_segment`'s result: the ephemeral key and the digests, for the log."""

    segment: SegmentId
    ephemeral: Point
    digests: StreamDigests


def _nonce(i: int, last: bool) -> bytes:
    if i >= 1 << 32:
        raise CustodyFormatError("a segment has at most 2^32 chunks")
    return bytes(7) + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _read(src: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, short only at end of file (file objects may return short reads)."""
    data = src.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = src.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def encrypt_stream(src: BinaryIO, dst: BinaryIO, *, key: bytes, header: Header) -> StreamDigests:
    """Encrypt ``src`` to ``dst`` under a one-segment ``key``; memory is two chunks."""
    if len(key) != KEY_BYTES:
        raise CustodyFormatError("a segment key is 32 bytes")
    head = header.encode()
    aead = AESGCM(key)
    p_hash, c_hash = hashlib.sha256(), hashlib.sha256()
    dst.write(head)
    c_hash.update(head)
    p_size, c_size = 0, len(head)
    size = header.chunk_size
    current = _read(src, size)
    i = 0
    while True:
        following = _read(src, size) if len(current) == size else b""
        last = not following
        ct = aead.encrypt(_nonce(i, last), current, head)
        p_hash.update(current)
        c_hash.update(ct)
        dst.write(ct)
        p_size += len(current)
        c_size += len(ct)
        if last:
            break
        current, i = following, i + 1
    return StreamDigests(p_hash.hexdigest(), p_size, c_hash.hexdigest(), c_size)


def encrypt_segment(
    src: BinaryIO,
    dst: BinaryIO,
    public: EpochPublic,
    segment: SegmentId,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Sealed:
    """The agent's one call: a fresh KEM key for ``segment``, then :func:`encrypt_stream`."""
    enc = encapsulate(public, segment)
    header = Header(segment.epoch, enc.ephemeral, chunk_size)
    digests = encrypt_stream(src, dst, key=enc.key, header=header)
    return Sealed(segment, enc.ephemeral, digests)


def read_header(src: BinaryIO) -> Header:
    """Read and parse the header, leaving ``src`` at the first chunk."""
    fixed = _read(src, _FIXED)
    if len(fixed) < _FIXED:
        raise CustodyFormatError("segment ciphertext is shorter than its header")
    rest = _read(src, fixed[-1] + 32)
    return Header.decode(fixed + rest)


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    key: bytes,
    segment: str,
    header: Header | None = None,
) -> int:
    """Decrypt a segment to ``dst`` and return the plaintext size.

    ``segment`` names the segment in errors.  Pass ``header`` if it was already read
    with :func:`read_header` (to learn the ephemeral key); otherwise it is read here.
    Any failure raises :class:`SegmentError` with the chunk number.
    """
    if len(key) != KEY_BYTES:
        raise CustodyFormatError("a segment key is 32 bytes")
    if header is None:
        try:
            header = read_header(src)
        except CustodyFormatError as exc:
            raise SegmentError(f"bad header: {exc}", segment=segment, chunk=-1) from exc
    head = header.encode()
    aead = AESGCM(key)
    size = header.chunk_size + TAG_BYTES
    current = _read(src, size)
    i = 0
    total = 0
    while True:
        following = _read(src, size) if len(current) == size else b""
        last = not following
        if len(current) < TAG_BYTES:
            raise SegmentError(
                "truncated: the chunk is shorter than its tag", segment=segment, chunk=i
            )
        try:
            plain = aead.decrypt(_nonce(i, last), current, head)
        except InvalidTag:
            why = (
                "does not authenticate as the last chunk (truncated, or the last chunk dropped)"
                if last
                else "does not authenticate (altered, moved, or from another segment)"
            )
            raise SegmentError(why, segment=segment, chunk=i) from None
        dst.write(plain)
        total += len(plain)
        if last:
            return total
        current, i = following, i + 1
