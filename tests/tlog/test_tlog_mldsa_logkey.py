"""A log's own ML-DSA-44 checkpoint key (tlog-checkpoint: logs SHOULD sign with ML-DSA-44
cosignatures), checked against the spec texts rather than through custodes alone.

The key id and vkey layout come from signed-note and tlog-cosignature (type 0x06,
1312-byte public key); the signature is checked with ``cryptography`` directly over the
``subtree/v1`` message rebuilt here from the spec's struct.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import CosignatureError, KeyFormatError, SignatureError
from custodes.tlog import (
    Checkpoint,
    MLDSA44Signer,
    MLDSA44Verifier,
    Signer,
    Verifier,
    generate_key,
    open_checkpoint,
    parse_note,
    sign_checkpoint,
)

ROOT = hashlib.sha256(b"root").digest()

# Key names: no spaces, no '+', no control characters (signed-note).
NAMES = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="+\u2014"
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: not any(c.isspace() for c in s))


def _spec_message(name: str, ts: int, origin: str, size: int, root: bytes) -> bytes:
    n, o = name.encode(), origin.encode()
    return (
        b"subtree/v1\n\x00"
        + bytes([len(n)])
        + n
        + struct.pack(">Q", ts)
        + bytes([len(o)])
        + o
        + struct.pack(">QQ", 0, size)
        + root
    )


def test_an_ml_dsa_log_signature_is_the_spec_cosignature_by_the_log_key() -> None:
    skey, vkey = generate_key("example.org/pq-log", "ml-dsa-44")
    name, hex_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x06 and len(raw) == 1 + 1312
    want_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert hex_id == want_id.hex()
    signer = Signer.from_key(skey)
    assert isinstance(signer, MLDSA44Signer)
    note = sign_checkpoint(Checkpoint(origin=name, size=77, root_hash=ROOT), signer)
    (sig,) = parse_note(note).signatures
    assert sig.key_id == int(hex_id, 16) and len(sig.signature) == 8 + 2420
    ts = struct.unpack(">Q", sig.signature[:8])[0]
    assert ts > 1_700_000_000
    public = mldsa.MLDSA44PublicKey.from_public_bytes(raw[1:])
    public.verify(sig.signature[8:], _spec_message(name, ts, name, 77, ROOT))
    opened = open_checkpoint(note, Verifier.from_key(vkey))
    assert opened.checkpoint.size == 77


@settings(max_examples=25, deadline=None)
@given(name=NAMES, size=st.integers(0, (1 << 63) - 1), root=st.binary(min_size=32, max_size=32))
def test_ml_dsa_log_keys_round_trip_and_sign(name: str, size: int, root: bytes) -> None:
    if len(name.encode()) > 255:
        return
    skey, vkey = generate_key(name, "ml-dsa-44")
    signer = Signer.from_key(skey)
    verifier = Verifier.from_key(vkey)
    assert isinstance(verifier, MLDSA44Verifier)
    assert signer.verifier_key == vkey and verifier.key == vkey
    assert signer.verifier().key == vkey
    assert Signer.from_key(skey).key_id == verifier.key_id
    note = sign_checkpoint(Checkpoint(origin=name, size=size, root_hash=root), signer)
    assert open_checkpoint(note, verifier).checkpoint.root_hash == root


def test_a_changed_signature_or_checkpoint_is_refused() -> None:
    skey, vkey = generate_key("example.org/pq-log", "ml-dsa-44")
    note = sign_checkpoint(
        Checkpoint(origin="example.org/pq-log", size=5, root_hash=ROOT), Signer.from_key(skey)
    )
    text, _, line = note.partition(b"\n\n")
    b64 = line.split(b" ")[2].strip()
    raw = bytearray(base64.b64decode(b64))
    raw[100] ^= 1
    bad_sig = text + b"\n\n" + line.replace(b64, base64.b64encode(bytes(raw)))
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(bad_sig, Verifier.from_key(vkey))
    bad_size = note.replace(b"\n5\n", b"\n6\n", 1)
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(bad_size, Verifier.from_key(vkey))
    # The time is signed too.
    raw = bytearray(base64.b64decode(b64))
    raw[4 + 7] ^= 1
    bad_time = text + b"\n\n" + line.replace(b64, base64.b64encode(bytes(raw)))
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(bad_time, Verifier.from_key(vkey))


def test_ed25519_stays_the_default_and_the_kinds_do_not_mix() -> None:
    ed_skey, ed_vkey = generate_key("example.org/log")
    assert base64.b64decode(ed_vkey.split("+", 2)[2])[0] == 0x01
    ed = Signer.from_key(ed_skey)
    assert type(ed) is Signer and type(Verifier.from_key(ed_vkey)) is Verifier
    note = sign_checkpoint(Checkpoint(origin="example.org/log", size=1, root_hash=ROOT), ed)
    assert len(parse_note(note).signatures[0].signature) == 64
    # Same name, other algorithm: a different key id, so the signature is not this key's.
    _, pq_vkey = generate_key("example.org/log", "ml-dsa-44")
    with pytest.raises(SignatureError, match="No trusted key"):
        open_checkpoint(note, Verifier.from_key(pq_vkey))
    with pytest.raises(KeyFormatError, match="ed25519 or ml-dsa-44"):
        generate_key("example.org/log", "rsa")


def test_an_ml_dsa_log_key_refuses_extension_lines_it_could_not_sign() -> None:
    skey, _ = generate_key("example.org/pq-log", "ml-dsa-44")
    cp = Checkpoint(origin="example.org/pq-log", size=1, root_hash=ROOT, extensions=("x",))
    with pytest.raises(CosignatureError, match="extension lines"):
        sign_checkpoint(cp, Signer.from_key(skey))


def test_a_tlog_proof_from_an_ml_dsa_log_is_checked_under_a_tlog_policy() -> None:
    from custodes.tlog import (
        CosignatureSigner,
        MemoryTree,
        NoteSignature,
        format_note,
        generate_cosigner_key,
        leaf_hash,
    )
    from custodes.tlog.proof import TlogProof, check_proof, format_proof, parse_policy, parse_proof

    origin = "example.org/pq-log"
    skey, vkey = generate_key(origin, "ml-dsa-44")
    wkey, wvkey = generate_cosigner_key("w.example/pq", "ml-dsa-44")
    entries = [f"entry {i}".encode() for i in range(9)]
    tree = MemoryTree(leaf_hash(e) for e in entries)
    cp = Checkpoint(origin=origin, size=9, root_hash=tree.root())
    note = sign_checkpoint(cp, Signer.from_key(skey))
    opened = parse_note(note)
    cosig: NoteSignature = CosignatureSigner.from_key(wkey).cosign(opened.text, 1_700_000_000)
    cosigned = format_note(opened.text, [*opened.signatures, cosig])
    data = format_proof(
        TlogProof(index=4, inclusion=tuple(tree.prove_inclusion(4)), checkpoint=cosigned)
    )
    policy = parse_policy(f"log {vkey}\nwitness W {wvkey}\nquorum W\n".encode())
    proof = parse_proof(data)
    signed = check_proof(
        proof, entries[4], policy.log_for(origin), witnesses=list(policy.witnesses.values())
    )
    assert set(signed.cosignatures) == {"w.example/pq"} and policy.satisfied_by({"W"})
    policy.check(proof.checkpoint)
    with pytest.raises(SignatureError):  # without the cosignature the policy is not met
        policy.check(note)
