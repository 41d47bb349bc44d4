"""Custody key material and epoch results, as strict JSON values.

* :class:`EncryptionKey`: a custodian's long-term ristretto255 key pair, for DKG shares;
* :class:`Roster`: an epoch's custodian set and threshold, as logged;
* :class:`EpochPublic`: the DKG's public result (epoch key, verification shares);
* :class:`EpochShare`: one custodian's secret share of one epoch.

Every ``from_json`` refuses unknown or missing fields, wrong types, non-canonical base64,
points that are not canonical group elements, and out-of-range integers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from custodes.custody.errors import CustodyFormatError
from custodes.custody.group import Point, Scalar, b64decode, b64encode

__all__ = ["MAX_CUSTODIANS", "EncryptionKey", "EpochPublic", "EpochShare", "Roster"]

MAX_CUSTODIANS = 64
_MAX_EPOCH = 64


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
