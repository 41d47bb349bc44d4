"""The DKG through the log, in process: custodians that fall silent, withhold, or are forged.

A list stands for the log; each custodian folds it with its own CustodyLog and posts what
:func:`dkg_actions` says, with the clock in the test's hands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custodes.custody.daemon.custodian import CustodianDir, dkg_actions
from custodes.custody.daemon.entries import (
    Custodian,
    CustodianSet,
    accept_set,
    epoch_bounds,
    format_ms,
    sign_entry,
    sign_set,
)
from custodes.custody.daemon.ledger import CustodyLog
from custodes.custody.errors import CustodyFormatError

EPOCH = "2026-12-05"
T0 = epoch_bounds("2026-12-04")[0] + 3_600_000  # the day before: prepare EPOCH ahead


def _roundtrip(obj: dict[str, Any]) -> Any:
    return json.loads(json.dumps(obj))


class World:
    def __init__(self, root: Path, n: int = 3, t: int = 2, deadline: int = 5) -> None:
        self.dirs = [CustodianDir.init(root / f"c{k}", f"c{k}.example") for k in range(1, n + 1)]
        members = tuple(
            Custodian(d.name, d.vkey, f"http://c{k}.example", d.state.encryption_key.public)
            for k, d in enumerate(self.dirs, 1)
        )
        body: dict[str, Any] = CustodianSet(1, t, deadline, members).body(format_ms(T0))
        body["signatures"] = [sign_set(body, d.signer) for d in self.dirs]
        self.log: list[Any] = [_roundtrip(body)]
        self.now = T0
        self.down: set[int] = set()
        self.drop: set[tuple[int, str]] = set()  # (custodian, type) it never posts

    def fold(self) -> CustodyLog:
        c = CustodyLog()
        for i, e in enumerate(self.log):
            c.feed(i, e)
        return c

    def round(self) -> None:
        for k, d in enumerate(self.dirs, 1):
            if k in self.down:
                continue
            seen = {json.dumps(e, sort_keys=True) for e in self.log}
            for _, entry in dkg_actions(d, self.fold(), self.now, ahead=1):
                if (k, entry["type"]) in self.drop:
                    continue
                body = {x: y for x, y in entry.items() if x not in ("time", "signature")}
                if any(
                    {x: y for x, y in json.loads(s).items() if x not in ("time", "signature")}
                    == body
                    for s in seen
                ):
                    continue  # posted already, with another time
                self.log.append(_roundtrip(entry))

    def run(self, rounds: int = 12, step_ms: int = 1000) -> CustodyLog:
        for _ in range(rounds):
            self.round()
            self.now += step_ms
        return self.fold()


def test_all_custodians_make_the_key_and_each_holds_a_matching_share(tmp_path: Path) -> None:
    w = World(tmp_path)
    c = w.run()
    public = c.epoch_public(EPOCH)
    assert public is not None and public.qualified == (1, 2, 3)
    for k, d in enumerate(w.dirs, 1):
        share = d.state.shares[EPOCH]
        assert share.index == k and share.public == public
    epochs = [e for e in w.log if e.get("type") == "custody.epoch"]
    assert {e["epoch"] for e in epochs} == {"2026-12-04", EPOCH}


def test_a_silent_custodian_is_left_out_after_the_deadline(tmp_path: Path) -> None:
    w = World(tmp_path, deadline=3)
    w.down = {3}
    c = w.run(rounds=20)
    v = c.view(EPOCH)
    assert v is not None and v.qualified == (1, 2) and c.epoch_public(EPOCH) is not None
    assert EPOCH in w.dirs[0].state.shares and EPOCH not in w.dirs[2].state.shares
    closes = [e for e in w.log if e.get("type") == "custody.close"]
    assert closes, "the phases were closed by the deadline"


def test_a_dealer_that_withholds_its_extraction_is_reconstructed(tmp_path: Path) -> None:
    w = World(tmp_path, deadline=3)
    w.drop = {(2, "custody.extraction")}
    c = w.run(rounds=25)
    v = c.view(EPOCH)
    assert v is not None and v.qualified == (1, 2, 3) and v.missing == (2,)
    assert any(e.get("type") == "custody.reveal" for e in w.log)
    public = c.epoch_public(EPOCH)
    assert public is not None
    for d in w.dirs:  # every share still matches the key, dealer 2's part included
        assert d.state.shares[EPOCH].public == public


def test_a_forged_or_foreign_entry_is_ignored(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.run(rounds=2)
    outsider = CustodianDir.init(tmp_path / "x", "x.example")
    forged = sign_entry(
        {"type": "custody.checked", "epoch": EPOCH, "phase": 1, "set": 1}, outsider.signer
    )
    w.log.append(_roundtrip(forged))
    tampered = dict(next(e for e in w.log if e.get("type") == "custody.dealing"))
    tampered["dealer"] = 3
    w.log.append(tampered)
    c = w.fold()
    assert len(c.rejected) == 2
    assert "not a custodian" in c.rejected[0][1] and "does not verify" in c.rejected[1][1]


def test_a_wrong_epoch_key_entry_does_not_count(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.drop = {(k, "custody.epoch") for k in (1, 2, 3)}
    c = w.run()
    assert c.epoch_public(EPOCH) is None and c.view(EPOCH).public is not None  # type: ignore[union-attr]
    real = c.view(EPOCH).public.to_json()  # type: ignore[union-attr]
    real["public_key"] = real["verification_shares"][0]
    lie = sign_entry(
        {"type": "custody.epoch", "epoch": EPOCH, "set": 1, "starts": "", "ends": "", "key": real},
        w.dirs[0].signer,
    )
    w.log.append(_roundtrip(lie))
    assert w.fold().epoch_public(EPOCH) is None


def test_the_first_set_needs_everyone_and_a_change_needs_t_current(tmp_path: Path) -> None:
    w = World(tmp_path)
    first = w.log[0]
    unsigned = {**first, "signatures": first["signatures"][:2]}
    with pytest.raises(CustodyFormatError, match="signed by all"):
        accept_set(unsigned, None)
    current = accept_set(first, None)
    nxt: dict[str, Any] = CustodianSet(2, 2, 5, current.custodians[:2]).body(format_ms(T0))
    nxt["signatures"] = [sign_set(nxt, w.dirs[0].signer)]
    with pytest.raises(CustodyFormatError, match="needs 2 signatures"):
        accept_set(nxt, current)
    nxt["signatures"].append(sign_set(nxt, w.dirs[1].signer))
    assert accept_set(nxt, current).n == 2
    again = {**nxt, "number": 3}
    with pytest.raises(CustodyFormatError):
        accept_set(again, current)


def test_shredding_makes_an_epoch_gone_at_n_minus_t_plus_1(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.run()
    for k in (0, 1):
        gone = w.dirs[k].shred_before("2026-12-06")
        assert EPOCH in gone
        w.log.append(_roundtrip(sign_entry({"type": "custody.shredded", "epochs": gone},
                                           w.dirs[k].signer)))  # fmt: skip
        c = w.fold()
        assert c.gone(EPOCH) == (k == 1)
    assert c.epoch_public(EPOCH) is None
    assert {e["epoch"]: e["state"] for e in c.status()["epochs"]}[EPOCH] == "gone"
    assert EPOCH not in w.dirs[0].state.shares and EPOCH in w.dirs[0].state.shredded


def test_a_dealer_with_a_bad_share_is_complained_about_and_left_out(tmp_path: Path) -> None:
    import dataclasses

    from custodes.custody.dkg import deal
    from custodes.custody.keys import Roster

    w = World(tmp_path, deadline=3)
    cset = accept_set(w.log[0], None)
    for epoch in ("2026-12-04", EPOCH):
        roster = Roster(epoch, cset.threshold, tuple(c.key for c in cset.custodians))
        dealing, extraction = deal(roster, 2)
        other, _ = deal(roster, 2)
        bad = dataclasses.replace(dealing, shares=(other.shares[0], *dealing.shares[1:]))
        w.dirs[1].save_pending(epoch, bad, extraction)  # custodian 2 deals this, as if its own
    c = w.run(rounds=25)
    v = c.view(EPOCH)
    assert v is not None and [x.complainer for x in v.complaints1] == [1]
    assert v.qualified == (1, 3) and c.epoch_public(EPOCH) is not None
    for d in w.dirs:
        assert d.state.shares[EPOCH].public.qualified == (1, 3)
