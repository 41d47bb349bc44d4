"""ML-DSA-44 cosignatures (tlog-cosignature, key type 0x06), checked against the spec's text.

The signed message and key id are rebuilt here from the spec's definitions,
and the signature checked with ``cryptography`` directly, not through custodes.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa

from custodes.errors import CosignatureError, KeyFormatError, SignatureError
from custodes.tlog import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    MLDSA44CosignatureSigner,
    MLDSA44CosignatureVerifier,
    Signer,
    format_checkpoint,
    generate_cosigner_key,
    generate_key,
    open_checkpoint,
    sign_checkpoint,
    subtree_message,
)

LOG = Signer.from_key(generate_key("example.org/log")[0])
SKEY, VKEY = generate_cosigner_key("witness.example/pq", "ml-dsa-44")
ROOT = hashlib.sha256(b"root").digest()
CP = Checkpoint(origin="example.org/log", size=1234, root_hash=ROOT, extensions=("ext line",))


def _spec_message(name: str, ts: int, origin: str, start: int, end: int, root: bytes) -> bytes:
    n, o = name.encode(), origin.encode()
    return (
        b"subtree/v1\n\x00"
        + struct.pack(">B", len(n))
        + n
        + struct.pack(">Q", ts)
        + struct.pack(">B", len(o))
        + o
        + struct.pack(">QQ", start, end)
        + root
    )


def test_keys_follow_the_spec_encoding() -> None:
    signer = CosignatureSigner.from_key(SKEY)  # the generic class reads either type
    assert isinstance(signer, MLDSA44CosignatureSigner)
    verifier = CosignatureVerifier.from_key(VKEY)
    assert isinstance(verifier, MLDSA44CosignatureVerifier)
    name, hex_id, b64 = VKEY.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x06 and len(raw) == 1 + 1312
    expected = hashlib.sha256(name.encode() + b"\n" + b"\x06" + raw[1:]).digest()[:4]
    assert int(hex_id, 16) == int.from_bytes(expected, "big") == verifier.key_id
    assert signer.verifier().key == VKEY == verifier.key


def test_a_cosignature_is_the_spec_message_signed_with_ml_dsa_44() -> None:
    signer = CosignatureSigner.from_key(SKEY)
    sig = signer.cosign(format_checkpoint(CP), 1_700_000_000)
    assert len(sig.signature) == 8 + 2420
    assert int.from_bytes(sig.signature[:8], "big") == 1_700_000_000
    message = _spec_message("witness.example/pq", 1_700_000_000, CP.origin, 0, CP.size, ROOT)
    assert subtree_message("witness.example/pq", 1_700_000_000, CP.origin, 0, CP.size, ROOT) == (
        message
    )
    public = mldsa.MLDSA44PublicKey.from_public_bytes(base64.b64decode(VKEY.split("+", 2)[2])[1:])
    public.verify(sig.signature[8:], message)  # raises if it does not verify


def test_a_checkpoint_with_both_kinds_of_cosignature_opens() -> None:
    ed_skey, ed_vkey = generate_cosigner_key("witness.example/ed")
    note = sign_checkpoint(CP, LOG)
    body = format_checkpoint(CP)
    lines = b""
    for skey in (SKEY, ed_skey):
        s = CosignatureSigner.from_key(skey).cosign(body, 1_700_000_001)
        blob = s.key_id.to_bytes(4, "big") + s.signature
        lines += f"\u2014 {s.name} {base64.b64encode(blob).decode()}\n".encode()
    cosigners = [CosignatureVerifier.from_key(VKEY), CosignatureVerifier.from_key(ed_vkey)]
    signed = open_checkpoint(note + lines, LOG.verifier(), cosigners=cosigners)
    assert signed.cosignatures == {
        "witness.example/pq": 1_700_000_001,
        "witness.example/ed": 1_700_000_001,
    }
    # Extension lines are not covered by ML-DSA-44 (the spec says so); the root is.
    other = Checkpoint(origin=CP.origin, size=CP.size, root_hash=bytes(32))
    bad = sign_checkpoint(other, LOG) + lines
    with pytest.raises(SignatureError):
        open_checkpoint(bad, LOG.verifier(), cosigners=cosigners)


def test_bad_inputs_are_refused() -> None:
    verifier = CosignatureVerifier.from_key(VKEY)
    assert not verifier.verify(format_checkpoint(CP).encode(), b"\0" * 10)
    assert not verifier.verify(b"not a checkpoint\n", b"\0" * (8 + 2420))
    with pytest.raises(CosignatureError):
        subtree_message("w", 5, "o", 1, 2, ROOT)  # a subtree with a start has no time
    with pytest.raises(CosignatureError):
        subtree_message("", 5, "o", 0, 2, ROOT)
    with pytest.raises(KeyFormatError):
        generate_cosigner_key("w", "rsa")
    # An Ed25519-length key under type 0x06 is refused.
    name, hex_id, _ = VKEY.split("+", 2)
    short = base64.b64encode(b"\x06" + bytes(32)).decode()
    with pytest.raises(KeyFormatError):
        CosignatureVerifier.from_key(f"{name}+{hex_id}+{short}")
