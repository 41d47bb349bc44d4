"""Checkpoints: strict parsing, signing and opening, and evidence of forks and rollbacks."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import (
    CheckpointError,
    InconsistentLogError,
    SignatureError,
)
from custodes.tlog import (
    EMPTY_ROOT,
    Checkpoint,
    CosignatureSigner,
    MemoryTree,
    Signer,
    Verifier,
    check_checkpoint_consistency,
    format_checkpoint,
    format_note,
    generate_cosigner_key,
    generate_key,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
)

from .helpers import assert_sentence

ORIGIN = "example.org/log"
SIGNER = Signer.from_key(generate_key(ORIGIN)[0])
VERIFIER = SIGNER.verifier()
WITNESS = CosignatureSigner.from_key(generate_cosigner_key("witness.example/w1")[0])
TREE = MemoryTree(leaf_hash(bytes([i])) for i in range(40))
ROOT = base64.b64encode(TREE.root(10)).decode()
URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([251]) * 32).decode()

line_text = st.text(
    st.characters(codec="utf-8").filter(lambda c: ord(c) >= 0x20),
    min_size=1,
    max_size=40,
)
checkpoints = st.builds(
    Checkpoint,
    origin=line_text,
    size=st.integers(0, 2**63 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(line_text, max_size=3).map(tuple),
)


def signed(size: int, *, root: bytes | None = None) -> bytes:
    cp = Checkpoint(origin=ORIGIN, size=size, root_hash=root or TREE.root(size))
    return sign_checkpoint(cp, SIGNER)


@settings(max_examples=200, deadline=None)
@given(cp=checkpoints)
def test_format_parse_round_trip(cp: Checkpoint) -> None:
    text = format_checkpoint(cp)
    assert parse_checkpoint(text) == cp
    assert parse_checkpoint(text.encode()) == cp


def test_format() -> None:
    cp = Checkpoint(origin=ORIGIN, size=10, root_hash=TREE.root(10), extensions=("ext",))
    assert format_checkpoint(cp) == f"{ORIGIN}\n10\n{ROOT}\next\n"


# -- malformed bodies, one per defect ------------------------------------------------------

MALFORMED = {
    "size_with_leading_space": f"{ORIGIN}\n 5\n{ROOT}\n",
    "size_with_trailing_space": f"{ORIGIN}\n5 \n{ROOT}\n",
    "size_with_leading_zero": f"{ORIGIN}\n05\n{ROOT}\n",
    "size_with_plus_sign": f"{ORIGIN}\n+5\n{ROOT}\n",
    "size_negative": f"{ORIGIN}\n-5\n{ROOT}\n",
    "size_with_underscore": f"{ORIGIN}\n5_0\n{ROOT}\n",
    "size_in_arabic_indic_digits": f"{ORIGIN}\n٥\n{ROOT}\n",
    "size_in_hex": f"{ORIGIN}\n0x5\n{ROOT}\n",
    "size_empty": f"{ORIGIN}\n\n{ROOT}\n",
    "size_2_pow_63": f"{ORIGIN}\n{2**63}\n{ROOT}\n",
    "size_huge": f"{ORIGIN}\n{'9' * 5000}\n{ROOT}\n",
    "root_bad_base64": f"{ORIGIN}\n5\n{ROOT[:-2]}*=\n",
    "root_unpadded": f"{ORIGIN}\n5\n{ROOT[:-1]}\n",
    "root_non_canonical_bits": f"{ORIGIN}\n5\n{ROOT[:-2]}B=\n"
    if ROOT[-2] != "B"
    else f"{ORIGIN}\n5\n{ROOT[:-2]}C=\n",
    "root_short_hash": f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n",
    "root_long_hash": f"{ORIGIN}\n5\n{base64.b64encode(bytes(33)).decode()}\n",
    "root_url_safe_alphabet": f"{ORIGIN}\n5\n{URLSAFE_ROOT}\n",
    "missing_final_newline": f"{ORIGIN}\n5\n{ROOT}",
    "missing_root_line": f"{ORIGIN}\n5\n",
    "empty_origin": f"\n5\n{ROOT}\n",
    "control_character_in_origin": f"exa\tmple\n5\n{ROOT}\n",
    "carriage_return_line_endings": f"{ORIGIN}\r\n5\r\n{ROOT}\r\n",
    "empty_extension_line": f"{ORIGIN}\n5\n{ROOT}\n\n",
    "blank_line_then_signature": f"{ORIGIN}\n5\n{ROOT}\n\n— x AAAA\n",
    "empty_body": "",
    "oversized": f"{ORIGIN}\n5\n{ROOT}\n" + ("e" * 100 + "\n") * 700,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_checkpoint(text: str) -> None:
    with pytest.raises(CheckpointError) as err:
        parse_checkpoint(text)
    assert_sentence(err.value)
    with pytest.raises(CheckpointError):
        parse_checkpoint(text.encode())


def test_invalid_utf8_body() -> None:
    with pytest.raises(CheckpointError, match="UTF-8"):
        parse_checkpoint(b"\xff\n5\n" + ROOT.encode() + b"\n")


def test_largest_size_accepted() -> None:
    assert parse_checkpoint(f"{ORIGIN}\n{2**63 - 1}\n{ROOT}\n").size == 2**63 - 1
    assert parse_checkpoint(f"{ORIGIN}\n0\n{ROOT}\n").size == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"origin": "", "size": 1, "root_hash": bytes(32)},
        {"origin": "a\nb", "size": 1, "root_hash": bytes(32)},
        {"origin": "a", "size": -1, "root_hash": bytes(32)},
        {"origin": "a", "size": 2**63, "root_hash": bytes(32)},
        {"origin": "a", "size": 1, "root_hash": bytes(31)},
        {"origin": "a", "size": 1, "root_hash": bytes(32), "extensions": ("",)},
        {"origin": "a", "size": 1, "root_hash": bytes(32), "extensions": ("x\ny",)},
        {"origin": "\ud800", "size": 1, "root_hash": bytes(32)},
    ],
    ids=[
        "empty_origin",
        "newline_in_origin",
        "negative_size",
        "size_too_large",
        "short_root",
        "empty_extension",
        "newline_in_extension",
        "lone_surrogate_in_origin",
    ],
)
def test_checkpoint_fields_checked(fields: dict[str, object]) -> None:
    with pytest.raises(CheckpointError) as err:
        Checkpoint(**fields)  # type: ignore[arg-type]
    assert_sentence(err.value)


# -- signing and opening -------------------------------------------------------------------


def test_sign_and_open() -> None:
    message = signed(10)
    opened = open_checkpoint(message, VERIFIER)
    assert opened.checkpoint == Checkpoint(origin=ORIGIN, size=10, root_hash=TREE.root(10))
    assert opened.raw == message and opened.cosignatures == {}


def test_open_with_cosignatures() -> None:
    message = signed(10)
    note = parse_note(message)
    cosig = WITNESS.cosign(note.text, 1_700_000_000)
    unknown = CosignatureSigner.from_key(generate_cosigner_key("w2.example")[0])
    other = unknown.cosign(note.text, 5)
    cosigned = format_note(note.text, [*note.signatures, cosig, other])
    opened = open_checkpoint(cosigned, VERIFIER, cosigners=[WITNESS.verifier()])
    assert opened.cosignatures == {"witness.example/w1": 1_700_000_000}
    assert opened.note.unverified == (other,)


def test_cosignature_alone_does_not_open() -> None:
    note = parse_note(signed(10))
    cosig = WITNESS.cosign(note.text, 1)
    with pytest.raises(SignatureError, match="no signature by the log key") as err:
        open_checkpoint(format_note(note.text, [cosig]), VERIFIER, cosigners=[WITNESS.verifier()])
    assert_sentence(err.value)


def test_bad_cosignature_rejects_the_checkpoint() -> None:
    note = parse_note(signed(10))
    cosig = WITNESS.cosign(note.text, 1)
    forged = type(cosig)(name=cosig.name, key_id=cosig.key_id, signature=bytes(72))
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(
            format_note(note.text, [*note.signatures, forged]),
            VERIFIER,
            cosigners=[WITNESS.verifier()],
        )


def test_an_origin_other_than_the_key_name_is_read_when_the_key_is_given() -> None:
    # tlog-checkpoint: the key name SHOULD match the origin; a reader given the key accepts.
    other = Signer.from_key(generate_key("example.org/other")[0])
    body = format_checkpoint(Checkpoint(origin=ORIGIN, size=1, root_hash=TREE.root(1)))
    signed = open_checkpoint(sign_note(body, other), other.verifier())
    assert signed.checkpoint.origin == ORIGIN
    with pytest.raises(SignatureError):
        open_checkpoint(sign_note(body, other), VERIFIER)


def test_sign_refuses_a_signer_of_another_origin() -> None:
    cp = Checkpoint(origin="example.org/other", size=1, root_hash=TREE.root(1))
    with pytest.raises(CheckpointError, match="is not the checkpoint origin"):
        sign_checkpoint(cp, SIGNER)


def test_signed_note_that_is_not_a_checkpoint() -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(sign_note(f"{ORIGIN}\nfive\n{ROOT}\n", SIGNER), VERIFIER)


def test_open_with_wrong_key() -> None:
    with pytest.raises(SignatureError):
        open_checkpoint(signed(10), Verifier.from_key(generate_key(ORIGIN)[1]))


# -- consistency between two checkpoints ------------------------------------------------------


def test_consistent_checkpoints() -> None:
    old, new = open_checkpoint(signed(10), VERIFIER), open_checkpoint(signed(40), VERIFIER)
    check_checkpoint_consistency(old, new, TREE.prove_consistency(10, 40))
    check_checkpoint_consistency(old, old, [])


def _check(old: bytes, new: bytes, proof: list[bytes]) -> InconsistentLogError:
    with pytest.raises(InconsistentLogError) as err:
        check_checkpoint_consistency(
            open_checkpoint(old, VERIFIER), open_checkpoint(new, VERIFIER), proof
        )
    assert_sentence(err.value)
    assert err.value.old_checkpoint == old and err.value.new_checkpoint == new
    assert err.value.proof == tuple(proof)
    return err.value


def test_rollback_is_evidence() -> None:
    err = _check(signed(40), signed(10), [])
    assert "Rollback" in str(err)
    assert "--- checkpoint seen before" in err.evidence()


def test_fork_at_equal_size_is_evidence() -> None:
    err = _check(signed(10), signed(10, root=TREE.root(11)), [])
    assert "Fork" in str(err)


def test_failed_proof_is_evidence() -> None:
    proof = TREE.prove_consistency(10, 40)
    bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    err = _check(signed(10), signed(40), bad)
    assert "not consistent" in str(err)


def test_diverged_log_is_evidence() -> None:
    forked = MemoryTree(leaf_hash(bytes([i if i < 10 else 255 - i])) for i in range(40))
    _check(signed(10), signed(40, root=forked.root(40)), TREE.prove_consistency(10, 40))


def test_from_size_zero() -> None:
    empty = open_checkpoint(signed(0, root=EMPTY_ROOT), VERIFIER)
    check_checkpoint_consistency(empty, open_checkpoint(signed(40), VERIFIER), [])
    _check(signed(0, root=EMPTY_ROOT), signed(40), [TREE.root(40)])
    _check(signed(0, root=TREE.root(1)), signed(40), [])


def test_checkpoints_of_different_logs() -> None:
    other = Signer.from_key(generate_key("example.org/other")[0])
    theirs = sign_checkpoint(Checkpoint(origin=other.name, size=10, root_hash=TREE.root(10)), other)
    with pytest.raises(CheckpointError, match="different logs"):
        check_checkpoint_consistency(
            open_checkpoint(signed(10), VERIFIER),
            open_checkpoint(theirs, other.verifier()),
            [],
        )
