"""A slow, independent model of ristretto255, written from the equations of RFC 9496.

Pure Python integers, no libsodium: field arithmetic modulo 2^255-19, extended Edwards
coordinates on edwards25519, the ristretto255 decoding (section 4.3.1), encoding (4.3.2),
equality (4.3.3) and one-way map (4.3.4), and double-and-add scalar multiplication.  It is
not constant time and never used outside the tests: its only job is to recompute what
:mod:`custodes.custody` computes through libsodium, so that a mistake in how we call
libsodium (or in the protocol code above it) shows as a disagreement.

The generator is derived here from the Ed25519 base point (y = 4/5, x even), not copied
from an encoding, so that the RFC's vector for 1*B checks this model too.
"""

from __future__ import annotations

import hashlib
import hmac

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
if SQRT_M1 & 1:
    SQRT_M1 = P - SQRT_M1

Pt = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z


def inv(a: int) -> int:
    return pow(a, P - 2, P)


def is_negative(a: int) -> bool:
    return (a % P) & 1 == 1


def ct_abs(a: int) -> int:
    a %= P
    return P - a if is_negative(a) else a


def sqrt_ratio_m1(u: int, v: int) -> tuple[bool, int]:
    """RFC 9496 section 4.2: (was_square, the non-negative sqrt(u/v) or sqrt(i*u/v))."""
    u %= P
    v %= P
    r = (u * pow(v, 3, P)) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    check = v * r * r % P
    correct = check == u
    flipped = check == (-u) % P
    flipped_i = check == (-u * SQRT_M1) % P
    if flipped or flipped_i:
        r = r * SQRT_M1 % P
    return correct or flipped, ct_abs(r)


# Constants of section 4.1, checked against their defining equations below.
SQRT_AD_MINUS_ONE = 25063068953384623474111414158702152701244531502492656460079210482610430750235
INVSQRT_A_MINUS_D = 54469307008909316920995813868745141605393597292927456921205312896311721017578
ONE_MINUS_D_SQ = (1 - D * D) % P
D_MINUS_ONE_SQ = (D - 1) * (D - 1) % P
assert SQRT_AD_MINUS_ONE * SQRT_AD_MINUS_ONE % P == (-D - 1) % P  # a*d - 1 with a = -1
assert INVSQRT_A_MINUS_D * INVSQRT_A_MINUS_D * (-1 - D) % P == 1  # 1/sqrt(a - d)

IDENTITY: Pt = (0, 1, 1, 0)


def _base() -> Pt:
    y = 4 * inv(5) % P
    x2 = (y * y - 1) * inv(D * y * y + 1) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * SQRT_M1 % P
    assert x * x % P == x2
    if x & 1:
        x = P - x
    return (x, y, 1, x * y % P)


def add(p1: Pt, p2: Pt) -> Pt:
    """Edwards addition for a = -1 (RFC 8032 section 5.1.4)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    dd = z1 * 2 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(p: Pt) -> Pt:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def mul(k: int, p: Pt) -> Pt:
    k %= L
    acc = IDENTITY
    while k:
        if k & 1:
            acc = add(acc, p)
        p = add(p, p)
        k >>= 1
    return acc


def equal(p1: Pt, p2: Pt) -> bool:
    """Section 4.3.3."""
    x1, y1, _, _ = p1
    x2, y2, _, _ = p2
    return (x1 * y2 - y1 * x2) % P == 0 or (y1 * y2 - x1 * x2) % P == 0


def decode(raw: bytes) -> Pt | None:
    """Section 4.3.1; None for an invalid encoding."""
    if len(raw) != 32:
        return None
    s = int.from_bytes(raw, "little")
    if s >= P or is_negative(s):
        return None
    ss = s * s % P
    u1 = (1 - ss) % P
    u2 = (1 + ss) % P
    u2_sqr = u2 * u2 % P
    v = (-(D * u1 * u1) - u2_sqr) % P
    was_square, invsqrt = sqrt_ratio_m1(1, v * u2_sqr)
    den_x = invsqrt * u2 % P
    den_y = invsqrt * den_x * v % P
    x = ct_abs(2 * s * den_x)
    y = u1 * den_y % P
    t = x * y % P
    if not was_square or is_negative(t) or y == 0:
        return None
    return (x, y, 1, t)


def encode(p: Pt) -> bytes:
    """Section 4.3.2."""
    x0, y0, z0, t0 = p
    u1 = (z0 + y0) * (z0 - y0) % P
    u2 = x0 * y0 % P
    _, invsqrt = sqrt_ratio_m1(1, u1 * u2 * u2)
    den1 = invsqrt * u1 % P
    den2 = invsqrt * u2 % P
    z_inv = den1 * den2 * t0 % P
    ix0 = x0 * SQRT_M1 % P
    iy0 = y0 * SQRT_M1 % P
    enchanted = den1 * INVSQRT_A_MINUS_D % P
    rotate = is_negative(t0 * z_inv)
    x, y = (iy0, ix0) if rotate else (x0, y0)
    den_inv = enchanted if rotate else den2
    if is_negative(x * z_inv):
        y = -y % P
    s = ct_abs(den_inv * (z0 - y))
    return s.to_bytes(32, "little")


def _map(t: int) -> Pt:
    """The Elligator map of section 4.3.4."""
    r = SQRT_M1 * t * t % P
    u = (r + 1) * ONE_MINUS_D_SQ % P
    v = (-1 - r * D) * (r + D) % P
    was_square, s = sqrt_ratio_m1(u, v)
    s_prime = -ct_abs(s * t) % P
    s = s if was_square else s_prime
    c = P - 1 if was_square else r
    n = (c * (r - 1) * D_MINUS_ONE_SQ - v) % P
    w0 = 2 * s * v % P
    w1 = n * SQRT_AD_MINUS_ONE % P
    w2 = (1 - s * s) % P
    w3 = (1 + s * s) % P
    return (w0 * w3 % P, w2 * w1 % P, w1 * w3 % P, w0 * w2 % P)


def from_uniform(wide: bytes) -> Pt:
    """The one-way map of 64 bytes: MAP of each half (top bit masked, mod p), added."""
    assert len(wide) == 64
    t1 = (int.from_bytes(wide[:32], "little") & ((1 << 255) - 1)) % P
    t2 = (int.from_bytes(wide[32:], "little") & ((1 << 255) - 1)) % P
    return add(_map(t1), _map(t2))


B = _base()


# What the protocol layers use, recomputed with the standard library only.


def transcript(dst: bytes, *parts: bytes) -> bytes:
    h = hashlib.sha512()
    h.update(len(dst).to_bytes(8, "big") + dst)
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.digest()


def hash_to_scalar(dst: bytes, *parts: bytes) -> int:
    return int.from_bytes(transcript(dst, *parts), "little") % L


def hash_to_point(dst: bytes, *parts: bytes) -> Pt:
    return from_uniform(transcript(dst, *parts))


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int = 32) -> bytes:
    """RFC 5869."""
    prk = hmac.new(salt if salt else bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((i,)), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def scalar_bytes(k: int) -> bytes:
    return (k % L).to_bytes(32, "little")
