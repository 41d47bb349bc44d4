"""A custodian's key material, as one JSON document (what ``custodian init`` writes).

::

    {"type": "custody.custodian-state", "version": 1, "name": "court-registry",
     "encryption_key": {...EncryptionKey.to_json()...},
     "shares": [{...EpochShare.to_json()...}, ...],
     "shredded": ["2026-11-01", ...]}

Pure values: reading, writing (atomically, with fsync, mode 0600) and signing the shred
statement belong to the custodian daemon.  :meth:`CustodianState.shred` drops the shares of
the named epochs and remembers that it did, so a later :meth:`add_share` for a shredded
epoch is refused; Python cannot promise that no copy of a secret stays in freed memory, so the
daemon should shred in a short-lived process and overwrite the old file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from custodes.custody.errors import CustodyFormatError
from custodes.custody.keys import EncryptionKey, EpochShare

__all__ = ["CustodianState"]

_MAX_NAME = 128
_MAX_BYTES = 16 << 20


def _name(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_NAME
        or not value.isascii()
        or not value.isprintable()
    ):
        raise CustodyFormatError("a custodian's name is 1 to 128 printable ASCII characters")
    return value


@dataclass(frozen=True)
class CustodianState:
    name: str
    encryption_key: EncryptionKey
    shares: dict[str, EpochShare] = field(default_factory=dict)
    shredded: frozenset[str] = frozenset()

    @classmethod
    def create(cls, name: str) -> CustodianState:
        return cls(_name(name), EncryptionKey.generate())

    def add_share(self, share: EpochShare) -> CustodianState:
        epoch = share.public.epoch
        if epoch in self.shredded:
            raise CustodyFormatError(f"epoch {epoch} was shredded; its share cannot come back")
        if epoch in self.shares and self.shares[epoch] != share:
            raise CustodyFormatError(f"a different share for epoch {epoch} is already held")
        return CustodianState(
            self.name, self.encryption_key, {**self.shares, epoch: share}, self.shredded
        )

    def shred(self, epochs: Iterable[str]) -> CustodianState:
        gone = frozenset(epochs)
        kept = {e: s for e, s in self.shares.items() if e not in gone}
        return CustodianState(self.name, self.encryption_key, kept, self.shredded | gone)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "custody.custodian-state",
            "version": 1,
            "name": self.name,
            "encryption_key": self.encryption_key.to_json(),
            "shares": [self.shares[e].to_json() for e in sorted(self.shares)],
            "shredded": sorted(self.shredded),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, obj: object) -> CustodianState:
        names = {"type", "version", "name", "encryption_key", "shares", "shredded"}
        if not isinstance(obj, dict) or set(obj) != names:
            raise CustodyFormatError(f"a custodian state has exactly the fields {sorted(names)}")
        if obj["type"] != "custody.custodian-state" or obj["version"] != 1:
            raise CustodyFormatError("not a version 1 custodian state")
        shares_json, shredded = obj["shares"], obj["shredded"]
        if not isinstance(shares_json, list) or not isinstance(shredded, list):
            raise CustodyFormatError("shares and shredded are lists")
        if not all(isinstance(e, str) for e in shredded):
            raise CustodyFormatError("shredded: expected epoch names")
        state = cls(_name(obj["name"]), EncryptionKey.from_json(obj["encryption_key"]))
        state = CustodianState(state.name, state.encryption_key, {}, frozenset(shredded))
        for s in shares_json:
            share = EpochShare.from_json(s)
            if share.public.epoch in state.shares:
                raise CustodyFormatError(f"two shares for epoch {share.public.epoch}")
            state = state.add_share(share)
        return state

    @classmethod
    def loads(cls, text: str | bytes) -> CustodianState:
        if len(text) > _MAX_BYTES:
            raise CustodyFormatError("custodian state is too large")
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CustodyFormatError("custodian state is not JSON") from exc
        return cls.from_json(obj)

    def __repr__(self) -> str:
        return f"CustodianState(name={self.name!r}, epochs={sorted(self.shares)})"
