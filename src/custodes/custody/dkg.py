"""Epoch keys by distributed key generation (GJKR), every message a log entry.

The custodians of an epoch (``n`` of them, threshold ``t``) make a key pair whose secret
exists nowhere whole.  The broadcast channel is the log: every message below is a JSON
object meant to be one log entry, so no custodian can show different messages to different
peers.  The protocol is the "New-DKG" of Gennaro, Jarecki, Krawczyk and Rabin ("Secure
distributed key generation for discrete-log based cryptosystems", J. Cryptology 2007):
joint Pedersen VSS to fix the qualified set, then joint Feldman to extract the key, so
that no dealer can bias the epoch key by seeing the others first.  ``H`` is a second
generator nobody knows the logarithm of (RFC 9496 hash-to-group of a fixed tag).

Phase 1, sharing (the qualified set):

1. (:func:`deal`) dealer ``i`` picks random polynomials ``f_i``, ``f'_i`` of degree
   ``t-1`` and logs a :class:`Dealing`: Pedersen commitments ``P_ik = a_ik*G + b_ik*H``
   and, for each custodian ``j``, ``f_i(j) || f'_i(j)`` encrypted to ``j``'s encryption key
   (ECIES: an ephemeral ``E = e*G``; HKDF-SHA256 of ``e*PK_j`` bound to epoch, dealer,
   recipient, ``E`` and ``PK_j``; ChaCha20-Poly1305).  It keeps back its
   :class:`Extraction` (``A_ik = a_ik*G``) and forgets the polynomials.
2. (:func:`open_share`) recipient ``j`` checks ``s*G + s'*H == sum_k j^k * P_ik``.
3. (:func:`make_complaint`) if that fails, ``j`` logs a self-proving :class:`Complaint`:
   the Diffie-Hellman point ``K = sk_j*E`` of that one share and a DLEQ proof that
   ``log_G PK_j == log_E K``.  Anyone decrypts that share and judges
   (:func:`check_complaint`); a false complaint is rejected, and the dealer never answers.
4. (:func:`qualify`) after the complaint deadline, QUAL is the dealers with one
   well-formed dealing and no upheld complaint.

Phase 2, extraction (the key), logged only after QUAL is fixed:

5. each dealer in QUAL logs its :class:`Extraction`; recipient ``j`` checks
   ``s*G == sum_k j^k * A_ik`` (:func:`check_extraction`) and complains as in 3 if not
   (upheld when the share passes the Pedersen check but fails this one);
6. for a dealer in QUAL whose extraction is missing or complained about, the custodians log
   reveals (:func:`make_reveal`, the same self-proving opening of their share), and
   anyone reconstructs that dealer's polynomial from any ``t`` valid ones, so aborting
   changes nothing (:func:`needs_reconstruction` says which dealers need reveals);
7. (:func:`epoch_key`) anyone computes the :class:`EpochPublic`: ``Y = sum_{i in QUAL}
   A_i0`` and each verification share ``Y_j = sum_{i in QUAL} f_i(j)*G``;
8. (:func:`combine_share`) custodian ``j`` sums its shares ``x_j = sum_{i in QUAL} f_i(j)``
   and checks ``x_j*G == Y_j``.

The epoch secret ``x = sum f_i(0)`` is never computed by anyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custodes.custody.dleq import DLEQProof, check_dleq, prove_dleq
from custodes.custody.errors import CustodyFormatError, DealingError, DKGFailedError
from custodes.custody.group import Point, Scalar, b64decode, b64encode, hash_to_point, point_sum
from custodes.custody.keys import (
    EncryptionKey,
    EpochPublic,
    EpochShare,
    Roster,
    _fields,
    _int,
    _list,
    _lp,
    _point,
)

__all__ = [
    "PEDERSEN_H",
    "Complaint",
    "Dealing",
    "EncryptedShare",
    "Extraction",
    "check_complaint",
    "check_extraction",
    "combine_share",
    "deal",
    "epoch_key",
    "make_complaint",
    "make_reveal",
    "needs_reconstruction",
    "open_share",
    "qualify",
    "verification_share",
]

_SHARE_DST = b"custodes/custody/dkg/share/v1"
_COMPLAINT_DST = b"custodes/custody/dkg/complaint/v1"
_NONCE = bytes(12)  # each share key is used once (a fresh E per share)
_SHARE_CT = 64 + 16
#: The second generator of the Pedersen commitments.
PEDERSEN_H = hash_to_point(b"custodes/custody/dkg/pedersen-generator/v1")


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    ephemeral: Point
    ciphertext: bytes  # f(j) || f'(j), 64 bytes, + 16-byte tag


@dataclass(frozen=True, slots=True)
class Dealing:
    """Phase 1: a dealer's Pedersen commitments and one encrypted share per custodian."""

    epoch: str
    dealer: int
    commitments: tuple[Point, ...]
    shares: tuple[EncryptedShare, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.dealing",
            "epoch": self.epoch,
            "dealer": self.dealer,
            "commitments": [b64encode(c.encode()) for c in self.commitments],
            "shares": [
                {
                    "ephemeral": b64encode(s.ephemeral.encode()),
                    "ciphertext": b64encode(s.ciphertext),
                }
                for s in self.shares
            ],
        }

    @classmethod
    def from_json(cls, obj: object, roster: Roster) -> Dealing:
        """Parse a logged dealing for ``roster``; a malformed one is the dealer's fault."""
        fields = _fields(obj, "custody.dealing", {"epoch", "dealer", "commitments", "shares"})
        if fields["epoch"] != roster.epoch:
            raise CustodyFormatError("dealing is for another epoch")
        dealer = _int(fields, "dealer", 1, roster.n)
        commitments = tuple(
            _point(c, "commitment", allow_identity=k > 0)
            for k, c in enumerate(_list(fields["commitments"], roster.threshold, "commitments"))
        )
        shares = []
        for s in _list(fields["shares"], roster.n, "shares"):
            if not isinstance(s, dict) or set(s) != {"ephemeral", "ciphertext"}:
                raise CustodyFormatError("share: expected ephemeral and ciphertext")
            shares.append(
                EncryptedShare(
                    _point(s["ephemeral"], "ephemeral"),
                    b64decode(s["ciphertext"], _SHARE_CT, what="ciphertext"),
                )
            )
        return cls(roster.epoch, dealer, commitments, tuple(shares))


@dataclass(frozen=True, slots=True)
class Extraction:
    """Phase 2: a qualified dealer's Feldman commitments ``A_ik = a_ik*G``."""

    epoch: str
    dealer: int
    commitments: tuple[Point, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.extraction",
            "epoch": self.epoch,
            "dealer": self.dealer,
            "commitments": [b64encode(c.encode()) for c in self.commitments],
        }

    @classmethod
    def from_json(cls, obj: object, roster: Roster) -> Extraction:
        fields = _fields(obj, "custody.extraction", {"epoch", "dealer", "commitments"})
        if fields["epoch"] != roster.epoch:
            raise CustodyFormatError("extraction is for another epoch")
        return cls(
            roster.epoch,
            _int(fields, "dealer", 1, roster.n),
            tuple(
                _point(c, "commitment", allow_identity=k > 0)
                for k, c in enumerate(_list(fields["commitments"], roster.threshold, "commitments"))
            ),
        )


def _share_cipher(
    roster: Roster, dealer: int, recipient: int, eph: Point, dh: Point
) -> tuple[ChaCha20Poly1305, bytes]:
    info = _lp(
        _SHARE_DST,
        roster.epoch.encode(),
        dealer.to_bytes(4, "big"),
        recipient.to_bytes(4, "big"),
        eph.encode(),
        roster.keys[recipient - 1].encode(),
    )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(dh.encode())
    return ChaCha20Poly1305(key), info


def _eval(coefficients: Sequence[Scalar], x: int) -> Scalar:
    xs = Scalar.from_int(x)
    acc = Scalar.from_int(0)
    for a in reversed(coefficients):  # Horner
        acc = acc * xs + a
    return acc


def verification_share(commitments: Sequence[Point], j: int) -> Point:
    """``sum_k j^k * commitments[k]``: the commitment to the polynomial's value at ``j``."""
    acc = Point.identity()
    power = Scalar.from_int(1)
    js = Scalar.from_int(j)
    for c in commitments:
        acc = acc + c * power
        power = power * js
    return acc


def deal(roster: Roster, dealer: int) -> tuple[Dealing, Extraction]:
    """Dealer ``dealer``'s dealing (log now) and extraction (log once QUAL is fixed)."""
    if not 1 <= dealer <= roster.n:
        raise CustodyFormatError("dealer: not a custodian of this roster")
    t = roster.threshold
    return _deal_with(
        roster,
        dealer,
        [Scalar.random() for _ in range(t)],
        [Scalar.random() for _ in range(t)],
        [Scalar.random() for _ in range(roster.n)],
    )


def _deal_with(
    roster: Roster,
    dealer: int,
    a: Sequence[Scalar],
    b: Sequence[Scalar],
    ephemerals: Sequence[Scalar],
) -> tuple[Dealing, Extraction]:
    # Internal, and for the independent test vectors.
    feldman = tuple(Point.base_mul(x) for x in a)
    pedersen = tuple(f + PEDERSEN_H * y for f, y in zip(feldman, b, strict=True))
    shares = []
    for j in range(1, roster.n + 1):
        e = ephemerals[j - 1]
        eph = Point.base_mul(e)
        cipher, info = _share_cipher(roster, dealer, j, eph, roster.keys[j - 1] * e)
        plain = _eval(a, j).encode() + _eval(b, j).encode()
        shares.append(EncryptedShare(eph, cipher.encrypt(_NONCE, plain, info)))
    return (
        Dealing(roster.epoch, dealer, pedersen, tuple(shares)),
        Extraction(roster.epoch, dealer, feldman),
    )


def _decrypt_share(
    roster: Roster, dealing: Dealing, recipient: int, dh: Point
) -> tuple[Scalar, Scalar] | None:
    """The share, if it decrypts and passes the Pedersen check; else None."""
    enc = dealing.shares[recipient - 1]
    cipher, info = _share_cipher(roster, dealing.dealer, recipient, enc.ephemeral, dh)
    try:
        raw = cipher.decrypt(_NONCE, enc.ciphertext, info)
        s, s2 = Scalar.decode(raw[:32]), Scalar.decode(raw[32:])
    except (InvalidTag, CustodyFormatError):
        return None
    if Point.base_mul(s) + PEDERSEN_H * s2 != verification_share(dealing.commitments, recipient):
        return None
    return s, s2


def _check_recipient(roster: Roster, recipient: int, key: EncryptionKey) -> None:
    if not 1 <= recipient <= roster.n or roster.keys[recipient - 1] != key.public:
        raise CustodyFormatError("this key is not that custodian's in the roster")


def open_share(roster: Roster, dealing: Dealing, recipient: int, key: EncryptionKey) -> Scalar:
    """Decrypt and check ``recipient``'s share; a bad one raises :class:`DealingError`.

    On :class:`DealingError` the recipient should log :func:`make_complaint`.
    """
    _check_recipient(roster, recipient, key)
    eph = dealing.shares[recipient - 1].ephemeral
    share = _decrypt_share(roster, dealing, recipient, eph * key.secret)
    if share is None:
        raise DealingError(
            f"the share for custodian {recipient} does not match the commitments",
            dealer=dealing.dealer,
            evidence=dealing,
        )
    return share[0]


def check_extraction(
    roster: Roster, dealing: Dealing, extraction: Extraction, recipient: int, key: EncryptionKey
) -> None:
    """Phase 2, step 5: raise :class:`DealingError` if the extraction disagrees with the share."""
    s = open_share(roster, dealing, recipient, key)
    if extraction.dealer != dealing.dealer or Point.base_mul(s) != verification_share(
        extraction.commitments, recipient
    ):
        raise DealingError(
            f"the extraction does not match custodian {recipient}'s share",
            dealer=dealing.dealer,
            evidence=extraction,
        )


@dataclass(frozen=True, slots=True)
class Complaint:
    """A self-proving opening of one share: a complaint, or a reveal for reconstruction."""

    epoch: str
    dealer: int
    complainer: int
    shared_point: Point
    proof: DLEQProof
    kind: str = "complaint"  # or "reveal"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": f"custody.{self.kind}",
            "epoch": self.epoch,
            "dealer": self.dealer,
            "complainer": self.complainer,
            "shared_point": b64encode(self.shared_point.encode()),
            "proof": b64encode(self.proof.encode()),
        }

    @classmethod
    def from_json(cls, obj: object, roster: Roster) -> Complaint:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in ("custody.complaint", "custody.reveal"):
            raise CustodyFormatError("expected a custody.complaint or custody.reveal")
        fields = _fields(obj, kind, {"epoch", "dealer", "complainer", "shared_point", "proof"})
        if fields["epoch"] != roster.epoch:
            raise CustodyFormatError("complaint is for another epoch")
        return cls(
            epoch=roster.epoch,
            dealer=_int(fields, "dealer", 1, roster.n),
            complainer=_int(fields, "complainer", 1, roster.n),
            shared_point=_point(fields["shared_point"], "shared_point"),
            proof=DLEQProof.decode(b64decode(fields["proof"], 64, what="proof")),
            kind=kind.removeprefix("custody."),
        )


def _complaint_context(epoch: str, dealer: int, complainer: int) -> bytes:
    return _lp(
        _COMPLAINT_DST, epoch.encode(), dealer.to_bytes(4, "big"), complainer.to_bytes(4, "big")
    )


def make_complaint(
    roster: Roster, dealing: Dealing, recipient: int, key: EncryptionKey, *, kind: str = "complaint"
) -> Complaint:
    """Reveal the key of this one share, with a proof, so anyone can judge the dealer."""
    _check_recipient(roster, recipient, key)
    if kind not in ("complaint", "reveal"):
        raise CustodyFormatError("kind is complaint or reveal")
    eph = dealing.shares[recipient - 1].ephemeral
    dh = eph * key.secret
    proof = prove_dleq(
        key.secret,
        Point.generator(),
        key.public,
        eph,
        dh,
        context=_complaint_context(roster.epoch, dealing.dealer, recipient),
    )
    return Complaint(roster.epoch, dealing.dealer, recipient, dh, proof, kind)


def make_reveal(roster: Roster, dealing: Dealing, recipient: int, key: EncryptionKey) -> Complaint:
    """Phase 2, step 6: open this custodian's share of a dealer that must be reconstructed.

    Only for a dealer that :func:`needs_reconstruction` names: revealing shares of a dealer
    in good standing would hand its part of the epoch secret to everyone.
    """
    return make_complaint(roster, dealing, recipient, key, kind="reveal")


def _opened(
    roster: Roster, dealing: Dealing, c: Complaint
) -> tuple[bool, tuple[Scalar, Scalar] | None]:
    """(whether the opening's proof holds, the share if it passes the Pedersen check)."""
    if c.epoch != roster.epoch or c.dealer != dealing.dealer:
        return False, None
    j = c.complainer
    ok = check_dleq(
        c.proof,
        Point.generator(),
        roster.keys[j - 1],
        dealing.shares[j - 1].ephemeral,
        c.shared_point,
        context=_complaint_context(roster.epoch, dealing.dealer, j),
    )
    return (ok, _decrypt_share(roster, dealing, j, c.shared_point)) if ok else (False, None)


def check_complaint(
    roster: Roster, dealing: Dealing, complaint: Complaint, extraction: Extraction | None = None
) -> bool:
    """True if upheld: the proof holds and the share fails the Pedersen check, or (given an
    extraction) passes it but fails the Feldman check against the extraction."""
    ok, share = _opened(roster, dealing, complaint)
    if not ok:
        return False
    if share is None:
        return True
    if extraction is None:
        return False
    return Point.base_mul(share[0]) != verification_share(
        extraction.commitments, complaint.complainer
    )


def _index_dealings(
    roster: Roster, dealings: Iterable[Dealing]
) -> tuple[dict[int, Dealing], set[int]]:
    by_dealer: dict[int, Dealing] = {}
    cheaters: set[int] = set()
    for d in dealings:
        if (
            d.epoch != roster.epoch
            or not 1 <= d.dealer <= roster.n
            or len(d.commitments) != roster.threshold
            or len(d.shares) != roster.n
        ):
            raise CustodyFormatError("dealing does not belong to this roster")
        if d.dealer in by_dealer and by_dealer[d.dealer] != d:
            cheaters.add(d.dealer)  # equivocation
        by_dealer[d.dealer] = d
    return by_dealer, cheaters


def qualify(
    roster: Roster, dealings: Iterable[Dealing], complaints: Iterable[Complaint]
) -> tuple[int, ...]:
    """Phase 1, step 4: QUAL, from the logged dealings and complaints.

    A dealer disqualifies itself by dealing twice (equivocation) or by an upheld complaint;
    one that never dealt is absent.  Fewer than ``t`` raises :class:`DKGFailedError`.
    """
    by_dealer, cheaters = _index_dealings(roster, dealings)
    for c in complaints:
        if c.kind == "complaint" and c.dealer in by_dealer:
            if check_complaint(roster, by_dealer[c.dealer], c):
                cheaters.add(c.dealer)
    qualified = tuple(sorted(set(by_dealer) - cheaters))
    if len(qualified) < roster.threshold:
        raise DKGFailedError(
            f"epoch {roster.epoch}: {len(qualified)} qualified dealers, "
            f"{roster.threshold} are needed"
        )
    return qualified


def _extractions(
    roster: Roster,
    by_dealer: Mapping[int, Dealing],
    qualified: Sequence[int],
    extractions: Iterable[Extraction],
    complaints: Iterable[Complaint],
) -> tuple[dict[int, Extraction], tuple[int, ...]]:
    """The good extractions, and the qualified dealers that must be reconstructed."""
    seen: dict[int, Extraction] = {}
    bad: set[int] = set()
    for x in extractions:
        if x.epoch != roster.epoch or len(x.commitments) != roster.threshold:
            raise CustodyFormatError("extraction does not belong to this roster")
        if x.dealer in seen and seen[x.dealer] != x:
            bad.add(x.dealer)
        seen[x.dealer] = x
    for c in complaints:
        if c.kind == "complaint" and c.dealer in seen and c.dealer in by_dealer:
            if check_complaint(roster, by_dealer[c.dealer], c, seen[c.dealer]):
                bad.add(c.dealer)
    good = {i: seen[i] for i in qualified if i in seen and i not in bad}
    return good, tuple(i for i in qualified if i not in good)


def needs_reconstruction(
    roster: Roster,
    dealings: Iterable[Dealing],
    qualified: Sequence[int],
    extractions: Iterable[Extraction],
    complaints: Iterable[Complaint],
) -> tuple[int, ...]:
    """Qualified dealers whose extraction is missing, doubled or complained about."""
    by_dealer, _ = _index_dealings(roster, dealings)
    return _extractions(roster, by_dealer, qualified, extractions, complaints)[1]


def _interpolate(points: Mapping[int, Scalar], x: int) -> Scalar:
    """The value at ``x`` of the polynomial through ``points`` (Lagrange)."""
    total = Scalar.from_int(0)
    for m, y in points.items():
        num, den = Scalar.from_int(1), Scalar.from_int(1)
        for k in points:
            if k != m:
                num = num * Scalar.from_int(x - k)
                den = den * Scalar.from_int(m - k)
        total = total + y * num * den.invert()
    return total


def epoch_key(
    roster: Roster,
    dealings: Iterable[Dealing],
    qualified: Sequence[int],
    extractions: Iterable[Extraction],
    complaints: Iterable[Complaint],
    reveals: Iterable[Complaint] = (),
) -> EpochPublic:
    """Phase 2, step 7: the epoch key and verification shares, by anyone, from the log.

    A dealer named by :func:`needs_reconstruction` is reconstructed from any ``t`` valid
    reveals; with fewer, :class:`DKGFailedError` names it (ask the custodians to reveal).
    """
    by_dealer, _ = _index_dealings(roster, dealings)
    good, missing = _extractions(roster, by_dealer, qualified, extractions, complaints)
    t = roster.threshold
    aggregate = [point_sum(good[i].commitments[k] for i in good) for k in range(t)]
    public_key = aggregate[0]
    shares = [verification_share(aggregate, j) for j in range(1, roster.n + 1)]
    for i in missing:
        points: dict[int, Scalar] = {}
        for r in reveals:
            if r.kind == "reveal" and r.dealer == i and r.complainer not in points:
                ok, share = _opened(roster, by_dealer[i], r)
                if ok and share is not None:
                    points[r.complainer] = share[0]
        if len(points) < t:
            raise DKGFailedError(
                f"epoch {roster.epoch}: dealer {i} must be reconstructed; "
                f"{len(points)} valid reveals, {t} are needed"
            )
        basis = dict(sorted(points.items())[:t])
        public_key = public_key + Point.base_mul(_interpolate(basis, 0))
        for j in range(1, roster.n + 1):
            shares[j - 1] = shares[j - 1] + Point.base_mul(_interpolate(basis, j))
    if public_key.is_identity():
        raise DKGFailedError(f"epoch {roster.epoch}: the joint public key is the identity")
    return EpochPublic(roster.epoch, t, tuple(qualified), public_key, tuple(shares))


def combine_share(
    roster: Roster,
    public: EpochPublic,
    dealings: Iterable[Dealing],
    recipient: int,
    key: EncryptionKey,
) -> EpochShare:
    """Step 8: custodian ``recipient``'s share, the sum of its shares from QUAL."""
    by_dealer = {d.dealer: d for d in dealings}
    missing = [i for i in public.qualified if i not in by_dealer]
    if missing:
        raise CustodyFormatError(f"dealings of qualified dealers {missing} are missing")
    total = Scalar.from_int(0)
    for i in public.qualified:
        total = total + open_share(roster, by_dealer[i], recipient, key)
    if Point.base_mul(total) != public.verification_shares[recipient - 1]:
        raise DKGFailedError(f"custodian {recipient}: share does not match the logged epoch key")
    return EpochShare(recipient, total, public)
