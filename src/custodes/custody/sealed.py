"""Sealed request details, encrypted to the custodians: opened only by T of them together.

The same threshold ElGamal construction as a segment's key (:mod:`custodes.custody.kem`),
with its own labels, so that no key for the details sits beside ``access.db``:

1. the gateway draws ``r``, ``R = r*G`` and ``Z = r*Y`` (``Y`` the epoch key of the day
   the request is made);
2. the key is HKDF-SHA256(ikm = ``Z``, salt = ``custodes/custody/details/v1``, info =
   request id, epoch, ``R``, ``Y``, each length-prefixed), 32 bytes; so a key opened for one
   request opens no other;
3. the details (salt and canonical JSON, :mod:`custodes.access.sealing`) are encrypted with
   AES-256-GCM under it, the version byte, request id, epoch and ``R`` authenticated;
4. ``R`` and the epoch are logged in the request's ``access.requested`` (field ``sealed``),
   so a custodian takes the ephemeral key from the log, never from the gateway: a gateway
   cannot have one request's details opened under another request's logged read.

Opening: custodian ``j`` answers ``D_j = x_j*R`` with a DLEQ proof whose context binds the
request, the epoch, the custodian, ``R`` and the logged entry that justified the answer (an
``access.details_read``, or the ``access.released``/``access.viewed`` whose scope it checks).
Anyone holding T valid partials computes ``Z = sum lambda_j D_j`` and decrypts.  So for a
release (the scope check) a custodian never hands its partial to the gateway in the clear:
it encrypts it to each custodian's long-term encryption key (:func:`relay_partial`), the
gateway relays the sealed partials, and only the custodians can combine them; the gateway
gets a plain partial only for a logged read.

Layout: ``0x02 || len(epoch) (1) || epoch || R (32) || nonce (12) || AES-GCM(salt || details)``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custodes.custody.dleq import DLEQProof, check_dleq, prove_dleq
from custodes.custody.errors import CustodyFormatError, NotEnoughPartialsError, WrongPartialError
from custodes.custody.group import Point, Scalar
from custodes.custody.kem import Partial, _field, _lp, lagrange_at_zero
from custodes.custody.keys import EpochPublic, EpochShare

__all__ = [
    "VERSION",
    "SealedDetails",
    "details_partial",
    "open_details",
    "open_relayed",
    "relay_partial",
    "seal_details",
    "verify_details_partial",
]

VERSION = 2
_SALT = b"custodes/custody/details/v1"
_PARTIAL_DST = b"custodes/custody/details/partial/v1"
_NONCE = 12


def _text(value: object, what: str) -> bytes:
    return _field(value, what).encode()


@dataclass(frozen=True, slots=True)
class SealedDetails:
    """A parsed version-2 sealed blob."""

    epoch: str
    ephemeral: Point
    nonce: bytes
    body: bytes

    def encode(self) -> bytes:
        e = self.epoch.encode()
        return bytes([VERSION, len(e)]) + e + self.ephemeral.encode() + self.nonce + self.body

    @classmethod
    def parse(cls, blob: bytes) -> SealedDetails:
        if len(blob) < 2 or blob[0] != VERSION:
            raise CustodyFormatError("the sealed details are not sealed to the custodians")
        n = blob[1]
        head = 2 + n + 32 + _NONCE
        if n == 0 or len(blob) < head + 16:
            raise CustodyFormatError("the sealed details are cut short")
        epoch = blob[2 : 2 + n].decode("ascii", "replace")
        _text(epoch, "epoch")
        eph = Point.decode(blob[2 + n : 2 + n + 32])
        return cls(epoch, eph, blob[2 + n + 32 : head], blob[head:])

    def aad(self, request: str) -> bytes:
        return bytes([VERSION]) + _lp(_text(request, "request"), self.epoch.encode(),
                                      self.ephemeral.encode())  # fmt: skip


def _key(z: Point, eph: Point, y: Point, request: str, epoch: str) -> bytes:
    info = _lp(_text(request, "request"), _text(epoch, "epoch"), eph.encode(), y.encode())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(z.encode())


def seal_details(public: EpochPublic, request: str, plain: bytes) -> SealedDetails:
    """Encrypt ``plain`` so that only T custodians of ``public``'s epoch together reopen it."""
    return _seal_with(Scalar.random(), secrets.token_bytes(_NONCE), public, request, plain)


def _seal_with(
    r: Scalar, nonce: bytes, public: EpochPublic, request: str, plain: bytes
) -> SealedDetails:
    # Internal, and for the independent model in the tests: never reuse ``r``.
    y = public.public_key
    if y.is_identity() or r.is_zero():
        raise CustodyFormatError("degenerate epoch key or ephemeral secret")
    eph = Point.base_mul(r)
    key = _key(y * r, eph, y, request, public.epoch)
    shell = SealedDetails(public.epoch, eph, nonce, b"")
    body = AESGCM(key).encrypt(nonce, plain, shell.aad(request))
    return SealedDetails(public.epoch, eph, nonce, body)


def _context(request: str, epoch: str, custodian: int, eph: Point, cause: str) -> bytes:
    return _lp(_PARTIAL_DST, _text(request, "request"), _text(epoch, "epoch"),
               custodian.to_bytes(4, "big"), eph.encode(), _text(cause, "cause"))  # fmt: skip


def details_partial(share: EpochShare, eph: Point, request: str, *, cause: str) -> Partial:
    """Custodian ``share.index``'s ``D_j = x_j*R`` and its proof, for the logged ``cause``."""
    if eph.is_identity():
        raise CustodyFormatError("the identity is not an ephemeral key")
    d = eph * share.secret
    y_j = share.public.verification_shares[share.index - 1]
    ctx = _context(request, share.public.epoch, share.index, eph, cause)
    return Partial(share.index, d, prove_dleq(share.secret, Point.generator(), y_j, eph, d,
                                              context=ctx))  # fmt: skip


def verify_details_partial(
    public: EpochPublic, p: Partial, eph: Point, request: str, *, cause: str
) -> None:
    """Raise :class:`WrongPartialError`, naming the custodian, unless ``p`` is correct."""
    if not 1 <= p.custodian <= public.n:
        raise WrongPartialError("not a custodian of this epoch", custodian=p.custodian, partial=p)
    y_j = public.verification_shares[p.custodian - 1]
    ctx = _context(request, public.epoch, p.custodian, eph, cause)
    if not check_dleq(p.proof, Point.generator(), y_j, eph, p.point, context=ctx):
        raise WrongPartialError(
            f"partial decryption of the details of {request} fails its proof",
            custodian=p.custodian,
            partial=p,
        )


def open_details(
    public: EpochPublic,
    partials: Iterable[Partial],
    sealed: SealedDetails,
    request: str,
    *,
    cause: str,
) -> tuple[bytes, tuple[WrongPartialError, ...]]:
    """Verify every partial, combine any T valid ones, decrypt: (plaintext, the wrong ones).

    Fewer than T valid partials raises :class:`NotEnoughPartialsError`; a ciphertext that
    does not open raises :class:`CustodyFormatError`.
    """
    if public.epoch != sealed.epoch:
        raise CustodyFormatError("the sealed details are of another epoch than this key")
    valid: dict[int, Partial] = {}
    wrong: list[WrongPartialError] = []
    for p in partials:
        try:
            verify_details_partial(public, p, sealed.ephemeral, request, cause=cause)
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
    key = _key(z, sealed.ephemeral, public.public_key, request, sealed.epoch)
    try:
        plain = AESGCM(key).decrypt(sealed.nonce, sealed.body, sealed.aad(request))
    except InvalidTag:
        raise CustodyFormatError(
            f"the sealed details of {request} do not open with the custodians' answers"
        ) from None
    return plain, tuple(wrong)


_RELAY_SALT = b"custodes/custody/details/relay/v1"


def _relay_key(shared: Point, eph: Point, pk: Point, request: str, cause: str,
               sender: int, recipient: int) -> bytes:  # fmt: skip
    info = _lp(_text(request, "request"), _text(cause, "cause"), sender.to_bytes(4, "big"),
               recipient.to_bytes(4, "big"), eph.encode(), pk.encode())  # fmt: skip
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_RELAY_SALT, info=info).derive(
        shared.encode()
    )


def relay_partial(
    p: Partial, recipient_key: Point, *, request: str, cause: str, recipient: int
) -> bytes:
    """Custodian ``p.custodian``'s partial, encrypted to custodian ``recipient`` (its
    long-term encryption key), so that a gateway that relays it cannot combine partials.

    Layout: ``E (32) || nonce (12) || AES-GCM(D (32) || proof (64))``.
    """
    e = Scalar.random()
    eph = Point.base_mul(e)
    key = _relay_key(recipient_key * e, eph, recipient_key, request, cause, p.custodian,
                     recipient)  # fmt: skip
    nonce = secrets.token_bytes(_NONCE)
    body = AESGCM(key).encrypt(nonce, p.point.encode() + p.proof.encode(), None)
    return eph.encode() + nonce + body


def open_relayed(
    blob: bytes, secret: Scalar, public: Point, *, request: str, cause: str, sender: int,
    recipient: int,
) -> Partial:  # fmt: skip
    """The partial custodian ``sender`` encrypted to this custodian (``secret``/``public``
    its encryption key pair); raises :class:`CustodyFormatError` if it does not open."""
    if len(blob) != 32 + _NONCE + 96 + 16:
        raise CustodyFormatError("a relayed partial is 156 bytes")
    eph = Point.decode(blob[:32])
    key = _relay_key(eph * secret, eph, public, request, cause, sender, recipient)
    try:
        plain = AESGCM(key).decrypt(blob[32 : 32 + _NONCE], blob[32 + _NONCE :], None)
    except InvalidTag:
        raise CustodyFormatError(
            f"the partial relayed from custodian {sender} does not open"
        ) from None
    return Partial(sender, Point.decode(plain[:32]), DLEQProof.decode(plain[32:]))
