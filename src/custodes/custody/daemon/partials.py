"""A custodian's partial decryptions for one answer, on every core.

Each partial (:func:`~custodes.custody.kem.partial_decrypt`: ``D = x_j*R`` and its DLEQ
proof) is three scalar multiplications in libsodium, called through ctypes, which releases
the GIL for the length of each call.  So threads of one process run them on all cores at
once: no second process, no share of the epoch secret leaving this one, nothing to restart.
The few Python steps between calls (the proof's hashes, the JSON form) hold the GIL; on 2
cores that still gives most of a second core.

A request of fewer than :data:`MIN_CHUNK` segments per thread stays on the calling thread.
The threads are as many as the cores (at most 8), or ``CUSTODES_PARTIAL_THREADS`` (1 to 64)
if set when the custodian starts; 1 computes every partial on the request's own thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from custodes.custody.group import Point
from custodes.custody.kem import SegmentId, partial_decrypt
from custodes.custody.keys import EpochShare
from custodes.errors import UsageError

__all__ = ["MIN_CHUNK", "WORKERS", "partials_json"]


def _workers(text: str | None) -> int:
    if text is None or text == "":
        return max(1, min(8, os.cpu_count() or 1))
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise UsageError(f"CUSTODES_PARTIAL_THREADS must be a number from 1 to 64, not {text!r}.")
    return int(text)


WORKERS = _workers(os.environ.get("CUSTODES_PARTIAL_THREADS"))
MIN_CHUNK = 32
# Threads start on first use; the calling thread computes one chunk itself.
_pool = ThreadPoolExecutor(max(1, WORKERS - 1), thread_name_prefix="custodian-partials")

Item = tuple[SegmentId, Point, EpochShare]


def _chunk(items: Sequence[Item], release: str) -> list[dict[str, Any]]:
    return [
        partial_decrypt(share, eph, seg, release=release).to_json() for seg, eph, share in items
    ]


def partials_json(items: Sequence[Item], *, release: str) -> list[dict[str, Any]]:
    """Every item's partial, as JSON, in the order given (an error in any is raised)."""
    parts = min(WORKERS, len(items) // MIN_CHUNK)
    if parts < 2:
        return _chunk(items, release)
    size = -(-len(items) // parts)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    rest = [_pool.submit(_chunk, c, release) for c in chunks[1:]]
    out = _chunk(chunks[0], release)
    for f in rest:
        out += f.result()
    return out
