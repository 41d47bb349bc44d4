"""The threshold KEM: any T of n open a segment, T-1 do not, a wrong answer is named."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest

from custodes.custody import (
    CustodyFormatError,
    NotEnoughPartialsError,
    Partial,
    Point,
    Scalar,
    SegmentId,
    WrongPartialError,
    combine,
    encapsulate,
    partial_decrypt,
    verify_partial,
)
from custodes.custody.dleq import DLEQProof, check_dleq, prove_dleq
from tests.custody.conftest import Epoch

SEG = SegmentId("2026-12-03", "cam-17", "2026-12-03T10:00:00Z")


def test_any_t_of_n_open_and_t_minus_1_do_not(epoch35: Epoch) -> None:
    e = epoch35
    enc = encapsulate(e.public, SEG)
    partials = [partial_decrypt(s, enc.ephemeral, SEG) for s in e.shares]
    for subset in itertools.combinations(partials, 3):
        opened = combine(e.public, subset, enc.ephemeral, SEG)
        assert opened.key == enc.key and not opened.wrong
    for pair in itertools.combinations(partials, 2):
        with pytest.raises(NotEnoughPartialsError, match="2 valid answers.*3 are needed") as info:
            combine(e.public, pair, enc.ephemeral, SEG)
        assert info.value.valid == 2 and info.value.needed == 3
    # The same custodian twice counts once.
    with pytest.raises(NotEnoughPartialsError):
        combine(e.public, [partials[0], partials[0], partials[1]], enc.ephemeral, SEG)


def test_a_wrong_partial_is_named_and_the_others_still_open(epoch35: Epoch) -> None:
    e = epoch35
    enc = encapsulate(e.public, SEG)
    partials = [partial_decrypt(s, enc.ephemeral, SEG) for s in e.shares]
    liar = replace(partials[1], point=partials[1].point + Point.generator())
    with pytest.raises(WrongPartialError, match="custodian 2") as info:
        verify_partial(e.public, liar, enc.ephemeral, SEG)
    assert info.value.custodian == 2 and info.value.partial is liar

    opened = combine(e.public, [partials[0], liar, partials[2], partials[3]], enc.ephemeral, SEG)
    assert opened.key == enc.key
    assert [w.custodian for w in opened.wrong] == [2]
    with pytest.raises(NotEnoughPartialsError, match="custodians 2 answered wrongly") as many:
        combine(e.public, [partials[0], liar, partials[2]], enc.ephemeral, SEG)
    assert [w.custodian for w in many.value.wrong] == [2]


def test_a_partial_claimed_for_another_custodian_fails(epoch35: Epoch) -> None:
    e = epoch35
    enc = encapsulate(e.public, SEG)
    p = partial_decrypt(e.shares[0], enc.ephemeral, SEG)
    with pytest.raises(WrongPartialError, match="custodian 3"):
        verify_partial(e.public, replace(p, custodian=3), enc.ephemeral, SEG)
    with pytest.raises(WrongPartialError, match="custodian 9"):
        verify_partial(e.public, replace(p, custodian=9), enc.ephemeral, SEG)


def test_an_answer_for_one_segment_is_no_answer_for_another(epoch35: Epoch) -> None:
    e = epoch35
    enc = encapsulate(e.public, SEG)
    other = SegmentId(SEG.epoch, SEG.camera, "2026-12-03T10:01:00Z")
    p = partial_decrypt(e.shares[0], enc.ephemeral, SEG)
    with pytest.raises(WrongPartialError):
        verify_partial(e.public, p, enc.ephemeral, other)
    # And the key itself is bound to camera and start: the same R under another name differs.
    partials = [partial_decrypt(s, enc.ephemeral, other) for s in e.shares[:3]]
    assert combine(e.public, partials, enc.ephemeral, other).key != enc.key


def test_each_segment_gets_a_fresh_ephemeral_key(epoch35: Epoch) -> None:
    a, b = encapsulate(epoch35.public, SEG), encapsulate(epoch35.public, SEG)
    assert a.ephemeral != b.ephemeral and a.key != b.key


def test_epochs_must_match(epoch35: Epoch) -> None:
    other = SegmentId("2026-12-04", "cam-17", "2026-12-04T10:00:00Z")
    with pytest.raises(CustodyFormatError):
        encapsulate(epoch35.public, other)
    enc = encapsulate(epoch35.public, SEG)
    with pytest.raises(CustodyFormatError):
        partial_decrypt(epoch35.shares[0], enc.ephemeral, other)
    with pytest.raises(CustodyFormatError):
        partial_decrypt(epoch35.shares[0], Point.identity(), SEG)


def test_partial_round_trip_and_strictness(epoch35: Epoch) -> None:
    enc = encapsulate(epoch35.public, SEG)
    p = partial_decrypt(epoch35.shares[4], enc.ephemeral, SEG)
    assert Partial.from_json(json.loads(json.dumps(p.to_json()))) == p
    for bad in (
        {**p.to_json(), "extra": 1},
        {**p.to_json(), "custodian": True},
        {**p.to_json(), "partial": "AAAA"},
        {**p.to_json(), "proof": p.to_json()["partial"]},
    ):
        with pytest.raises(CustodyFormatError):
            Partial.from_json(bad)


def test_dleq_rejects_every_tampering() -> None:
    x = Scalar.random()
    h = Point.base_mul(Scalar.random())
    g, a, b = Point.generator(), Point.base_mul(x), h * x
    proof = prove_dleq(x, g, a, h, b, context=b"ctx")
    assert check_dleq(proof, g, a, h, b, context=b"ctx")
    assert not check_dleq(proof, g, a, h, b, context=b"ctx2")
    assert not check_dleq(proof, g, a, h, b + g, context=b"ctx")
    assert not check_dleq(proof, g, a + g, h, b, context=b"ctx")
    raw = proof.encode()
    for i in range(0, 64, 7):
        flipped = bytearray(raw)
        flipped[i] ^= 1
        try:
            bad = DLEQProof.decode(bytes(flipped))
        except CustodyFormatError:
            continue
        assert not check_dleq(bad, g, a, h, b, context=b"ctx")
    # A prover who does not know one exponent for both cannot make a proof that holds.
    y = Scalar.random()
    assert not check_dleq(prove_dleq(x, g, a, h, h * y, context=b"c"), g, a, h, h * y, context=b"c")


def test_an_answer_for_one_release_is_no_answer_for_another(epoch35: Epoch) -> None:
    e = epoch35
    enc = encapsulate(e.public, SEG)
    partials = [partial_decrypt(s, enc.ephemeral, SEG, release="log 1041") for s in e.shares[:3]]
    opened = combine(e.public, partials, enc.ephemeral, SEG, release="log 1041")
    assert opened.key == enc.key
    with pytest.raises(NotEnoughPartialsError, match="custodians 1, 2, 3 answered wrongly"):
        combine(e.public, partials, enc.ephemeral, SEG, release="log 2001")
    with pytest.raises(CustodyFormatError):
        partial_decrypt(e.shares[0], enc.ephemeral, SEG, release="bad\nname")
