"""The epoch DKG: honest runs, a cheating dealer caught by a complaint, strict entries."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from custodes.custody import (
    Complaint,
    CustodyFormatError,
    Dealing,
    DealingError,
    DKGFailedError,
    EncryptionKey,
    EpochPublic,
    EpochShare,
    Extraction,
    Point,
    Roster,
    Scalar,
    check_complaint,
    check_extraction,
    combine,
    combine_share,
    deal,
    dkg,
    encapsulate,
    epoch_key,
    make_complaint,
    make_reveal,
    needs_reconstruction,
    open_share,
    partial_decrypt,
    qualify,
)
from custodes.custody.group import point_sum
from custodes.custody.kem import SegmentId, lagrange_at_zero
from tests.custody.conftest import Epoch, make_epoch


def _json(obj: dict[str, object]) -> object:
    return json.loads(json.dumps(obj))


def _cheating_dealing(roster: Roster, dealer: int, victim: int) -> Dealing:
    """An honest dealing, except that ``victim``'s share is wrong."""
    honest, _ = deal(roster, dealer)
    e = Scalar.random()
    eph = Point.base_mul(e)
    cipher, info = dkg._share_cipher(roster, dealer, victim, eph, roster.keys[victim - 1] * e)
    wrong = Scalar.random()  # not f(victim)
    ct = cipher.encrypt(bytes(12), wrong.encode() + Scalar.random().encode(), info)
    shares = list(honest.shares)
    shares[victim - 1] = dkg.EncryptedShare(eph, ct)
    return replace(honest, shares=tuple(shares))


def test_honest_run(epoch35: Epoch) -> None:
    e = epoch35
    assert e.public.qualified == (1, 2, 3, 4, 5)
    assert e.public.public_key == point_sum(x.commitments[0] for x in e.extractions)
    for share in e.shares:
        assert Point.base_mul(share.secret) == e.public.verification_shares[share.index - 1]
    # Any T verification shares interpolate to the public key (in the exponent).
    for subset in ([1, 2, 3], [2, 4, 5], [1, 3, 5]):
        lams = lagrange_at_zero(subset)
        y = point_sum(
            e.public.verification_shares[j - 1] * lam for j, lam in zip(subset, lams, strict=True)
        )
        assert y == e.public.public_key
    # Anyone recomputes the same epoch key from the logged dealings.
    logged = [Dealing.from_json(_json(d.to_json()), e.roster) for d in e.dealings]
    extractions = [Extraction.from_json(_json(x.to_json()), e.roster) for x in e.extractions]
    qualified = qualify(e.roster, logged, [])
    assert epoch_key(e.roster, logged, qualified, extractions, []) == e.public


def test_cheating_dealer_is_named_complained_about_and_excluded() -> None:
    keys = [EncryptionKey.generate() for _ in range(5)]
    roster = Roster(epoch="2026-12-04", threshold=3, keys=tuple(k.public for k in keys))
    dealt = {i: deal(roster, i) for i in (1, 2, 3, 5)}
    dealings = [d for d, _ in dealt.values()] + [_cheating_dealing(roster, 4, victim=2)]

    with pytest.raises(DealingError, match="dealer 4") as info:
        open_share(roster, dealings[-1], 2, keys[1])
    assert info.value.dealer == 4 and info.value.evidence is dealings[-1]
    # Everyone else's share from dealer 4 is fine: only the victim can tell.
    open_share(roster, dealings[-1], 1, keys[0])

    complaint = make_complaint(roster, dealings[-1], 2, keys[1])
    logged = Complaint.from_json(_json(complaint.to_json()), roster)
    assert logged == complaint
    assert check_complaint(roster, dealings[-1], logged)  # anyone can judge

    qualified = qualify(roster, dealings, [logged])
    assert qualified == (1, 2, 3, 5)
    public = epoch_key(roster, dealings, qualified, [x for _, x in dealt.values()], [])
    shares = [combine_share(roster, public, dealings, j, keys[j - 1]) for j in range(1, 6)]
    seg = SegmentId("2026-12-04", "cam-1", "2026-12-04T00:00:00Z")
    enc = encapsulate(public, seg)
    partials = [partial_decrypt(s, enc.ephemeral, seg) for s in shares[2:]]
    assert combine(public, partials, enc.ephemeral, seg).key == enc.key


def test_unreadable_share_is_upheld_too() -> None:
    keys = [EncryptionKey.generate() for _ in range(3)]
    roster = Roster(epoch="e", threshold=2, keys=tuple(k.public for k in keys))
    bad, _ = deal(roster, 1)
    shares = list(bad.shares)
    shares[2] = dkg.EncryptedShare(shares[2].ephemeral, os.urandom(80))
    bad = replace(bad, shares=tuple(shares))
    with pytest.raises(DealingError):
        open_share(roster, bad, 3, keys[2])
    assert check_complaint(roster, bad, make_complaint(roster, bad, 3, keys[2]))


def test_false_and_forged_complaints_are_rejected(epoch35: Epoch) -> None:
    e = epoch35
    false = make_complaint(e.roster, e.dealings[0], 3, e.keys[2])
    assert not check_complaint(e.roster, e.dealings[0], false)
    forged = replace(false, shared_point=Point.base_mul(Scalar.random()))
    assert not check_complaint(e.roster, e.dealings[0], forged)
    # A complaint in another custodian's name does not verify (its proof is for 3).
    assert not check_complaint(e.roster, e.dealings[0], replace(false, complainer=4))
    assert qualify(e.roster, e.dealings, [false, forged]) == (1, 2, 3, 4, 5)


def test_equivocating_dealer_is_excluded(epoch35: Epoch) -> None:
    e = epoch35
    second, _ = deal(e.roster, 2)
    assert qualify(e.roster, [*e.dealings, second], []) == (1, 3, 4, 5)


def test_too_few_qualified_dealers_fail() -> None:
    e = make_epoch(3, 2)
    with pytest.raises(DKGFailedError, match="1 qualified dealers, 2 are needed"):
        qualify(e.roster, e.dealings[:1], [])


def test_wrong_key_cannot_open_or_complain(epoch35: Epoch) -> None:
    e = epoch35
    with pytest.raises(CustodyFormatError):
        open_share(e.roster, e.dealings[0], 1, e.keys[1])
    with pytest.raises(CustodyFormatError):
        make_complaint(e.roster, e.dealings[0], 1, EncryptionKey.generate())


def test_round_trips(epoch35: Epoch) -> None:
    e = epoch35
    assert Roster.from_json(_json(e.roster.to_json())) == e.roster
    assert EpochPublic.from_json(_json(e.public.to_json())) == e.public
    for share in e.shares:
        assert EpochShare.from_json(json.loads(share.dumps())) == share
    key = EncryptionKey.from_json(_json(e.keys[0].to_json()))
    assert key == e.keys[0]


def test_a_share_file_that_does_not_match_is_refused(epoch35: Epoch) -> None:
    obj = epoch35.shares[0].to_json()
    obj["secret"] = epoch35.shares[1].to_json()["secret"]
    with pytest.raises(CustodyFormatError, match="verification share"):
        EpochShare.from_json(obj)


@pytest.mark.parametrize(
    "defect",
    [
        "extra-field",
        "wrong-epoch",
        "dealer-zero",
        "dealer-string",
        "too-few-commitments",
        "identity-constant-commitment",
        "missing-share",
        "short-ciphertext",
        "bad-base64",
        "non-canonical-point",
    ],
)
def test_malformed_dealings_are_refused(epoch35: Epoch, defect: str) -> None:
    obj = epoch35.dealings[0].to_json()
    shares = obj["shares"]
    assert isinstance(shares, list)
    if defect == "extra-field":
        obj["note"] = "hi"
    elif defect == "wrong-epoch":
        obj["epoch"] = "2026-12-05"
    elif defect == "dealer-zero":
        obj["dealer"] = 0
    elif defect == "dealer-string":
        obj["dealer"] = "1"
    elif defect == "too-few-commitments":
        obj["commitments"] = obj["commitments"][:-1]
    elif defect == "identity-constant-commitment":
        obj["commitments"][0] = "A" * 43 + "="
    elif defect == "missing-share":
        obj["shares"] = shares[:-1]
    elif defect == "short-ciphertext":
        shares[0]["ciphertext"] = shares[0]["ciphertext"][:-4]
    elif defect == "bad-base64":
        shares[0]["ephemeral"] = "!" + shares[0]["ephemeral"][1:]
    elif defect == "non-canonical-point":
        shares[0]["ephemeral"] = "7f////////////////////////////////////////8="
    with pytest.raises(CustodyFormatError):
        Dealing.from_json(_json(obj), epoch35.roster)


def test_roster_rules() -> None:
    k = EncryptionKey.generate().public
    with pytest.raises(CustodyFormatError):
        Roster(epoch="e", threshold=2, keys=(k,))
    with pytest.raises(CustodyFormatError):
        Roster(epoch="e", threshold=1, keys=(k, k))
    with pytest.raises(CustodyFormatError):
        Roster(epoch="", threshold=1, keys=(k,))
    with pytest.raises(CustodyFormatError):
        Roster(epoch="a\nb", threshold=1, keys=(k,))


def _open_segment(public: EpochPublic, shares: list[EpochShare]) -> None:
    seg = SegmentId(public.epoch, "cam-1", "2026-12-04T00:00:00Z")
    enc = encapsulate(public, seg)
    partials = [partial_decrypt(s, enc.ephemeral, seg) for s in shares[-public.threshold :]]
    assert combine(public, partials, enc.ephemeral, seg).key == enc.key


def test_a_dealer_whose_extraction_lies_is_reconstructed_not_dropped() -> None:
    keys = [EncryptionKey.generate() for _ in range(4)]
    roster = Roster(epoch="e", threshold=2, keys=tuple(k.public for k in keys))
    dealt = [deal(roster, i) for i in range(1, 5)]
    dealings = [d for d, _ in dealt]
    qualified = qualify(roster, dealings, [])
    honest = [x for _, x in dealt]
    lie = replace(
        honest[2], commitments=(honest[2].commitments[0], Point.base_mul(Scalar.random()))
    )
    extractions = [honest[0], honest[1], lie, honest[3]]
    with pytest.raises(DealingError, match="dealer 3"):
        check_extraction(roster, dealings[2], lie, 1, keys[0])
    check_extraction(roster, dealings[2], honest[2], 1, keys[0])
    complaint = make_complaint(roster, dealings[2], 1, keys[0])
    assert not check_complaint(roster, dealings[2], complaint)  # fine under Pedersen
    assert check_complaint(roster, dealings[2], complaint, lie)  # but not under Feldman
    assert needs_reconstruction(roster, dealings, qualified, extractions, [complaint]) == (3,)
    with pytest.raises(DKGFailedError, match="dealer 3 must be reconstructed; 0 valid reveals"):
        epoch_key(roster, dealings, qualified, extractions, [complaint])
    # Two custodians reveal their shares of dealer 3; one forged reveal is ignored.
    reveals = [make_reveal(roster, dealings[2], j, keys[j - 1]) for j in (2, 4)]
    forged = replace(reveals[0], complainer=3)
    logged = [Complaint.from_json(_json(r.to_json()), roster) for r in reveals]
    assert logged == reveals and logged[0].kind == "reveal"
    public = epoch_key(roster, dealings, qualified, extractions, [complaint], [forged, *logged])
    # The same key as if dealer 3 had told the truth: its contribution was not dropped.
    assert public == epoch_key(roster, dealings, qualified, honest, [])
    shares = [combine_share(roster, public, dealings, j, keys[j - 1]) for j in range(1, 5)]
    _open_segment(public, shares)


def test_a_dealer_that_withholds_its_extraction_is_reconstructed() -> None:
    keys = [EncryptionKey.generate() for _ in range(3)]
    roster = Roster(epoch="e", threshold=2, keys=tuple(k.public for k in keys))
    dealt = [deal(roster, i) for i in range(1, 4)]
    dealings = [d for d, _ in dealt]
    qualified = qualify(roster, dealings, [])
    extractions = [dealt[0][1], dealt[1][1]]
    assert needs_reconstruction(roster, dealings, qualified, extractions, []) == (3,)
    reveals = [make_reveal(roster, dealings[2], j, keys[j - 1]) for j in (1, 2)]
    public = epoch_key(roster, dealings, qualified, extractions, [], reveals)
    assert public == epoch_key(roster, dealings, qualified, [x for _, x in dealt], [])
    _open_segment(
        public, [combine_share(roster, public, dealings, j, keys[j - 1]) for j in (1, 2, 3)]
    )
