"""Test helpers for log stores: a reference model, a fault injector, an invariant checker.

* :class:`MemoryStore` is the :class:`~custodes.ledger.store.LogStore`
  contract written as plainly as possible, with the same errors; the
  conformance suite runs random operations against it and a real engine side
  by side and expects the same answers.
* :class:`FaultyStore` wraps any store and makes chosen calls fail, as in
  Sunlight's test log: "fail before saving" raises without calling the inner
  store; "fail after saving" lets the inner store finish, then raises, as a
  crash between commit and reply would.  Calls are chosen by method name and
  call number, or at random with a seed.
* :func:`check_invariants` re-checks what must hold after any crash: indexes
  contiguous, integrated size within them, and every tile the integrated size
  covers equal to the hashes recomputed from the entries.  It hashes with
  :mod:`hashlib` directly, independently of the code under test.
* :func:`integrate_all` integrates like the sequencer does (through
  :mod:`custodes.ledger.tiling`), so fault tests write real tiles.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Literal, TypeVar

from custodes.errors import ConflictError, NotFoundError, StoreUnavailableError
from custodes.ledger.store import IntegratedState, LogStore, TileKey
from custodes.ledger.tiling import TileState

__all__ = [
    "Fault",
    "FaultPlan",
    "FaultyStore",
    "Ledger",
    "MemoryStore",
    "check_invariants",
    "expected_tiles",
    "fake_checkpoint",
    "integrate_all",
    "leaf_hash",
    "tree_head",
]

T = TypeVar("T")
Phase = Literal["before", "after"]
WRITES = frozenset({"append", "integrate"})


# -- the reference model -----------------------------------------------------


class MemoryStore:
    """The LogStore contract in memory: the model the engines are compared against."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.tiles: dict[TileKey, bytes] = {}
        self.size = 0
        self.checkpoint: bytes | None = None
        self.closed = False

    def _live(self) -> None:
        if self.closed:
            raise StoreUnavailableError("the memory store is closed")

    def next_index(self) -> int:
        self._live()
        return len(self.entries)

    def append(self, entries: Iterable[bytes]) -> tuple[int, int]:
        self._live()
        batch: list[bytes] = []
        for entry in entries:  # all or none: collect first
            if not isinstance(entry, bytes):
                raise TypeError(f"log entries must be bytes, not {type(entry).__name__}")
            batch.append(entry)
        first = len(self.entries)
        self.entries.extend(batch)
        return first, len(batch)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        self._live()
        if not 0 <= start <= end:
            raise ValueError(f"no entry range {start}..{end}")
        if end > len(self.entries):
            raise NotFoundError(f"entries {start} to {end - 1} are not all in the log")
        return self.entries[start:end]

    def integrated(self) -> IntegratedState:
        self._live()
        return IntegratedState(size=self.size, checkpoint=self.checkpoint)

    def read_tiles(self, keys: Sequence[TileKey]) -> list[bytes | None]:
        self._live()
        return [self.tiles.get(key) for key in keys]

    def integrate(
        self, *, old_size: int, new_size: int, tiles: dict[TileKey, bytes], checkpoint: bytes
    ) -> None:
        if not 0 <= old_size <= new_size:
            raise ValueError(f"cannot integrate from size {old_size} to {new_size}")
        for (level, index), hashes in tiles.items():
            if level < 0 or index < 0 or not hashes or len(hashes) % 32 or len(hashes) > 8192:
                raise ValueError(f"hash tile {level}/{index} is malformed")
        self._live()
        if self.size != old_size:
            raise ConflictError(f"the integrated size is {self.size}, not {old_size}")
        if new_size > len(self.entries):
            raise ConflictError(f"cannot integrate to size {new_size}")
        self.tiles.update(tiles)
        self.size = new_size
        self.checkpoint = checkpoint

    def close(self) -> None:
        self.closed = True


# -- fault injection ---------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """Fail the ``call``-th call (1-based) of ``method``, before or after saving."""

    method: str
    call: int
    phase: Phase


@dataclass(frozen=True)
class FaultPlan:
    """Which calls fail: the listed :class:`Fault` s, plus each call to one of
    ``methods`` with ``probability`` (phase chosen at random), seeded."""

    faults: Sequence[Fault] = ()
    probability: float = 0.0
    seed: int = 0
    methods: frozenset[str] = WRITES

    @classmethod
    def at(cls, method: str, call: int, phase: Phase) -> FaultPlan:
        return cls(faults=(Fault(method, call, phase),))

    @classmethod
    def random(
        cls, probability: float, *, seed: int, methods: frozenset[str] = WRITES
    ) -> FaultPlan:
        return cls(probability=probability, seed=seed, methods=methods)


@dataclass
class Injected:
    method: str
    call: int
    phase: Phase


class FaultyStore:
    """A LogStore that makes the calls its :class:`FaultPlan` names fail.

    An injected failure is a :class:`StoreUnavailableError` whose message
    starts with ``injected:``; :attr:`injected` lists them in order.
    """

    def __init__(self, inner: LogStore, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.calls: Counter[str] = Counter()
        self.injected: list[Injected] = []
        self._rng = random.Random(plan.seed)

    def _decide(self, method: str) -> tuple[int, Phase | None]:
        self.calls[method] += 1
        call = self.calls[method]
        for fault in self.plan.faults:
            if fault.method == method and fault.call == call:
                return call, fault.phase
        if method in self.plan.methods and self.plan.probability:
            if self._rng.random() < self.plan.probability:
                phase: Phase = "before" if self._rng.random() < 0.5 else "after"
                return call, phase
        return call, None

    def _run(self, method: str, fn: Callable[[], T]) -> T:
        call, phase = self._decide(method)
        if phase == "before":
            self.injected.append(Injected(method, call, phase))
            raise StoreUnavailableError(f"injected: {method} call {call} failed before saving")
        result = fn()
        if phase == "after":
            self.injected.append(Injected(method, call, phase))
            raise StoreUnavailableError(f"injected: {method} call {call} failed after saving")
        return result

    def next_index(self) -> int:
        return self._run("next_index", self.inner.next_index)

    def append(self, entries: Iterable[bytes]) -> tuple[int, int]:
        return self._run("append", lambda: self.inner.append(entries))

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return self._run("read_entries", lambda: self.inner.read_entries(start, end))

    def integrated(self) -> IntegratedState:
        return self._run("integrated", self.inner.integrated)

    def read_tiles(self, keys: Sequence[TileKey]) -> list[bytes | None]:
        return self._run("read_tiles", lambda: self.inner.read_tiles(keys))

    def integrate(
        self, *, old_size: int, new_size: int, tiles: dict[TileKey, bytes], checkpoint: bytes
    ) -> None:
        self._run(
            "integrate",
            lambda: self.inner.integrate(
                old_size=old_size, new_size=new_size, tiles=tiles, checkpoint=checkpoint
            ),
        )

    def close(self) -> None:
        self.inner.close()


# -- independent Merkle arithmetic (RFC 9162 / C2SP tlog-tiles) ---------------


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def _subtree_root(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH over already-hashed leaves (any count ≥ 1)."""
    if len(hashes) == 1:
        return hashes[0]
    split = 1 << ((len(hashes) - 1).bit_length() - 1)  # largest power of 2 below len
    return _node_hash(_subtree_root(hashes[:split]), _subtree_root(hashes[split:]))


def tree_head(entries: Sequence[bytes]) -> bytes:
    """The RFC 9162 tree head of ``entries``."""
    if not entries:
        return sha256(b"").digest()
    return _subtree_root([leaf_hash(e) for e in entries])


def expected_tiles(entries: Sequence[bytes]) -> dict[TileKey, bytes]:
    """Every hash tile (full, and the partial one per level) of a tree of ``entries``."""
    tiles: dict[TileKey, bytes] = {}
    row = [leaf_hash(e) for e in entries]
    level = 0
    while row:
        for index in range(0, len(row), 256):
            tiles[(level, index // 256)] = b"".join(row[index : index + 256])
        row = [_subtree_root(row[i : i + 256]) for i in range(0, len(row) - 255, 256)]
        level += 1
    return tiles


# -- the invariant checker and a reference integrator -------------------------


def check_invariants(store: LogStore) -> bytes:
    """Assert what must hold in any store at rest; return the integrated tree head.

    (1) Indexes are contiguous: entries 0..N-1 read back, N does not.
    (2) 0 ≤ integrated size ≤ N, and a non-zero size has a checkpoint.
    (3) Every tile the integrated size covers equals the recomputed hashes,
        and the next tile of each level is not stored.
    """
    # (1)
    n = store.next_index()
    entries = store.read_entries(0, n)
    assert len(entries) == n and all(isinstance(e, bytes) for e in entries)
    try:
        store.read_entries(n, n + 1)
    except NotFoundError:
        pass
    else:
        raise AssertionError(f"entry {n} is readable but next_index is {n}")
    # (2)
    state = store.integrated()
    assert 0 <= state.size <= n, f"integrated size {state.size} outside 0..{n}"
    assert state.size == 0 or state.checkpoint is not None, "integrated tiles without checkpoint"
    # (3)
    want = expected_tiles(entries[: state.size])
    levels = {level for level, _ in want} | {0}
    beyond = [(lv, 1 + max((ix for (l2, ix) in want if l2 == lv), default=-1)) for lv in levels]
    keys = [*want, *beyond]
    got = store.read_tiles(keys)
    for key, blob in zip(keys, got, strict=True):
        if key in want:
            assert blob == want[key], f"tile {key} does not match the entries"
        else:
            assert blob is None, f"tile {key} lies beyond the integrated size {state.size}"
    return tree_head(entries[: state.size])


def fake_checkpoint(size: int, root: bytes) -> bytes:
    """The stand-in checkpoint :func:`integrate_all` stores (custodes.tlog signs real ones)."""
    return f"test-checkpoint\n{size}\n{root.hex()}\n".encode()


def integrate_all(store: LogStore) -> int:
    """Integrate every sequenced entry as the sequencer would; return the new size."""
    state = store.integrated()
    keys = TileState.tiles_needed(state.size)
    found = store.read_tiles(keys)
    tiles = TileState.from_tiles(
        state.size, {k: v for k, v in zip(keys, found, strict=True) if v is not None}
    )
    target = store.next_index()
    entries = store.read_entries(state.size, target)
    changed = tiles.extend([leaf_hash(e) for e in entries])
    store.integrate(
        old_size=state.size,
        new_size=target,
        tiles=changed,
        checkpoint=fake_checkpoint(target, tiles.root()),
    )
    return target


@dataclass
class Ledger:
    """What a client was told: every acknowledged append, to check after crashes."""

    acknowledged: list[tuple[int, list[bytes]]] = field(default_factory=list)

    def check(self, store: LogStore) -> None:
        for first, batch in self.acknowledged:
            assert store.read_entries(first, first + len(batch)) == batch, (
                f"acknowledged entries at {first} were lost or changed"
            )
