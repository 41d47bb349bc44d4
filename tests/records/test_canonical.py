"""RFC 8785 canonical form of entries, checked against an independent implementation."""

from __future__ import annotations

import io
import json
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import EntryError
from custodes.records.canonical import (
    MAX_ENTRY_SIZE,
    canonicalize,
    canonicalize_line,
    format_number,
)
from custodes.records.jsonl import canonical_entries

# rfc8785 (Trail of Bits) refuses integers beyond 2**53 - 1, as we do.
_ints = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_text = st.text(st.characters(codec="utf-8"), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | _ints | _floats | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@given(_floats)
@settings(max_examples=2000)
def test_numbers_match_ecmascript(x: float) -> None:
    assert format_number(x) == rfc8785.dumps(x).decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (5e-324, "5e-324"),
        (333333333.3333333, "333333333.3333333"),
        (-1.5e300, "-1.5e+300"),
    ],
)
def test_number_examples_from_rfc8785(value: float, expected: str) -> None:
    assert format_number(value) == expected


@given(st.dictionaries(_text, _json, max_size=6))
@settings(max_examples=500)
def test_objects_match_independent_implementation(obj: dict[str, object]) -> None:
    assert canonicalize(obj) == rfc8785.dumps(obj)


@given(st.dictionaries(_text, _json, max_size=6))
@settings(max_examples=300)
def test_line_round_trip_is_canonical_and_stable(obj: dict[str, object]) -> None:
    line = json.dumps(obj, ensure_ascii=True, indent=None)
    canon = canonicalize_line(line.encode())
    assert canon == rfc8785.dumps(obj)
    assert canonicalize_line(canon) == canon  # canonical form is a fixed point


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+E000.
    line = json.dumps({"\ue000": 1, "\U0001f600": 2}).encode()
    assert canonicalize_line(line) == '{"\U0001f600":2,"\ue000":1}'.encode()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, found an array"),
        (b'"text"', "found a string"),
        (b"42", "found a number"),
        (b"null", "found null"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b'{"a": 1, "a": 2}', "appears twice"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b'{"a": 9007199254740993}', "cannot be held exactly"),
        (b'{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": 1} {"b": 2}', "not valid JSON"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_lines_name_their_defect(line: bytes, reason: str) -> None:
    with pytest.raises(EntryError, match=reason) as info:
        canonicalize_line(line, 7)
    assert info.value.line == 7
    assert str(info.value).startswith("line 7: ")


def test_oversized_canonical_form_is_refused() -> None:
    ok = {"a": "x" * (MAX_ENTRY_SIZE - 8)}
    assert len(canonicalize(ok)) == MAX_ENTRY_SIZE
    with pytest.raises(EntryError, match="over the 65535 limit"):
        canonicalize_line(json.dumps({"a": "x" * (MAX_ENTRY_SIZE - 7)}).encode())


def test_whitespace_and_escapes_do_not_change_the_entry() -> None:
    a = canonicalize_line(b'{ "b" : [1.0, 2e0] ,\t"a":"\\u00e9"}')
    b = canonicalize_line('{"a":"é","b":[1,2]}'.encode())
    assert a == b == '{"a":"é","b":[1,2]}'.encode()


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_is_canonicalised_in_order_across_workers(workers: int) -> None:
    n = 60_000  # large enough to use several blocks and the worker pool
    data = "".join(json.dumps({"i": i, "f": i / 4}) + "\n" for i in range(n)).encode()
    out = list(canonical_entries(io.BytesIO(data), workers=workers))
    assert len(out) == n
    assert out[12345] == rfc8785.dumps({"i": 12345, "f": 12345 / 4})


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_error_names_the_line_number(workers: int) -> None:
    lines = [json.dumps({"i": i}) for i in range(50_000)]
    lines[41_234] = "{broken"
    data = ("\n".join(lines) + "\n").encode()
    with pytest.raises(EntryError) as info:
        list(canonical_entries(io.BytesIO(data), workers=workers))
    assert info.value.line == 41_235


def test_last_line_without_newline_is_kept() -> None:
    out = list(canonical_entries(io.BytesIO(b'{"a":1}\n{"b":2}'), workers=0))
    assert out == [b'{"a":1}', b'{"b":2}']


def test_big_integers_that_doubles_hold_exactly_are_kept() -> None:
    assert canonicalize_line(b'{"a": 9007199254740992}') == b'{"a":9007199254740992}'
    assert canonicalize_line(b'{"a": 10000000000000000000000}') == b'{"a":1e+22}'


def test_float_edge_values_are_finite_only() -> None:
    with pytest.raises(EntryError):
        format_number(math.inf)
