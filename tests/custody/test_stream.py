"""Segment encryption: round trips across chunk boundaries, and every tampering refused."""

from __future__ import annotations

import io
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.custody import (
    CustodyFormatError,
    Header,
    Point,
    Scalar,
    SegmentError,
    SegmentId,
    combine,
    decrypt_stream,
    encrypt_segment,
    encrypt_stream,
    partial_decrypt,
    read_header,
)
from custodes.custody.stream import TAG_BYTES
from tests.custody.conftest import Epoch

CHUNK = 64
KEY = bytes(range(32))
HEADER = Header("2026-12-03", Point.base_mul(Scalar.from_int(7)), CHUNK)
HLEN = len(HEADER.encode())
C = CHUNK + TAG_BYTES  # one full ciphertext chunk


class Trickle(io.BytesIO):
    """A file object that returns at most 5 bytes a read, as a pipe may."""

    def read(self, n: int | None = -1) -> bytes:
        return super().read(5 if n is None or n < 0 else min(n, 5))


def _enc(data: bytes, key: bytes = KEY, header: Header = HEADER) -> bytes:
    out = io.BytesIO()
    digests = encrypt_stream(io.BytesIO(data), out, key=key, header=header)
    assert digests.plaintext_size == len(data)
    assert digests.ciphertext_size == len(out.getvalue())
    return out.getvalue()


def _dec(blob: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, key=key, segment="cam-17@10:00")
    return out.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.integers(0, 6 * CHUNK),
        st.sampled_from([k * CHUNK + d for k in range(5) for d in (-1, 0, 1)]).filter(
            lambda n: n >= 0
        ),
    ),
    st.integers(16, 200),
)
def test_round_trip_across_chunk_boundaries(size: int, chunk: int) -> None:
    data = os.urandom(size)
    header = Header("e", HEADER.ephemeral, chunk)
    blob = _enc(data, header=header)
    chunks = max(1, -(-size // chunk))
    assert len(blob) == len(header.encode()) + size + chunks * TAG_BYTES
    assert _dec(blob) == data
    out = io.BytesIO()
    decrypt_stream(Trickle(blob), out, key=KEY, segment="s")
    assert out.getvalue() == data


def test_short_reads_when_encrypting() -> None:
    data = os.urandom(5 * CHUNK + 3)
    out = io.BytesIO()
    encrypt_stream(Trickle(data), out, key=KEY, header=HEADER)
    assert out.getvalue() == _enc(data)


def _refused(blob: bytes, chunk: int, match: str | None = None, key: bytes = KEY) -> None:
    with pytest.raises(SegmentError, match=match) as info:
        _dec(blob, key)
    assert info.value.segment == "cam-17@10:00"
    assert info.value.chunk == chunk
    assert f"segment cam-17@10:00, chunk {chunk}" in str(info.value)


DATA = bytes(range(256)) * 1 + b"tail"  # 260 bytes: chunks 0..3 full, chunk 4 holds 4


@pytest.mark.parametrize("pos", range(0, len(_enc(DATA)), 11))
def test_every_flipped_bit_is_refused(pos: int) -> None:
    blob = bytearray(_enc(DATA))
    blob[pos] ^= 0x10
    with pytest.raises((SegmentError, CustodyFormatError)) as info:
        _dec(bytes(blob))
    if pos >= HLEN:
        assert isinstance(info.value, SegmentError)
        assert info.value.chunk == (pos - HLEN) // C
    else:  # a header that still parses fails at chunk 0; one that does not, at -1
        assert isinstance(info.value, SegmentError) and info.value.chunk in (-1, 0)


def test_truncation_inside_a_chunk() -> None:
    blob = _enc(DATA)
    _refused(blob[: HLEN + 2 * C + 30], 2, "last chunk")
    _refused(blob[: HLEN + 2 * C + 10], 2, "shorter than its tag")


def test_truncation_at_a_chunk_boundary() -> None:
    blob = _enc(DATA)
    _refused(blob[: HLEN + 3 * C], 2, "last chunk dropped")


def test_final_chunk_dropped_when_it_is_full() -> None:
    data = os.urandom(4 * CHUNK)  # the last chunk is full
    blob = _enc(data)
    assert len(blob) == HLEN + 4 * C
    _refused(blob[: HLEN + 3 * C], 2, "last chunk")


def test_chunk_moved() -> None:
    blob = _enc(DATA)
    body = [blob[HLEN + i * C : HLEN + (i + 1) * C] for i in range(4)] + [blob[HLEN + 4 * C :]]
    swapped = blob[:HLEN] + body[0] + body[2] + body[1] + body[3] + body[4]
    _refused(swapped, 1, "altered, moved")
    dup = blob[:HLEN] + body[0] + body[0] + body[2] + body[3] + body[4]
    _refused(dup, 1)


def test_data_appended_after_the_last_chunk() -> None:
    blob = _enc(os.urandom(4 * CHUNK))
    _refused(blob + blob[HLEN : HLEN + C], 3, "moved")


def test_splice_of_two_segments(epoch35: Epoch) -> None:
    e = epoch35
    seg_a = SegmentId("2026-12-03", "cam-17", "2026-12-03T10:00:00Z")
    seg_b = SegmentId("2026-12-03", "cam-17", "2026-12-03T10:01:00Z")
    a, b = io.BytesIO(), io.BytesIO()
    sa = encrypt_segment(io.BytesIO(os.urandom(300)), a, e.public, seg_a, chunk_size=CHUNK)
    encrypt_segment(io.BytesIO(os.urandom(300)), b, e.public, seg_b, chunk_size=CHUNK)
    ha = len(Header(seg_a.epoch, sa.ephemeral, CHUNK).encode())
    spliced = a.getvalue()[: ha + 2 * C] + b.getvalue()[ha + 2 * C :]
    opened = combine(
        e.public,
        [partial_decrypt(s, sa.ephemeral, seg_a) for s in e.shares[:3]],
        sa.ephemeral,
        seg_a,
    )
    with pytest.raises(SegmentError, match=re.escape(f"segment {seg_a}, chunk 2")):
        decrypt_stream(io.BytesIO(spliced), io.BytesIO(), key=opened.key, segment=str(seg_a))
    # b's header with a's body: the header is authenticated by every chunk.
    hb = b.getvalue()[:ha]
    with pytest.raises(SegmentError, match="chunk 0"):
        decrypt_stream(
            io.BytesIO(hb + a.getvalue()[ha:]), io.BytesIO(), key=opened.key, segment=str(seg_a)
        )


def test_wrong_key_fails_at_chunk_zero() -> None:
    _refused(_enc(DATA), 0, key=bytes(32))


def test_empty_segment_and_short_stream() -> None:
    blob = _enc(b"")
    assert len(blob) == HLEN + TAG_BYTES and _dec(blob) == b""
    _refused(blob[:-1], 0)
    _refused(blob[:HLEN], 0, "shorter than its tag")
    with pytest.raises(SegmentError, match="chunk -1"):
        _dec(blob[: HLEN - 1])


def test_end_to_end_with_custodians(epoch35: Epoch) -> None:
    e = epoch35
    seg = SegmentId("2026-12-03", "cam-17", "2026-12-03T10:00:00Z")
    data = os.urandom(3 * 65536 + 17)
    out = io.BytesIO()
    sealed = encrypt_segment(io.BytesIO(data), out, e.public, seg, chunk_size=65536)
    assert sealed.digests.plaintext_size == len(data)
    src = io.BytesIO(out.getvalue())
    header = read_header(src)
    assert header.ephemeral == sealed.ephemeral and header.epoch == seg.epoch
    partials = [partial_decrypt(s, header.ephemeral, seg) for s in e.shares[2:]]
    key = combine(e.public, partials, header.ephemeral, seg).key
    plain = io.BytesIO()
    decrypt_stream(src, plain, key=key, segment=str(seg), header=header)
    assert plain.getvalue() == data


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"custodes-seX" + bytes(40),
        HEADER.encode()[:12] + b"\x02" + HEADER.encode()[13:],
        HEADER.encode()[:13] + b"\x02" + HEADER.encode()[14:],
        HEADER.encode() + b"x",
        HEADER.encode()[:-1],
    ],
)
def test_bad_headers(raw: bytes) -> None:
    with pytest.raises(CustodyFormatError):
        Header.decode(raw)


def test_header_limits() -> None:
    with pytest.raises(CustodyFormatError):
        Header("e", HEADER.ephemeral, 8).encode()
    with pytest.raises(CustodyFormatError):
        Header("x" * 65, HEADER.ephemeral).encode()
    with pytest.raises(CustodyFormatError):
        Header("\u00e9poque", HEADER.ephemeral).encode()
    assert Header.decode(HEADER.encode()) == HEADER
