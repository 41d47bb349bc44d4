"""Witness cosignatures (cosignature/v1): message, encoding, keys and verification."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import CosignatureError, KeyFormatError
from custodes.tlog import (
    CosignatureSigner,
    CosignatureVerifier,
    Signer,
    cosigned_message,
    generate_cosigner_key,
    generate_key,
    key_id,
)

from .helpers import assert_sentence

BODY = "example.org/log\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SKEY, VKEY = generate_cosigner_key("witness.example/w1")
SIGNER = CosignatureSigner.from_key(SKEY)
VERIFIER = CosignatureVerifier.from_key(VKEY)


def test_signed_message_layout() -> None:
    assert cosigned_message(BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + BODY.encode()
    )
    assert cosigned_message(BODY, 0).startswith(b"cosignature/v1\ntime 0\n")


def test_signature_layout_and_verification() -> None:
    sig = SIGNER.cosign(BODY, 1679315147)
    assert sig.name == "witness.example/w1" and sig.key_id == SIGNER.key_id
    assert len(sig.signature) == 72
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    public = Ed25519PrivateKey.from_private_bytes(
        base64.b64decode(SKEY.split("+", 4)[4])[1:]
    ).public_key()
    public.verify(sig.signature[8:], cosigned_message(BODY, 1679315147))
    assert VERIFIER.verify(BODY.encode(), sig.signature)
    assert VERIFIER.timestamp_of(sig.signature) == 1679315147


def test_key_id_uses_type_4() -> None:
    public = base64.b64decode(VKEY.split("+", 2)[2])
    assert public[0] == 0x04
    assert VERIFIER.key_id == key_id("witness.example/w1", 0x04, public[1:])
    assert SIGNER.verifier_key == VKEY == VERIFIER.key
    assert SKEY.startswith("PRIVATE+KEY+witness.example/w1+")


@settings(max_examples=50, deadline=None)
@given(timestamp=st.integers(0, 2**63 - 1), extra=st.lists(st.sampled_from(["e1", "ext 2"])))
def test_cosign_verify_round_trip(timestamp: int, extra: list[str]) -> None:
    body = BODY + "".join(line + "\n" for line in extra)
    sig = SIGNER.cosign(body, timestamp)
    assert VERIFIER.verify(body.encode(), sig.signature)
    assert VERIFIER.timestamp_of(sig.signature) == timestamp


def test_wrong_time_or_body_does_not_verify() -> None:
    sig = SIGNER.cosign(BODY, 100)
    moved = (101).to_bytes(8, "big") + sig.signature[8:]
    assert not VERIFIER.verify(BODY.encode(), moved)
    assert not VERIFIER.verify(BODY.replace("20852163", "20852164").encode(), sig.signature)
    assert not VERIFIER.verify(BODY.encode(), sig.signature[:-1])
    assert not VERIFIER.verify(b"\xff\n", sig.signature)


def test_timestamp_beyond_2_pow_63() -> None:
    sig = (2**63).to_bytes(8, "big") + bytes(64)
    with pytest.raises(CosignatureError, match="not below 2") as err:
        VERIFIER.timestamp_of(sig)
    assert_sentence(err.value)
    assert not VERIFIER.verify(BODY.encode(), sig)
    with pytest.raises(CosignatureError):
        SIGNER.cosign(BODY, 2**63)
    with pytest.raises(CosignatureError):
        SIGNER.cosign(BODY, -1)


@pytest.mark.parametrize("length", [0, 8, 71, 73], ids=lambda n: f"cosignature_of_{n}_bytes")
def test_truncated_or_long_cosignature(length: int) -> None:
    with pytest.raises(CosignatureError, match="72 bytes") as err:
        VERIFIER.timestamp_of(bytes(length))
    assert_sentence(err.value)


def test_body_without_final_newline() -> None:
    with pytest.raises(CosignatureError, match="newline"):
        SIGNER.cosign(BODY[:-1], 1)


def test_note_keys_and_cosigner_keys_do_not_mix() -> None:
    note_skey, note_vkey = generate_key("witness.example/w1")
    with pytest.raises(KeyFormatError, match="type 0x01"):
        CosignatureVerifier.from_key(note_vkey)
    with pytest.raises(KeyFormatError, match="type 0x01"):
        CosignatureSigner.from_key(note_skey)
    with pytest.raises(KeyFormatError, match="type 0x04"):
        Signer.from_key(SKEY)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["w", "witness.example/w1", "oid/1.3.6.1.4.1", "é.example"]))
def test_key_round_trip(name: str) -> None:
    skey, vkey = generate_cosigner_key(name)
    signer = CosignatureSigner.from_key(skey)
    assert signer.verifier_key == vkey
    assert CosignatureVerifier.from_key(vkey).key_id == signer.key_id


def test_verifier_from_signer() -> None:
    assert SIGNER.verifier().key == VKEY
