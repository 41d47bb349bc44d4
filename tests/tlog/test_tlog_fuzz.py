"""Parsers fed arbitrary input raise only custodes errors (never ValueError, IndexError...)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from custodes.errors import FormatError, VerificationError
from custodes.tlog import (
    CosignatureSigner,
    CosignatureVerifier,
    Signer,
    Verifier,
    check_consistency,
    check_inclusion,
    generate_cosigner_key,
    generate_key,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_entry_bundle,
    parse_hash_tile,
    parse_note,
    parse_tile_path,
    sign_note,
)

LOG = Signer.from_key(generate_key("example.org/log")[0])
WITNESS = CosignatureSigner.from_key(generate_cosigner_key("w.example")[0])
VALID_NOTE = sign_note("example.org/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", LOG)

# Bytes that look like our formats, so that fuzzing reaches past the first check.
pieces = st.sampled_from(
    [b"\n", b"\n\n", "— ".encode(), b" ", b"+", b"=", b"tile/", b"x00", b".p/", b"0", b"5", b"\xff"]
    + [b"example.org/log", b"AAAA", b"\r", b"\t", b"\x00\x01", VALID_NOTE[:40], VALID_NOTE[-60:]]
)
inputs = st.binary(max_size=300) | st.lists(pieces | st.binary(max_size=8), max_size=30).map(
    b"".join
)


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


PARSERS: dict[str, Callable[[bytes], object]] = {
    "parse_note": parse_note,
    "open_note": lambda b: open_note(b, [LOG.verifier(), WITNESS.verifier()]),
    "open_checkpoint": lambda b: open_checkpoint(b, LOG.verifier(), cosigners=[WITNESS.verifier()]),
    "parse_checkpoint_bytes": parse_checkpoint,
    "parse_checkpoint_text": lambda b: parse_checkpoint(text_of(b)),
    "parse_tile_path": lambda b: parse_tile_path(text_of(b)),
    "parse_hash_tile": parse_hash_tile,
    "parse_hash_tile_width": lambda b: parse_hash_tile(b, 2),
    "parse_entry_bundle": parse_entry_bundle,
    "parse_entry_bundle_width": lambda b: parse_entry_bundle(b, 2),
    "Signer.from_key": lambda b: Signer.from_key(text_of(b)),
    "Verifier.from_key": lambda b: Verifier.from_key(text_of(b)),
    "CosignatureSigner.from_key": lambda b: CosignatureSigner.from_key(text_of(b)),
    "CosignatureVerifier.from_key": lambda b: CosignatureVerifier.from_key(text_of(b)),
    "timestamp_of": CosignatureVerifier.timestamp_of,
}


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
@settings(max_examples=300, deadline=None)
@given(data=inputs)
@example(data=VALID_NOTE)
@example(data=b"")
def test_parser_raises_only_project_errors(parse: Callable[[bytes], object], data: bytes) -> None:
    try:
        parse(data)
    except (FormatError, VerificationError):
        pass


@settings(max_examples=200, deadline=None)
@given(
    proof=st.lists(st.binary(max_size=40), max_size=70),
    index=st.integers(-5, 2**64),
    size=st.integers(-5, 2**64),
    leaf=st.binary(max_size=40),
    root=st.binary(max_size=40),
)
def test_proof_checkers_raise_only_proof_errors(
    proof: list[bytes], index: int, size: int, leaf: bytes, root: bytes
) -> None:
    try:
        check_inclusion(proof, index=index, size=size, leaf=leaf, root=root)
    except VerificationError:
        pass
    try:
        check_consistency(proof, old_size=index, new_size=size, old_root=leaf, new_root=root)
    except VerificationError:
        pass
