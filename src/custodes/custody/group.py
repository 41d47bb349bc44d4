"""The ristretto255 group (RFC 9496), as small immutable values over libsodium.

Why pysodium: custody needs ristretto255 (``crypto_core_ristretto255_*`` and
``crypto_scalarmult_ristretto255``), a prime-order group with canonical encodings, and
libsodium has the maintained constant-time implementation of it.  PyNaCl (1.6) bundles
libsodium but does not bind the ristretto255 functions; pysodium binds all of them
through ctypes to the system libsodium (Debian ``libsodium23``, 1.0.18 or later).  We
call the bound functions of ``pysodium.sodium`` directly, so that every return code is
seen (libsodium returns -1 when a product is the identity, which we represent rather than
refuse) and no per-call version check is paid.  Nothing here is home-made: point and
scalar arithmetic, the one-way map and random scalars are libsodium's; this module only
validates, names and serialises.

* :class:`Scalar`: an integer modulo the group order ``L``, 32 bytes little-endian,
  canonical (``< L``) on the way in.
* :class:`Point`: a group element, its canonical 32-byte encoding; :meth:`Point.decode`
  refuses non-canonical or invalid encodings, and the identity unless asked for.
* :func:`hash_to_scalar` and :func:`hash_to_point`: SHA-512 over a domain-separation tag
  and length-prefixed parts, then libsodium's wide reduction or the RFC 9496 one-way map.

Example::

    x = Scalar.random()
    X = Point.base_mul(x)
    assert Point.decode(X.encode()) == X
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import hashlib
import hmac
from collections.abc import Iterable

import pysodium  # type: ignore[import-untyped]

from custodes.custody.errors import CustodyFormatError

__all__ = [
    "ORDER",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "Point",
    "Scalar",
    "b64decode",
    "b64encode",
    "hash_to_point",
    "hash_to_scalar",
    "point_sum",
]

_lib = pysodium.sodium
if not _lib.sodium_library_version_major() >= 10:  # libsodium 1.0.18 is "10.3"
    raise ImportError("custodes.custody needs libsodium 1.0.18 or later (ristretto255)")

#: The prime order of the group, 2^252 + 27742317777372353535851937790883648493.
ORDER = 2**252 + 27742317777372353535851937790883648493
POINT_BYTES = 32
SCALAR_BYTES = 32
_IDENTITY = bytes(32)


def _buf() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(32)


class Scalar:
    """An integer modulo :data:`ORDER`; arithmetic is libsodium's constant-time code."""

    __slots__ = ("_b",)

    def __init__(self, raw: bytes) -> None:
        # Internal: ``raw`` must already be canonical.  Use decode/from_int/random.
        self._b = raw

    @classmethod
    def random(cls) -> Scalar:
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_random(out)
        return cls(out.raw)

    @classmethod
    def from_int(cls, n: int) -> Scalar:
        """A public small integer (a custodian's index, a Lagrange numerator)."""
        return cls((n % ORDER).to_bytes(32, "little"))

    @classmethod
    def reduce64(cls, wide: bytes) -> Scalar:
        """Reduce 64 uniformly random bytes modulo ``L`` (libsodium's wide reduction)."""
        if len(wide) != 64:
            raise CustodyFormatError("a wide scalar is 64 bytes")
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_reduce(out, wide)
        return cls(out.raw)

    @classmethod
    def decode(cls, raw: bytes) -> Scalar:
        """Parse 32 bytes, refusing a non-canonical encoding (a value of ``L`` or more)."""
        if not isinstance(raw, bytes) or len(raw) != SCALAR_BYTES:
            raise CustodyFormatError("a scalar is 32 bytes")
        if int.from_bytes(raw, "little") >= ORDER:
            raise CustodyFormatError("a scalar must be less than the group order")
        return cls(raw)

    def encode(self) -> bytes:
        return self._b

    def to_int(self) -> int:
        return int.from_bytes(self._b, "little")

    def is_zero(self) -> bool:
        return hmac.compare_digest(self._b, _IDENTITY)

    def __add__(self, other: Scalar) -> Scalar:
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_add(out, self._b, other._b)
        return Scalar(out.raw)

    def __sub__(self, other: Scalar) -> Scalar:
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_sub(out, self._b, other._b)
        return Scalar(out.raw)

    def __mul__(self, other: Scalar) -> Scalar:
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_mul(out, self._b, other._b)
        return Scalar(out.raw)

    def __neg__(self) -> Scalar:
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_negate(out, self._b)
        return Scalar(out.raw)

    def invert(self) -> Scalar:
        if self.is_zero():
            raise ZeroDivisionError("zero has no inverse modulo the group order")
        out = _buf()
        _lib.crypto_core_ristretto255_scalar_invert(out, self._b)
        return Scalar(out.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scalar) and hmac.compare_digest(self._b, other._b)

    def __hash__(self) -> int:
        return hash(self._b)

    def __repr__(self) -> str:
        return "Scalar(<secret>)"


class Point:
    """A ristretto255 group element, held as its canonical encoding."""

    __slots__ = ("_b",)

    def __init__(self, raw: bytes) -> None:
        # Internal: ``raw`` must already be a valid canonical encoding.  Use decode.
        self._b = raw

    @classmethod
    def identity(cls) -> Point:
        return cls(_IDENTITY)

    @classmethod
    def generator(cls) -> Point:
        return _GENERATOR

    @classmethod
    def decode(cls, raw: bytes, *, allow_identity: bool = False) -> Point:
        """Parse a canonical encoding (RFC 9496 section 4.3.1); the identity only if allowed."""
        if not isinstance(raw, bytes) or len(raw) != POINT_BYTES:
            raise CustodyFormatError("a group element is 32 bytes")
        if raw == _IDENTITY:
            if allow_identity:
                return cls(raw)
            raise CustodyFormatError("the identity element is not allowed here")
        if _lib.crypto_core_ristretto255_is_valid_point(raw) != 1:
            raise CustodyFormatError("not a canonical ristretto255 encoding")
        return cls(raw)

    @classmethod
    def from_uniform(cls, wide: bytes) -> Point:
        """The RFC 9496 one-way map (section 4.3.4) of 64 uniformly random bytes."""
        if len(wide) != 64:
            raise CustodyFormatError("the one-way map takes 64 bytes")
        out = _buf()
        _lib.crypto_core_ristretto255_from_hash(out, wide)
        return cls(out.raw)

    @classmethod
    def base_mul(cls, k: Scalar) -> Point:
        """``k`` times the generator."""
        out = _buf()
        _lib.crypto_scalarmult_ristretto255_base(out, k._b)  # -1 means identity (k = 0)
        return cls(out.raw)

    def encode(self) -> bytes:
        return self._b

    def is_identity(self) -> bool:
        return self._b == _IDENTITY

    def __mul__(self, k: Scalar) -> Point:
        """``k`` times this point (written ``P * k``)."""
        out = _buf()
        _lib.crypto_scalarmult_ristretto255(out, k._b, self._b)  # -1: identity, out zeroed
        return Point(out.raw)

    def __add__(self, other: Point) -> Point:
        out = _buf()
        _lib.crypto_core_ristretto255_add(out, self._b, other._b)
        return Point(out.raw)

    def __sub__(self, other: Point) -> Point:
        out = _buf()
        _lib.crypto_core_ristretto255_sub(out, self._b, other._b)
        return Point(out.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and hmac.compare_digest(self._b, other._b)

    def __hash__(self) -> int:
        return hash(self._b)

    def __repr__(self) -> str:
        return f"Point({self._b.hex()})"


_GENERATOR = Point(
    bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
)


def point_sum(points: Iterable[Point]) -> Point:
    total = Point.identity()
    for p in points:
        total = total + p
    return total


def _transcript(dst: bytes, parts: Iterable[bytes]) -> bytes:
    """SHA-512 of the tag and each part, each prefixed by its 8-byte big-endian length."""
    h = hashlib.sha512()
    h.update(len(dst).to_bytes(8, "big"))
    h.update(dst)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def hash_to_scalar(dst: bytes, *parts: bytes) -> Scalar:
    """A scalar from a domain-separated, unambiguous hash (Fiat-Shamir challenges)."""
    return Scalar.reduce64(_transcript(dst, parts))


def hash_to_point(dst: bytes, *parts: bytes) -> Point:
    """A group element nobody knows the discrete logarithm of (RFC 9496 hash-to-group)."""
    return Point.from_uniform(_transcript(dst, parts))


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: object, length: int | None = None, *, what: str = "value") -> bytes:
    """Strict base64 (RFC 4648, padded, no whitespace), optionally of an exact length."""
    if not isinstance(text, str) or not text.isascii():
        raise CustodyFormatError(f"{what}: expected a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CustodyFormatError(f"{what}: not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise CustodyFormatError(f"{what}: non-canonical base64")
    if length is not None and len(raw) != length:
        raise CustodyFormatError(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw
