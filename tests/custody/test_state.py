"""Custodian key material as JSON; shredding; what the custody layer may import."""

from __future__ import annotations

import ast
import io
import json
import sys
from pathlib import Path

import pytest

from custodes.custody import (
    CustodianState,
    CustodyFormatError,
    Header,
    Point,
    Scalar,
    decrypt_stream,
    encrypt_stream,
)
from custodes.custody.stream import TAG_BYTES
from tests.custody.conftest import Epoch, make_epoch

CUSTODY = Path(__file__).resolve().parents[2] / "src" / "custodes" / "custody"


def test_state_round_trip_and_shred(epoch35: Epoch) -> None:
    state = CustodianState("court-registry", epoch35.keys[0])
    state = state.add_share(epoch35.shares[0])
    again = CustodianState.loads(state.dumps())
    assert again == state
    assert "secret" not in repr(again) and "2026-12-03" in repr(again)

    shredded = state.shred(["2026-12-03"])
    assert shredded.shares == {} and shredded.shredded == {"2026-12-03"}
    back = CustodianState.loads(shredded.dumps())
    with pytest.raises(CustodyFormatError, match="shredded"):
        back.add_share(epoch35.shares[0])


def test_state_refuses_a_second_share_for_an_epoch(epoch35: Epoch) -> None:
    state = CustodianState("a", epoch35.keys[0]).add_share(epoch35.shares[0])
    other = make_epoch(3, 2).shares[0]  # same epoch name, another run
    with pytest.raises(CustodyFormatError, match="different share"):
        state.add_share(other)


@pytest.mark.parametrize(
    "defect", ["not-json", "extra-field", "version-2", "bad-name", "bad-share", "twice"]
)
def test_state_parsing_is_strict(epoch35: Epoch, defect: str) -> None:
    obj = CustodianState("a", epoch35.keys[0]).add_share(epoch35.shares[0]).to_json()
    if defect == "not-json":
        text = "{"
    else:
        if defect == "extra-field":
            obj["x"] = 1
        elif defect == "version-2":
            obj["version"] = 2
        elif defect == "bad-name":
            obj["name"] = "a\u0000"
        elif defect == "bad-share":
            obj["shares"][0]["index"] = 2
        elif defect == "twice":
            obj["shares"] = obj["shares"] * 2
        text = json.dumps(obj)
    with pytest.raises(CustodyFormatError):
        CustodianState.loads(text)


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest = 0

    def read(self, n: int | None = -1) -> bytes:
        assert n is not None and n >= 0, "reads must be bounded"
        self.largest = max(self.largest, n)
        return super().read(n)


def test_streaming_reads_are_bounded_by_the_chunk() -> None:
    data = bytes(10_000)
    header = Header("e", Point.base_mul(Scalar.from_int(3)), 256)
    src = CountingReader(data)
    out = io.BytesIO()
    encrypt_stream(src, out, key=bytes(32), header=header)
    assert src.largest == 256
    csrc = CountingReader(out.getvalue())
    decrypt_stream(csrc, io.BytesIO(), key=bytes(32), segment="s")
    assert csrc.largest == 256 + TAG_BYTES


def test_custody_imports_only_its_own_modules_errors_and_crypto_libraries() -> None:
    allowed = {"cryptography", "pysodium", "custodes.errors", "custodes.custody"}
    for path in CUSTODY.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                name = node.module
            elif isinstance(node, ast.Import):
                name = node.names[0].name
            else:
                continue
            top = name.split(".")[0]
            if top == "custodes":
                assert any(name.startswith(a) for a in allowed), (path.name, name)
            elif top not in {"cryptography", "pysodium", "__future__"}:
                assert top in sys.stdlib_module_names, (path.name, name)
