"""The one-pass entry bundle parser accepts exactly what the careful one accepts.

``parse_entry_bundle`` reads a bundle in one pass with few checks (verifiers parse
millions of entries) and hands anything odd to the careful parser, which names the
fault; the two must agree on every input, well-formed or not.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from custodes.errors import BundleError
from custodes.tlog import format_entry_bundle, parse_entry_bundle
from custodes.tlog.tiles import _parse_entry_bundle_strictly

# Length prefixes that may or may not match what follows them, then maybe stray bytes.
pieces = st.lists(st.tuples(st.integers(0, 80), st.binary(max_size=80)), max_size=300)
bundles = st.builds(
    lambda parts, tail: b"".join(n.to_bytes(2, "big") + b for n, b in parts) + tail,
    pieces,
    st.binary(max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(data=bundles | st.binary(max_size=64))
@example(data=b"")
@example(data=b"\x00")
@example(data=b"\x00\x00" * 256)
@example(data=b"\x00\x00" * 257)
@example(data=format_entry_bundle([b"x" * 65535]))
@example(data=format_entry_bundle([b"a"] * 256) + b"\x00")
def test_the_fast_parser_agrees_with_the_careful_one(data: bytes) -> None:
    try:
        want = _parse_entry_bundle_strictly(data)
    except BundleError as err:
        with pytest.raises(BundleError) as got:
            parse_entry_bundle(data)
        assert str(got.value) == str(err)  # the same sentence, from the careful pass
        return
    assert parse_entry_bundle(data) == want
    assert parse_entry_bundle(data, len(want)) == want
