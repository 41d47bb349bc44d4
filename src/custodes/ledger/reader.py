"""Reading a log out of its store: tiles, entry bundles, tree heads and proofs.

:class:`LogReader` needs no writer lock, so the HTTP server, ``log export``
and tests can read while the sequencer writes.  It serves only what the
store's signed checkpoint covers.
"""

from __future__ import annotations

from collections.abc import Sequence

from custodes.errors import NotFoundError
from custodes.ledger.store import LogStore
from custodes.ledger.tiling import perfect_root
from custodes.tlog import format_entry_bundle, prove_consistency, prove_inclusion, tree_root

__all__ = ["LogReader", "store_hash_reader"]

_WIDTH = 256
_HEIGHT = 8


def store_hash_reader(store: LogStore, size: int) -> _StoreHashReader:
    """A tlog ``HashReader`` answering node requests from the store's hash tiles."""
    return _StoreHashReader(store, size)


class _StoreHashReader:
    def __init__(self, store: LogStore, size: int) -> None:
        self._store = store
        self._size = size

    def __call__(self, nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        # (1) Work out which stored tile holds the bottom row of each node.
        plan: list[tuple[tuple[int, int], int, int]] = []
        keys: dict[tuple[int, int], None] = {}
        for level, index in nodes:
            if ((index + 1) << level) > self._size:
                raise NotFoundError(f"node {level}/{index} is beyond tree size {self._size}")
            tile_level, rest = divmod(level, _HEIGHT)
            first = index << rest
            key = (tile_level, first // _WIDTH)
            keys[key] = None
            plan.append((key, first % _WIDTH, 1 << rest))
        # (2) Read them in one call.
        order = list(keys)
        data = dict(zip(order, self._store.read_tiles(order), strict=True))
        # (3) Compute.
        out: list[bytes] = []
        for key, start, count in plan:
            blob = data[key]
            if blob is None or len(blob) < 32 * (start + count):
                raise NotFoundError(f"hash tile {key[0]}/{key[1]} is missing from the store")
            row = [blob[32 * i : 32 * i + 32] for i in range(start, start + count)]
            out.append(row[0] if count == 1 else perfect_root(row))
        return out


class LogReader:
    """Read-only access to a log's store."""

    def __init__(self, store: LogStore) -> None:
        self.store = store

    def checkpoint(self) -> bytes:
        state = self.store.integrated()
        if state.checkpoint is None:
            raise NotFoundError("the log has not signed a checkpoint yet")
        return state.checkpoint

    def size(self) -> int:
        return self.store.integrated().size

    def hash_tile(self, level: int, index: int, width: int) -> bytes:
        """The hash tile ``level/index`` at ``width`` hashes, if the log has reached it."""
        self._check_reached(level, index, width)
        blob = self.store.read_tiles([(level, index)])[0]
        if blob is None or len(blob) < 32 * width:
            raise NotFoundError(f"hash tile {level}/{index} of width {width} does not exist")
        return blob[: 32 * width]

    def entry_bundle(self, index: int, width: int) -> bytes:
        self._check_reached(0, index, width)
        return format_entry_bundle(self.store.read_entries(index * _WIDTH, index * _WIDTH + width))

    def _check_reached(self, level: int, index: int, width: int) -> None:
        if not 1 <= width <= _WIDTH:
            raise NotFoundError(f"a tile holds 1 to 256 hashes, not {width}")
        count = self.size() >> (_HEIGHT * level)
        if index * _WIDTH + width > count:
            raise NotFoundError(
                f"tile {level}/{index} of width {width} is beyond the log's signed size"
            )

    def root(self, size: int) -> bytes:
        return tree_root(size, store_hash_reader(self.store, size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise NotFoundError(f"index {index} is not in a tree of size {size}")
        return prove_inclusion(index, size, store_hash_reader(self.store, size))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(new_size)
        if not 0 < old_size <= new_size:
            raise NotFoundError(f"no consistency proof from size {old_size} to {new_size}")
        return prove_consistency(old_size, new_size, store_hash_reader(self.store, new_size))

    def _check_size(self, size: int) -> None:
        current = self.size()
        if not 0 < size <= current:
            raise NotFoundError(f"size {size} is not between 1 and the log's size {current}")
