"""Sealed details: a commitment in the log, the details encrypted at rest, opened by the key."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from custodes.access.identity import Identities
from custodes.access.sealing import Sealer, check_commitment
from custodes.errors import FormatError, VerificationError
from custodes.records.canonical import canonicalize

DETAILS = {
    "case": "CASE-2026-0042",
    "justification": "robbery at the kiosk",
    "cameras": ["MSK-0001", "MSK-0002"],
    "from": "2026-01-02T03:00:00Z",
    "to": "2026-01-02T04:00:00Z",
}


def test_round_trip_and_commitment() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(DETAILS)
    assert len(sealed.salt) == 32
    assert sealed.commitment == hashlib.sha256(sealed.salt + canonicalize(DETAILS)).hexdigest()
    assert b"CASE-2026-0042" not in sealed.ciphertext
    assert b"kiosk" not in sealed.ciphertext
    salt, details = sealer.open(sealed.ciphertext)
    assert salt == sealed.salt and details == DETAILS
    assert check_commitment(sealed.commitment, salt.hex(), details)
    # Sealing twice hides that the details are equal.
    again = sealer.seal(DETAILS)
    assert again.commitment != sealed.commitment and again.ciphertext != sealed.ciphertext


def test_commitment_check_refuses_changed_details_or_salt() -> None:
    sealed = Sealer(os.urandom(32)).seal(DETAILS)
    salt = sealed.salt.hex()
    assert check_commitment(sealed.commitment.upper(), salt, DETAILS)
    assert not check_commitment(sealed.commitment, salt, {**DETAILS, "case": "CASE-2026-0043"})
    assert not check_commitment(sealed.commitment, "00" * 32, DETAILS)
    assert not check_commitment(sealed.commitment, "not hex", DETAILS)
    assert not check_commitment("00" * 32, salt, DETAILS)


def test_wrong_key_or_damaged_ciphertext_fails() -> None:
    sealed = Sealer(os.urandom(32)).seal(DETAILS)
    with pytest.raises(VerificationError):
        Sealer(os.urandom(32)).open(sealed.ciphertext)
    sealer = Sealer(os.urandom(32))
    ct = sealer.seal(DETAILS).ciphertext
    flipped = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(VerificationError):
        sealer.open(flipped)
    with pytest.raises(FormatError):
        sealer.open(b"\x02" + ct[1:])
    with pytest.raises(FormatError):
        sealer.open(ct[:20])
    with pytest.raises(FormatError):
        Sealer(b"short")


def test_identities_sealer_survives_a_restart(tmp_path: Path) -> None:
    with Identities(tmp_path) as ids:
        ct = ids.sealer().seal(DETAILS).ciphertext
    with Identities(tmp_path) as ids:
        assert ids.sealer().open(ct)[1] == DETAILS
