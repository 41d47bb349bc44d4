"""Threshold ElGamal KEM: one key per segment, opened only by T custodians together.

Recording (the agent, which holds only the epoch's public key ``Y``):

1. ``r`` fresh per segment, ``R = r*G`` (the segment's *ephemeral key*, logged in the
   segment record and written in the ciphertext header);
2. ``Z = r*Y``;
3. the segment key is HKDF-SHA256(ikm = ``Z``, salt = ``custodes/custody/kem/v1``,
   info = epoch, camera, start, ``R``, ``Y``, each length-prefixed), 32 bytes.  Binding
   camera and start means a key opened for one segment opens no other, and a ciphertext
   moved under another segment's name does not decrypt.

Release (nobody holds ``x = log_G Y``; custodian ``j`` holds its share ``x_j``):

4. (:func:`partial_decrypt`) custodian ``j`` answers ``D_j = x_j*R`` and a DLEQ proof
   that ``log_G Y_j == log_R D_j`` (``Y_j`` its public verification share), the proof's
   context binding epoch, camera, start, custodian, ``R`` and the release it answers;
5. (:func:`combine`) the gateway checks every proof (a wrong one is named, with the
   partial as evidence), takes any T valid partials with distinct indices and computes
   ``Z = sum lambda_j * D_j`` (Lagrange coefficients at 0, in the exponent), then the key
   as in 3.  The secret ``x`` is never formed; only ``Z = x*R`` for this one segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custodes.custody.dleq import DLEQProof, check_dleq, prove_dleq
from custodes.custody.errors import (
    CustodyFormatError,
    NotEnoughPartialsError,
    WrongPartialError,
)
from custodes.custody.group import Point, Scalar, b64decode, b64encode
from custodes.custody.keys import EpochPublic, EpochShare

__all__ = [
    "KEY_BYTES",
    "Encapsulation",
    "Opened",
    "Partial",
    "SegmentId",
    "combine",
    "derive_key",
    "encapsulate",
    "lagrange_at_zero",
    "partial_decrypt",
    "verify_partial",
]

KEY_BYTES = 32
_KEM_SALT = b"custodes/custody/kem/v1"
_PARTIAL_DST = b"custodes/custody/kem/partial/v1"
_MAX_FIELD = 256


def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _field(value: object, what: str) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_FIELD
        or not value.isascii()
        or not value.isprintable()
    ):
        raise CustodyFormatError(f"{what}: expected 1 to {_MAX_FIELD} printable ASCII characters")
    return value


@dataclass(frozen=True, slots=True)
class SegmentId:
    """What a segment key is bound to: the epoch, the camera and the segment's start."""

    epoch: str
    camera: str
    start: str  # as logged, e.g. "2026-12-03T10:00:00Z"

    def __post_init__(self) -> None:
        _field(self.epoch, "epoch")
        _field(self.camera, "camera")
        _field(self.start, "start")

    def __str__(self) -> str:
        return f"{self.camera}@{self.start} (epoch {self.epoch})"

    def _bytes(self) -> tuple[bytes, bytes, bytes]:
        return self.epoch.encode(), self.camera.encode(), self.start.encode()


@dataclass(frozen=True, slots=True)
class Encapsulation:
    """The agent's result for one segment: log ``ephemeral``, use ``key``, then drop it."""

    ephemeral: Point
    key: bytes


def derive_key(z: Point, ephemeral: Point, public_key: Point, segment: SegmentId) -> bytes:
    """Step 3: the segment key from the shared point ``Z``."""
    info = _lp(*segment._bytes(), ephemeral.encode(), public_key.encode())
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_KEM_SALT, info=info)
    return hkdf.derive(z.encode())


def encapsulate(public: EpochPublic | Point, segment: SegmentId) -> Encapsulation:
    """A fresh segment key and the ephemeral key that lets T custodians reopen it."""
    if isinstance(public, EpochPublic) and public.epoch != segment.epoch:
        raise CustodyFormatError("the segment's epoch is not this epoch key's")
    return _encapsulate_with(Scalar.random(), public, segment)


def _encapsulate_with(r: Scalar, public: EpochPublic | Point, segment: SegmentId) -> Encapsulation:
    # Internal, and for the independent test vectors: never reuse ``r``.
    y = public.public_key if isinstance(public, EpochPublic) else public
    if y.is_identity() or r.is_zero():
        raise CustodyFormatError("degenerate epoch key or ephemeral secret")
    ephemeral = Point.base_mul(r)
    return Encapsulation(ephemeral, derive_key(y * r, ephemeral, y, segment))


@dataclass(frozen=True, slots=True)
class Partial:
    """Custodian ``custodian``'s answer for one segment: ``D_j = x_j*R`` and its proof."""

    custodian: int
    point: Point
    proof: DLEQProof

    def to_json(self) -> dict[str, Any]:
        return {
            "custodian": self.custodian,
            "partial": b64encode(self.point.encode()),
            "proof": b64encode(self.proof.encode()),
        }

    @classmethod
    def from_json(cls, obj: object) -> Partial:
        if not isinstance(obj, dict) or set(obj) != {"custodian", "partial", "proof"}:
            raise CustodyFormatError("a partial has custodian, partial and proof")
        index = obj["custodian"]
        if type(index) is not int or not 1 <= index <= 64:
            raise CustodyFormatError("custodian: expected an index from 1 to 64")
        return cls(
            index,
            Point.decode(b64decode(obj["partial"], 32, what="partial")),
            DLEQProof.decode(b64decode(obj["proof"], 64, what="proof")),
        )


def _context(segment: SegmentId, custodian: int, ephemeral: Point, release: str) -> bytes:
    return _lp(
        _PARTIAL_DST,
        *segment._bytes(),
        custodian.to_bytes(4, "big"),
        ephemeral.encode(),
        release.encode(),
    )


def _release(release: object) -> str:
    if release == "":
        return ""
    return _field(release, "release")


def partial_decrypt(
    share: EpochShare, ephemeral: Point, segment: SegmentId, *, release: str = ""
) -> Partial:
    """Step 4, on the custodian, after it has checked the release in the witnessed log.

    ``release`` names the release the answer is for (for example the log index of its
    ``access.released`` entry); it is bound into the proof, so an answer recorded for one
    release does not verify as an answer for another.
    """
    release = _release(release)
    if share.public.epoch != segment.epoch:
        raise CustodyFormatError("the segment's epoch is not this share's")
    if ephemeral.is_identity():
        raise CustodyFormatError("the identity is not an ephemeral key")
    d = ephemeral * share.secret
    y_j = share.public.verification_shares[share.index - 1]
    proof = prove_dleq(
        share.secret,
        Point.generator(),
        y_j,
        ephemeral,
        d,
        context=_context(segment, share.index, ephemeral, release),
    )
    return Partial(share.index, d, proof)


def verify_partial(
    public: EpochPublic,
    partial: Partial,
    ephemeral: Point,
    segment: SegmentId,
    *,
    release: str = "",
) -> None:
    """Raise :class:`WrongPartialError`, naming the custodian, unless ``partial`` is correct."""
    release = _release(release)
    if not 1 <= partial.custodian <= public.n:
        raise WrongPartialError(
            "not a custodian of this epoch", custodian=partial.custodian, partial=partial
        )
    if public.epoch != segment.epoch:
        raise CustodyFormatError("the segment's epoch is not this epoch key's")
    y_j = public.verification_shares[partial.custodian - 1]
    ok = check_dleq(
        partial.proof,
        Point.generator(),
        y_j,
        ephemeral,
        partial.point,
        context=_context(segment, partial.custodian, ephemeral, release),
    )
    if not ok:
        raise WrongPartialError(
            f"partial decryption for segment {segment} fails its proof",
            custodian=partial.custodian,
            partial=partial,
        )


def lagrange_at_zero(indices: Sequence[int]) -> list[Scalar]:
    """Coefficients ``lambda_j = prod_{m != j} m / (m - j)`` for interpolation at 0."""
    if len(set(indices)) != len(indices) or any(i < 1 for i in indices):
        raise CustodyFormatError("interpolation needs distinct positive indices")
    out = []
    for j in indices:
        num = Scalar.from_int(1)
        den = Scalar.from_int(1)
        for m in indices:
            if m != j:
                num = num * Scalar.from_int(m)
                den = den * Scalar.from_int(m - j)
        out.append(num * den.invert())
    return out


@dataclass(frozen=True, slots=True)
class Opened:
    """A segment key opened by T custodians, and any custodians that answered wrongly."""

    key: bytes
    used: tuple[int, ...]
    wrong: tuple[WrongPartialError, ...]


def combine(
    public: EpochPublic,
    partials: Iterable[Partial],
    ephemeral: Point,
    segment: SegmentId,
    *,
    release: str = "",
) -> Opened:
    """Step 5: verify every partial, combine any T valid ones, derive the segment key.

    Fewer than T valid partials (from distinct custodians) raises
    :class:`NotEnoughPartialsError`, which counts the valid answers and names the wrong
    ones.  Even on success, :attr:`Opened.wrong` names every custodian whose answer failed
    its proof, for the alert.
    """
    valid: dict[int, Partial] = {}
    wrong: list[WrongPartialError] = []
    for p in partials:
        try:
            verify_partial(public, p, ephemeral, segment, release=release)
        except WrongPartialError as exc:
            wrong.append(exc)
            continue
        valid.setdefault(p.custodian, p)
    if len(valid) < public.threshold:
        raise NotEnoughPartialsError(valid=len(valid), needed=public.threshold, wrong=tuple(wrong))
    used = sorted(valid)[: public.threshold]
    z = Point.identity()
    for j, lam in zip(used, lagrange_at_zero(used), strict=True):
        z = z + valid[j].point * lam
    key = derive_key(z, ephemeral, public.public_key, segment)
    return Opened(key, tuple(used), tuple(wrong))
