"""A small epoch, made by a real DKG among in-process custodians."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from custodes.custody import (
    Dealing,
    EncryptionKey,
    EpochPublic,
    EpochShare,
    Extraction,
    Roster,
    combine_share,
    deal,
    epoch_key,
    qualify,
)


@dataclass
class Epoch:
    roster: Roster
    keys: list[EncryptionKey]
    dealings: list[Dealing]
    extractions: list[Extraction]
    public: EpochPublic
    shares: list[EpochShare]


def make_epoch(n: int, t: int, epoch: str = "2026-12-03") -> Epoch:
    keys = [EncryptionKey.generate() for _ in range(n)]
    roster = Roster(epoch=epoch, threshold=t, keys=tuple(k.public for k in keys))
    dealt = [deal(roster, i) for i in range(1, n + 1)]
    dealings = [d for d, _ in dealt]
    extractions = [x for _, x in dealt]
    qualified = qualify(roster, dealings, [])
    public = epoch_key(roster, dealings, qualified, extractions, [])
    shares = [combine_share(roster, public, dealings, j, keys[j - 1]) for j in range(1, n + 1)]
    return Epoch(roster, keys, dealings, extractions, public, shares)


@pytest.fixture(scope="module")
def epoch35() -> Epoch:
    return make_epoch(5, 3)
