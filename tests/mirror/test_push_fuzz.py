"""Any add-entries or add-checkpoint body gets one of the spec's answers, never a crash,
and nothing is saved unless the answer says so (real Mirror, real parser, no server)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.mirror import Mirror
from custodes.mirror.push import add_checkpoint, add_entries
from custodes.tlog import (
    CosignatureSigner,
    Verifier,
    generate_cosigner_key,
    open_checkpoint,
    prove_subtree_consistency,
)
from tests.mirror.origin import MemoryOrigin

ORIGIN = MemoryOrigin()
ORIGIN.append([b"e%d" % i for i in range(600)])
ORIGIN.publish()
SIGNER = CosignatureSigner.from_key(generate_cosigner_key("mirror.test/fuzz")[0])


def _packages() -> bytes:
    out = b""
    for first in range(0, 600, 256):
        end = min(600, first + 256)
        for e in ORIGIN.entries[first:end]:
            out += len(e).to_bytes(2, "big") + e
        proof = prove_subtree_consistency(first, end, 600, ORIGIN.tree.read_hashes)
        out += bytes([len(proof)]) + b"".join(proof)
    return out


PACKAGES = _packages()


def _header(start: int, end: int) -> bytes:
    o = ORIGIN.origin.encode()
    return (
        len(o).to_bytes(2, "big") + o + start.to_bytes(8, "big") + end.to_bytes(8, "big") + b"\0\0"
    )


async def _run(func: Callable[..., Any], *args: Any) -> Any:
    return func(*args)


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _mirror(root: Path) -> Mirror:
    m = Mirror(root, Verifier.from_key(ORIGIN.vkey), SIGNER, fsync=False)
    if m.pending is None:
        m.take_pending(open_checkpoint(ORIGIN.note, Verifier.from_key(ORIGIN.vkey)))
    return m


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(0, 700),
    end=st.sampled_from([0, 256, 600, 601, 1 << 63]),
    tail=st.binary(max_size=3000),
    chunk=st.integers(1, 4096),
    gz=st.booleans(),
)
def test_any_add_entries_body_gets_a_spec_answer(
    tmp_path: Path, start: int, end: int, tail: bytes, chunk: int, gz: bool
) -> None:
    root = tmp_path / hashlib.sha256(tail + bytes([start % 256, chunk % 256])).hexdigest()
    mirror = _mirror(root)
    before = mirror.next_entry
    body = _header(start, end) + tail
    reply = asyncio.run(add_entries(mirror, _chunks(body, chunk), gzipped=gz, run=_run))
    assert reply.status in (200, 202, 400, 404, 409, 422)
    assert reply.body.endswith(b"\n") or reply.status == 200
    if reply.status not in (200, 202):
        assert mirror.next_entry == before


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(0, len(PACKAGES)), tail=st.binary(max_size=64), flip=st.integers(-1, 4000))
def test_cut_or_damaged_packages_save_only_what_verifies(
    tmp_path: Path, cut: int, tail: bytes, flip: int
) -> None:
    root = tmp_path / hashlib.sha256(b"%d %d " % (cut, flip) + tail).hexdigest()
    mirror = _mirror(root)
    body = bytearray(PACKAGES[:cut] + tail)
    if 0 <= flip < len(body):
        body[flip] ^= 0x01
    reply = asyncio.run(add_entries(mirror, _chunks(_header(0, 600) + bytes(body), 700),
                                    gzipped=False, run=_run))  # fmt: skip
    assert reply.status in (200, 202, 400, 422)
    held = mirror.next_entry
    assert held in (0, 256, 512, 600)
    assert [e for e in ORIGIN.entries[:held]] == [
        e for i in range(0, held, 256) for e in _bundle(mirror, i, held)
    ]
    if reply.status == 200:
        assert mirror.size == 600


def _bundle(mirror: Mirror, first: int, held: int) -> list[bytes]:
    from custodes.tlog import Tile, parse_entry_bundle, tile_path

    width = min(256, held - first)
    path = mirror.root / tile_path(Tile(level=-1, index=first // 256, width=width))
    return parse_entry_bundle(path.read_bytes(), width)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=600) | st.builds(lambda b: b"old 0\n\n" + b, st.binary(max_size=400))
)
def test_any_add_checkpoint_body_gets_a_spec_answer(tmp_path: Path, body: bytes) -> None:
    root = tmp_path / hashlib.sha256(body).hexdigest()
    mirror = Mirror(root, Verifier.from_key(ORIGIN.vkey), SIGNER, fsync=False)
    reply = add_checkpoint(mirror, body)
    assert reply.status in (400, 403, 404, 409, 422)
    assert mirror.pending is None
