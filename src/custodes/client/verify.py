"""Verifying a whole log from its tiles, without trusting whoever serves them.

:func:`verify_log` proceeds in numbered steps:

1. Fetch the checkpoint and check its signature against the log's verifier
   key (and, when asked, enough witness cosignatures).
2. If a state file holds a checkpoint seen before, it must be signed by the
   same key and not be larger (a rollback) than the new one.
3. Fetch every entry bundle, hash its entries, and check each level-0 hash
   tile against those hashes; then check every higher hash tile.
4. The root computed from the entries must equal the checkpoint's.
5. The tree at the old size, computed from the tiles just verified, must have
   the old checkpoint's root; otherwise the log forked.  The error carries both
   signed checkpoints as evidence.
6. Only then is the new checkpoint saved as the state.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import sha256
from multiprocessing.pool import AsyncResult
from pathlib import Path

from custodes._proc import exit_with_parent
from custodes.client.source import TileSource, fetch_many, fetch_stream
from custodes.errors import (
    FormatError,
    InconsistentLogError,
    ProofError,
    UsageError,
    VerificationError,
)
from custodes.tlog import (
    CosignatureVerifier,
    NoteVerifier,
    SignedCheckpoint,
    Tile,
    TreeVerifier,
    bundles_for_size,
    open_checkpoint,
    parse_entry_bundle,
    parse_hash_tile,
    tile_path,
    tiles_for_size,
)

__all__ = ["VerifyResult", "WitnessPolicy", "verify_log"]

_WIDTH = 256
_HEIGHT = 8


@dataclass(frozen=True, kw_only=True)
class WitnessPolicy:
    """At least ``quorum`` of ``witnesses`` must have cosigned the checkpoint."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int

    def check(self, signed: SignedCheckpoint) -> None:
        names = {w.name for w in self.witnesses}
        have = sorted(n for n in signed.cosignatures if n in names)
        if len(have) < self.quorum:
            raise VerificationError(
                f"the checkpoint has {len(have)} of the {self.quorum} witness cosignatures"
                " the policy requires"
            )


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    origin: str
    size: int
    root_hash: bytes
    previous_size: int | None
    entries: int
    tiles: int
    seconds: float
    cosigned_by: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "verified": True,
            "origin": self.origin,
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "previous_size": self.previous_size,
            "entries_verified": self.entries,
            "tiles_verified": self.tiles,
            "seconds": round(self.seconds, 3),
            "entries_per_second": round(self.entries / self.seconds) if self.seconds else None,
            "cosigned_by": list(self.cosigned_by),
        }


_CHUNK = 64
"""Paths asked for in one :func:`fetch_many` call (pipelined over one connection)."""


def _prefetch(source: TileSource, paths: Sequence[str], window: int) -> Iterator[tuple[str, bytes]]:
    if window <= 1:
        for p in paths:
            yield p, source.fetch(p)
        return
    # Chunks of paths, each fetched by one thread (pipelined where the source can),
    # up to ``window`` chunks ahead of the one being checked.
    with ThreadPoolExecutor(max_workers=window) as pool:
        pending: deque[tuple[Sequence[str], Future[list[bytes]]]] = deque()
        for i in range(0, len(paths), _CHUNK):
            chunk = paths[i : i + _CHUNK]
            pending.append((chunk, pool.submit(fetch_many, source, chunk)))
            if len(pending) >= window:
                done, future = pending.popleft()
                yield from zip(done, future.result(), strict=True)
        while pending:
            done, future = pending.popleft()
            yield from zip(done, future.result(), strict=True)


def _edge_nodes(size: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` whose roots make up a tree of ``size``."""
    nodes: list[tuple[int, int]] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def _node_tile(level: int, index: int) -> tuple[tuple[int, int], int, int]:
    tile_level, rest = divmod(level, _HEIGHT)
    first = index << rest
    return (tile_level, first // _WIDTH), first % _WIDTH, 1 << rest


_NODE = sha256(b"\x01")
_LEAF = sha256(b"\x00")


def _row_root(row: list[bytes]) -> bytes:
    # RFC 9162 interior nodes, SHA-256(0x01 || left || right): a copy of a hash already fed
    # the prefix, then the two children, costs less than building the 65 bytes each time.
    node = _NODE.copy
    while len(row) > 1:
        out: list[bytes] = []
        for i in range(0, len(row), 2):
            h = node()
            h.update(row[i])
            h.update(row[i + 1])
            out.append(h.digest())
        row = out
    return row[0]


def _leaves(entries: list[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes, SHA-256(0x00 || entry)."""
    leaf = _LEAF.copy
    out: list[bytes] = []
    for e in entries:
        h = leaf()
        h.update(e)
        out.append(h.digest())
    return out


def _root_from_nodes(hashes: list[bytes]) -> bytes:
    if not hashes:
        return sha256(b"").digest()
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = sha256(b"\x01" + h + root).digest()
    return root


def _schedule(size: int) -> list[Tile]:
    """Every bundle and tile, each hash tile placed right after the entries it covers.

    The tree verifier keeps only recent tiles, so each is checked as soon as it
    can be: a level-0 tile after its bundle, a full higher tile after the last
    bundle under it, and the partial right edge at the end.
    """
    by_level: dict[int, dict[int, Tile]] = {}
    for t in tiles_for_size(size):
        by_level.setdefault(t.level, {})[t.index] = t
    order: list[Tile] = []
    for b in bundles_for_size(size):
        order.append(b)
        order.append(by_level[0].pop(b.index))
        done = b.index + 1 if b.width == _WIDTH else b.index
        level = 1
        while done and done % _WIDTH == 0 and level in by_level:
            done //= _WIDTH
            full = by_level[level].get(done - 1)
            if full is None or full.width != _WIDTH:
                break
            order.append(by_level[level].pop(done - 1))
            level += 1
    for level in sorted(by_level):
        order.extend(by_level[level][i] for i in sorted(by_level[level]))
    return order


PARALLEL_MIN = 1 << 17
"""From this size, full bundles are fetched and hashed in worker processes."""

_BUNDLES_PER_TASK = 64


def _check_bundles(
    source: TileSource, first: int, last: int, wanted: frozenset[tuple[int, int]]
) -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    """In a worker: fetch full bundles first..last-1 and their level-0 tiles, check, hash."""
    roots: list[bytes] = []
    kept: dict[tuple[int, int], bytes] = {}
    paths: list[str] = []
    for i in range(first, last):
        paths += [tile_path(Tile(level=-1, index=i)), tile_path(Tile(level=0, index=i))]
    # Each bundle is checked as it arrives, while the server answers the next requests.
    blobs = fetch_stream(source, paths)
    for k, i in enumerate(range(first, last)):
        entries = parse_entry_bundle(next(blobs), _WIDTH)
        stored = next(blobs)
        leaves = _leaves(entries)
        if b"".join(leaves) != stored:
            parse_hash_tile(stored, _WIDTH)
            raise ProofError(f"Hash tile {paths[2 * k + 1]} does not match the entries under it.")
        roots.append(_row_root(leaves))
        if (0, i) in wanted:
            kept[(0, i)] = stored
    return roots, kept


def _start_pool(workers: int) -> multiprocessing.pool.Pool:
    """``workers`` forked processes that end with this one."""
    return multiprocessing.get_context("fork").Pool(workers, initializer=exit_with_parent)


def _hashed_bundles(
    source: TileSource, full: int, wanted: set[tuple[int, int]], workers: int
) -> Iterator[tuple[bytes, dict[tuple[int, int], bytes]]]:
    """Roots of full bundles 0..full-1 in order, checked by a pool of processes.

    Where no pool can be started (no ``fork`` on this platform, or no process
    left to the user), the same checks run in this process, one task after another.
    """
    frozen = frozenset(k for k in wanted if k[0] == 0)
    try:
        pool = _start_pool(workers)
    except (OSError, ValueError):
        for start in range(0, full, _BUNDLES_PER_TASK):
            roots, kept = _check_bundles(
                source, start, min(full, start + _BUNDLES_PER_TASK), frozen
            )
            for i, root in enumerate(roots):
                yield root, (kept if i == 0 else {})
        return
    with pool:
        inflight: deque[AsyncResult[tuple[list[bytes], dict[tuple[int, int], bytes]]]] = deque()
        tasks = iter(range(0, full, _BUNDLES_PER_TASK))
        for start in tasks:
            end = min(full, start + _BUNDLES_PER_TASK)
            inflight.append(pool.apply_async(_check_bundles, (source, start, end, frozen)))
            if len(inflight) >= 4 * workers:
                break
        while inflight:
            try:
                roots, kept = inflight.popleft().get()
            except BaseException:
                # Let the tasks still running finish before the pool is terminated: stopping
                # workers in the middle of sending a result can leave terminate() waiting.
                for rest in inflight:
                    rest.wait(60)
                raise
            more = next(tasks, None)
            if more is not None:
                end = min(full, more + _BUNDLES_PER_TASK)
                inflight.append(pool.apply_async(_check_bundles, (source, more, end, frozen)))
            for i, root in enumerate(roots):
                yield root, (kept if i == 0 else {})


def verify_log(
    source: TileSource,
    verifier: NoteVerifier,
    *,
    state: Path | None = None,
    witnesses: WitnessPolicy | None = None,
    progress: Callable[[int], None] | None = None,
    fetch_window: int | None = None,
    workers: int | None = None,
) -> VerifyResult:
    """Verify the log at ``source``; raise a VerificationError subclass on any fault."""
    t0 = time.perf_counter()
    window: int = fetch_window or source.fetch_window
    cosigners = witnesses.witnesses if witnesses else ()
    # (1) the checkpoint and its signatures
    raw = source.fetch("checkpoint")
    signed = open_checkpoint(raw, verifier, cosigners=cosigners)
    if witnesses is not None:
        witnesses.check(signed)
    cp = signed.checkpoint
    size = cp.size
    # (2) what we saw before
    old: SignedCheckpoint | None = None
    if state is not None and state.exists():
        old_raw = state.read_bytes()
        try:
            old = open_checkpoint(old_raw, verifier)
        except (FormatError, VerificationError) as err:
            raise UsageError(
                f"the state file {state} holds no checkpoint of this log: {err}"
            ) from None
        if old.checkpoint.size > size:
            raise InconsistentLogError(
                f"rollback: the log now shows size {size}, but it signed size"
                f" {old.checkpoint.size} before",
                old_checkpoint=old_raw,
                new_checkpoint=raw,
            )
    # Tiles whose hashes step (5) needs, kept as they pass.
    keep: dict[tuple[int, int], bytes] = {}
    wanted: set[tuple[int, int]] = set()
    old_nodes: list[tuple[int, int]] = []
    if old is not None and old.checkpoint.size:
        old_nodes = _edge_nodes(old.checkpoint.size)
        wanted = {_node_tile(level, index)[0] for level, index in old_nodes}
    # (3) every bundle and tile
    tv = TreeVerifier()
    kinds = _schedule(size)
    full = size // _WIDTH
    pool_size = min(workers if workers is not None else (os.cpu_count() or 1), 8)
    parallel = pool_size > 1 and size >= PARALLEL_MIN
    by_workers = (lambda t: t.index < full and t.level <= 0) if parallel else (lambda t: False)
    mine = [t for t in kinds if not by_workers(t)]
    fetched = _prefetch(source, [tile_path(t) for t in mine], window)
    roots = _hashed_bundles(source, full, wanted, pool_size) if parallel else iter(())
    checked = 0
    for tile in kinds:
        checked += 1
        if by_workers(tile):
            if tile.level < 0:
                root, kept = next(roots)
                tv.add_bundle_root(tile.index, root)
                keep.update(kept)
                if progress is not None:
                    progress(_WIDTH)
            continue
        _, data = next(fetched)
        if tile.level < 0:
            entries = parse_entry_bundle(data, tile.width)
            tv.add_bundle(tile.index, entries)
            if progress is not None:
                progress(len(entries))
        else:
            parse_hash_tile(data, tile.width)
            tv.check_hash_tile(tile.level, tile.index, data)
            if (tile.level, tile.index) in wanted:
                keep[(tile.level, tile.index)] = data
    # (4) the root
    if tv.root() != cp.root_hash:
        raise ProofError(f"the entries give a different root than the checkpoint for size {size}")
    # (5) consistency with what we saw before
    if old is not None:
        hashes: list[bytes] = []
        for level, index in old_nodes:
            key, start, count = _node_tile(level, index)
            blob = keep[key]
            row = [blob[32 * i : 32 * i + 32] for i in range(start, start + count)]
            hashes.append(_row_root(row))
        if _root_from_nodes(hashes) != old.checkpoint.root_hash:
            raise InconsistentLogError(
                f"fork: the log's tree at size {old.checkpoint.size} differs from the"
                " checkpoint it signed before",
                old_checkpoint=old.raw,
                new_checkpoint=raw,
            )
    # (6) remember
    if state is not None:
        try:
            tmp = state.with_name(f".{state.name}.tmp")
            tmp.write_bytes(raw)
            os.replace(tmp, state)
        except OSError as err:
            raise UsageError(f"the state file {state} cannot be written: {err.strerror}") from None
    return VerifyResult(
        origin=cp.origin,
        size=size,
        root_hash=cp.root_hash,
        previous_size=old.checkpoint.size if old else None,
        entries=size,
        tiles=checked,
        seconds=time.perf_counter() - t0,
        cosigned_by=tuple(sorted(signed.cosignatures)),
    )
