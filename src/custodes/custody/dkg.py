"""Epoch keys by distributed key generation: joint Feldman with verifiable complaints.

The custodians of an epoch (``n`` of them, threshold ``t``) make a key pair whose secret
exists nowhere whole.  The broadcast channel is the log: every message below is a JSON
object meant to be one log entry, so no custodian can show different dealings to
different peers.  The steps, each a pure function here (no I/O):

1. (:func:`deal`) each custodian ``i`` (a *dealer*, indices 1..n) picks a random polynomial
   ``f_i`` of degree ``t-1`` and logs a :class:`Dealing`: the Feldman commitments
   ``C_ik = a_ik*G`` to its coefficients, and for each custodian ``j`` the share
   ``f_i(j)`` encrypted to ``j``'s encryption key (ECIES over ristretto255: an ephemeral
   ``E = e*G``, HKDF-SHA256 of ``e*PK_j`` bound to epoch, dealer, recipient, ``E`` and
   ``PK_j``, then ChaCha20-Poly1305).  The dealer then forgets the polynomial.
2. (:func:`open_share`) each recipient decrypts its share and checks it against the
   commitments: ``f_i(j)*G == sum_k j^k * C_ik``.
3. (:func:`make_complaint`) if that fails, the recipient logs a :class:`Complaint` that
   proves itself: the Diffie-Hellman point ``K = sk_j*E`` of that one share, with a DLEQ
   proof that ``log_G PK_j == log_E K``.  Anyone can then decrypt that share and judge
   (:func:`check_complaint`); the recipient's long-term key stays secret, and a false
   complaint is simply rejected (the dealer never has to answer).
4. (:func:`qualify`) after the complaint deadline, anyone computes from the log alone the
   qualified set QUAL (dealers whose dealing is well formed, unique, and against whom no
   complaint was upheld), the epoch public key ``Y = sum_{i in QUAL} C_i0`` and every
   custodian's public verification share ``Y_j = sum_k j^k * sum_{i in QUAL} C_ik``:
   an :class:`EpochPublic`, which is what the agent encrypts to and the combiner checks
   partial decryptions against.
5. (:func:`combine_share`) each custodian sums its shares from QUAL into its
   :class:`EpochShare` ``x_j``, and checks ``x_j*G == Y_j``.

The epoch secret ``x = sum f_i(0)`` is never computed by anyone.

A known limit, stated plainly: Gennaro, Jarecki, Krawczyk and Rabin ("Secure distributed
key generation for discrete-log based cryptosystems", J. Cryptology 2007) showed that in
joint Feldman a rushing adversary who sees the honest dealings before its own dealers are
judged can bias the distribution of ``Y`` (by choosing which of its dealers get
disqualified).  It learns nothing about ``x``, and the bias is a few bits at most with a
handful of custodians, but the key is not exactly uniform.  Their fix (a Pedersen-VSS round
with a second generator, then a Feldman extraction round with reconstruction of any dealer
that balks) fits the same entry shapes and is the next step if uniformity is required.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custodes.custody.dleq import DLEQProof, check_dleq, prove_dleq
from custodes.custody.errors import CustodyFormatError, DealingError, DKGFailedError
from custodes.custody.group import (
    Point,
    Scalar,
    b64decode,
    b64encode,
    point_sum,
)

__all__ = [
    "MAX_CUSTODIANS",
    "Complaint",
    "Dealing",
    "EncryptionKey",
    "EpochPublic",
    "EpochShare",
    "Roster",
    "check_complaint",
    "combine_share",
    "deal",
    "make_complaint",
    "open_share",
    "qualify",
    "verification_share",
]

MAX_CUSTODIANS = 64
_MAX_EPOCH = 64
_SHARE_DST = b"custodes/custody/dkg/share/v1"
_COMPLAINT_DST = b"custodes/custody/dkg/complaint/v1"
_NONCE = bytes(12)  # each share key is used once (a fresh E per share)


def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _check_epoch(epoch: object) -> str:
    if (
        not isinstance(epoch, str)
        or not 0 < len(epoch) <= _MAX_EPOCH
        or not epoch.isascii()
        or not epoch.isprintable()
    ):
        raise CustodyFormatError("an epoch is 1 to 64 printable ASCII characters")
    return epoch


def _int(obj: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = obj.get(name)
    if type(value) is not int or not lo <= value <= hi:
        raise CustodyFormatError(f"{name}: expected an integer from {lo} to {hi}")
    return value


def _fields(obj: object, kind: str, names: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != names | {"type"} or obj.get("type") != kind:
        raise CustodyFormatError(f"expected a {kind} object with fields {sorted(names)}")
    return obj


def _list(obj: object, length: int, what: str) -> list[Any]:
    if not isinstance(obj, list) or len(obj) != length:
        raise CustodyFormatError(f"{what}: expected a list of {length}")
    return obj


def _point(text: object, what: str, *, allow_identity: bool = False) -> Point:
    return Point.decode(b64decode(text, 32, what=what), allow_identity=allow_identity)


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """A custodian's long-term encryption key pair (ristretto255), for DKG shares."""

    secret: Scalar
    public: Point

    @classmethod
    def generate(cls) -> EncryptionKey:
        x = Scalar.random()
        return cls(x, Point.base_mul(x))

    def to_json(self) -> dict[str, Any]:
        return {"type": "custody.encryption-key", "secret": b64encode(self.secret.encode())}

    @classmethod
    def from_json(cls, obj: object) -> EncryptionKey:
        fields = _fields(obj, "custody.encryption-key", {"secret"})
        x = Scalar.decode(b64decode(fields["secret"], 32, what="secret"))
        if x.is_zero():
            raise CustodyFormatError("secret: zero is not a key")
        return cls(x, Point.base_mul(x))


@dataclass(frozen=True, slots=True)
class Roster:
    """An epoch's custodian set, as logged: custodian ``j`` holds ``keys[j-1]``."""

    epoch: str
    threshold: int
    keys: tuple[Point, ...]

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        n = len(self.keys)
        if not 1 <= n <= MAX_CUSTODIANS or not 1 <= self.threshold <= n:
            raise CustodyFormatError(f"need 1 <= threshold <= n <= {MAX_CUSTODIANS}")
        if len(set(self.keys)) != n or any(k.is_identity() for k in self.keys):
            raise CustodyFormatError("custodians' encryption keys must be distinct")

    @property
    def n(self) -> int:
        return len(self.keys)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.roster",
            "epoch": self.epoch,
            "threshold": self.threshold,
            "keys": [b64encode(k.encode()) for k in self.keys],
        }

    @classmethod
    def from_json(cls, obj: object) -> Roster:
        fields = _fields(obj, "custody.roster", {"epoch", "threshold", "keys"})
        keys = fields["keys"]
        if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_CUSTODIANS:
            raise CustodyFormatError(f"keys: expected 1 to {MAX_CUSTODIANS} keys")
        return cls(
            epoch=_check_epoch(fields["epoch"]),
            threshold=_int(fields, "threshold", 1, len(keys)),
            keys=tuple(_point(k, "key") for k in keys),
        )


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    ephemeral: Point
    ciphertext: bytes  # 32-byte scalar + 16-byte tag


@dataclass(frozen=True, slots=True)
class Dealing:
    """One dealer's public message: commitments and one encrypted share per custodian."""

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
                    b64decode(s["ciphertext"], 48, what="ciphertext"),
                )
            )
        return cls(roster.epoch, dealer, commitments, tuple(shares))


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
    """``sum_k j^k * commitments[k]``: what ``f(j)*G`` must equal (Feldman)."""
    acc = Point.identity()
    power = Scalar.from_int(1)
    js = Scalar.from_int(j)
    for c in commitments:
        acc = acc + c * power
        power = power * js
    return acc


def deal(roster: Roster, dealer: int) -> Dealing:
    """Dealer ``dealer``'s dealing for the epoch; the polynomial is dropped on return."""
    if not 1 <= dealer <= roster.n:
        raise CustodyFormatError("dealer: not a custodian of this roster")
    coefficients = [Scalar.random() for _ in range(roster.threshold)]
    return _deal_with(roster, dealer, coefficients, [Scalar.random() for _ in range(roster.n)])


def _deal_with(
    roster: Roster, dealer: int, coefficients: Sequence[Scalar], ephemerals: Sequence[Scalar]
) -> Dealing:
    # Internal, and for the independent test vectors.
    commitments = tuple(Point.base_mul(a) for a in coefficients)
    shares = []
    for j in range(1, roster.n + 1):
        e = ephemerals[j - 1]
        eph = Point.base_mul(e)
        cipher, info = _share_cipher(roster, dealer, j, eph, roster.keys[j - 1] * e)
        ct = cipher.encrypt(_NONCE, _eval(coefficients, j).encode(), info)
        shares.append(EncryptedShare(eph, ct))
    return Dealing(roster.epoch, dealer, commitments, tuple(shares))


def _decrypt_share(roster: Roster, dealing: Dealing, recipient: int, dh: Point) -> Scalar | None:
    enc = dealing.shares[recipient - 1]
    cipher, info = _share_cipher(roster, dealing.dealer, recipient, enc.ephemeral, dh)
    try:
        raw = cipher.decrypt(_NONCE, enc.ciphertext, info)
        share = Scalar.decode(raw)
    except (InvalidTag, CustodyFormatError):
        return None
    if Point.base_mul(share) != verification_share(dealing.commitments, recipient):
        return None
    return share


def _check_recipient(roster: Roster, recipient: int, key: EncryptionKey) -> None:
    if not 1 <= recipient <= roster.n or roster.keys[recipient - 1] != key.public:
        raise CustodyFormatError("this key is not that custodian's in the roster")


def open_share(roster: Roster, dealing: Dealing, recipient: int, key: EncryptionKey) -> Scalar:
    """Decrypt and check ``recipient``'s share of ``dealing``; a bad one raises DealingError.

    On :class:`DealingError` the recipient should log :func:`make_complaint`.
    """
    _check_recipient(roster, recipient, key)
    share = _decrypt_share(
        roster, dealing, recipient, dealing.shares[recipient - 1].ephemeral * key.secret
    )
    if share is None:
        raise DealingError(
            f"the share for custodian {recipient} does not match the commitments",
            dealer=dealing.dealer,
            evidence=dealing,
        )
    return share


@dataclass(frozen=True, slots=True)
class Complaint:
    """A recipient's self-proving accusation that one dealer's share to it is bad."""

    epoch: str
    dealer: int
    complainer: int
    shared_point: Point
    proof: DLEQProof

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.complaint",
            "epoch": self.epoch,
            "dealer": self.dealer,
            "complainer": self.complainer,
            "shared_point": b64encode(self.shared_point.encode()),
            "proof": b64encode(self.proof.encode()),
        }

    @classmethod
    def from_json(cls, obj: object, roster: Roster) -> Complaint:
        fields = _fields(
            obj, "custody.complaint", {"epoch", "dealer", "complainer", "shared_point", "proof"}
        )
        if fields["epoch"] != roster.epoch:
            raise CustodyFormatError("complaint is for another epoch")
        return cls(
            epoch=roster.epoch,
            dealer=_int(fields, "dealer", 1, roster.n),
            complainer=_int(fields, "complainer", 1, roster.n),
            shared_point=_point(fields["shared_point"], "shared_point"),
            proof=DLEQProof.decode(b64decode(fields["proof"], 64, what="proof")),
        )


def _complaint_context(epoch: str, dealer: int, complainer: int) -> bytes:
    return _lp(
        _COMPLAINT_DST, epoch.encode(), dealer.to_bytes(4, "big"), complainer.to_bytes(4, "big")
    )


def make_complaint(
    roster: Roster, dealing: Dealing, recipient: int, key: EncryptionKey
) -> Complaint:
    """Reveal the key of this one share, with a proof, so anyone can judge the dealer."""
    _check_recipient(roster, recipient, key)
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
    return Complaint(roster.epoch, dealing.dealer, recipient, dh, proof)


def check_complaint(roster: Roster, dealing: Dealing, complaint: Complaint) -> bool:
    """True if the complaint is upheld: its proof holds and the revealed share is bad."""
    if complaint.epoch != roster.epoch or complaint.dealer != dealing.dealer:
        return False
    j = complaint.complainer
    eph = dealing.shares[j - 1].ephemeral
    if not check_dleq(
        complaint.proof,
        Point.generator(),
        roster.keys[j - 1],
        eph,
        complaint.shared_point,
        context=_complaint_context(roster.epoch, dealing.dealer, j),
    ):
        return False
    return _decrypt_share(roster, dealing, j, complaint.shared_point) is None


@dataclass(frozen=True, slots=True)
class EpochPublic:
    """The epoch's public result of the DKG, recomputable by anyone from the log."""

    epoch: str
    threshold: int
    qualified: tuple[int, ...]
    public_key: Point
    verification_shares: tuple[Point, ...]  # Y_j = x_j*G, custodian j at index j-1

    @property
    def n(self) -> int:
        return len(self.verification_shares)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.epoch-key",
            "epoch": self.epoch,
            "threshold": self.threshold,
            "qualified": list(self.qualified),
            "public_key": b64encode(self.public_key.encode()),
            "verification_shares": [b64encode(y.encode()) for y in self.verification_shares],
        }

    @classmethod
    def from_json(cls, obj: object) -> EpochPublic:
        fields = _fields(
            obj,
            "custody.epoch-key",
            {"epoch", "threshold", "qualified", "public_key", "verification_shares"},
        )
        ys = fields["verification_shares"]
        if not isinstance(ys, list) or not 1 <= len(ys) <= MAX_CUSTODIANS:
            raise CustodyFormatError("verification_shares: expected a list of custodians")
        qualified = fields["qualified"]
        if (
            not isinstance(qualified, list)
            or not all(type(q) is int and 1 <= q <= len(ys) for q in qualified)
            or qualified != sorted(set(qualified))
        ):
            raise CustodyFormatError("qualified: expected sorted distinct custodian indices")
        return cls(
            epoch=_check_epoch(fields["epoch"]),
            threshold=_int(fields, "threshold", 1, len(ys)),
            qualified=tuple(qualified),
            public_key=_point(fields["public_key"], "public_key"),
            verification_shares=tuple(_point(y, "verification_share") for y in ys),
        )


def qualify(
    roster: Roster, dealings: Iterable[Dealing], complaints: Iterable[Complaint]
) -> EpochPublic:
    """The qualified set and the epoch's public key, from the logged dealings and complaints.

    Dealers disqualify themselves by dealing twice (equivocation) or by an upheld
    complaint; a dealer that never dealt is simply absent.  Fewer qualified dealers than
    the threshold raises :class:`DKGFailedError` (run the epoch's DKG again without them).
    """
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
            cheaters.add(d.dealer)
        by_dealer[d.dealer] = d
    for c in complaints:
        if c.dealer in by_dealer and check_complaint(roster, by_dealer[c.dealer], c):
            cheaters.add(c.dealer)
    qualified = tuple(sorted(set(by_dealer) - cheaters))
    if len(qualified) < roster.threshold:
        raise DKGFailedError(
            f"epoch {roster.epoch}: {len(qualified)} qualified dealers, "
            f"{roster.threshold} are needed"
        )
    aggregate = [
        point_sum(by_dealer[i].commitments[k] for i in qualified) for k in range(roster.threshold)
    ]
    public_key = aggregate[0]
    if public_key.is_identity():
        raise DKGFailedError(f"epoch {roster.epoch}: the joint public key is the identity")
    shares = tuple(verification_share(aggregate, j) for j in range(1, roster.n + 1))
    return EpochPublic(roster.epoch, roster.threshold, qualified, public_key, shares)


@dataclass(frozen=True, slots=True)
class EpochShare:
    """One custodian's secret share of one epoch, with the epoch's public result."""

    index: int
    secret: Scalar
    public: EpochPublic

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.epoch-share",
            "index": self.index,
            "secret": b64encode(self.secret.encode()),
            "public": self.public.to_json(),
        }

    @classmethod
    def from_json(cls, obj: object) -> EpochShare:
        fields = _fields(obj, "custody.epoch-share", {"index", "secret", "public"})
        public = EpochPublic.from_json(fields["public"])
        index = _int(fields, "index", 1, public.n)
        secret = Scalar.decode(b64decode(fields["secret"], 32, what="secret"))
        if Point.base_mul(secret) != public.verification_shares[index - 1]:
            raise CustodyFormatError("secret does not match the custodian's verification share")
        return cls(index, secret, public)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def combine_share(
    roster: Roster,
    public: EpochPublic,
    dealings: Iterable[Dealing],
    recipient: int,
    key: EncryptionKey,
) -> EpochShare:
    """Custodian ``recipient``'s share: the sum of its shares from the qualified dealers."""
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
