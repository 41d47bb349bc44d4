"""Growing the hash tiles of a log as entries are integrated.

The log keeps its Merkle tree as C2SP hash tiles of height 8: a tile at tile
level ``t`` holds up to 256 hashes of complete subtrees of height ``8*t``.
Integration needs only the rightmost (partial) tile of each level: new leaf
hashes are appended to the level-0 tile; every time a tile fills, the root of
its 256 hashes becomes the next hash of the tile one level up.

The tree head for any size follows from those partial tiles alone: each
level's partial tile splits, by the binary digits of its width, into perfect
subtrees; together they are the tree's right edge, folded right to left.

This is the sequencer's hot path, so it hashes with ``hashlib`` directly
and in batches rather than node by node.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

__all__ = ["TileState", "perfect_root", "right_edge"]

_WIDTH = 256
_HEIGHT = 8
_EMPTY_ROOT = sha256(b"").digest()


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree whose bottom row is ``hashes`` (a power of 2)."""
    row = list(hashes)
    prefix = b"\x01"
    while len(row) > 1:
        row = [sha256(prefix + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)]
    return row[0]


def _split(hashes: Sequence[bytes]) -> list[bytes]:
    """Perfect subtree roots of a partial row, largest first (one per 1-bit of its width)."""
    out: list[bytes] = []
    pos = 0
    n = len(hashes)
    for bit in range(_HEIGHT - 1, -1, -1):
        span = 1 << bit
        if n & span:
            out.append(perfect_root(hashes[pos : pos + span]))
            pos += span
    return out


def right_edge(partials: Sequence[Sequence[bytes]]) -> list[bytes]:
    """The roots of the maximal perfect subtrees of the tree, largest first.

    ``partials[t]`` is the content of the partial tile at tile level ``t``
    (empty where that level's rightmost tile is full or absent).
    """
    edge: list[bytes] = []
    for level in range(len(partials) - 1, -1, -1):
        edge.extend(_split(partials[level]))
    return edge


def fold_edge(edge: Sequence[bytes]) -> bytes:
    """The tree head from its right edge."""
    if not edge:
        return _EMPTY_ROOT
    root = edge[-1]
    for h in reversed(edge[:-1]):
        root = sha256(b"\x01" + h + root).digest()
    return root


class TileState:
    """The partial tiles of a tree of ``size`` leaves, grown by :meth:`extend`.

    ``partials[t]`` holds the hashes in the rightmost tile of tile level ``t``
    that is not yet full.  The state is only the right edge of the tree, so
    its memory does not grow with the log.
    """

    __slots__ = ("size", "partials")

    def __init__(self, size: int, partials: list[list[bytes]]) -> None:
        self.size = size
        self.partials = partials

    @classmethod
    def empty(cls) -> TileState:
        return cls(0, [[]])

    @staticmethod
    def tiles_needed(size: int) -> list[tuple[int, int]]:
        """The ``(level, index)`` of each partial tile that a tree of ``size`` has."""
        keys: list[tuple[int, int]] = []
        level = 0
        while True:
            count = size >> (_HEIGHT * level)
            if count % _WIDTH:
                keys.append((level, count // _WIDTH))
            if count < _WIDTH:
                break
            level += 1
        return keys

    @classmethod
    def from_tiles(cls, size: int, tiles: dict[tuple[int, int], bytes]) -> TileState:
        """Rebuild from the stored partial tiles (as :meth:`tiles_needed` lists them)."""
        partials: list[list[bytes]] = []
        level = 0
        while True:
            count = size >> (_HEIGHT * level)
            width = count % _WIDTH
            row: list[bytes] = []
            if width:
                data = tiles.get((level, count // _WIDTH))
                if data is None or len(data) < 32 * width:
                    raise ValueError(f"tile {level}/{count // _WIDTH} is missing or short")
                row = [data[i : i + 32] for i in range(0, 32 * width, 32)]
            partials.append(row)
            if count < _WIDTH:
                break
            level += 1
        return cls(size, partials)

    def root(self) -> bytes:
        """The tree head of the current size."""
        return fold_edge(right_edge(self.partials))

    def extend(self, leaf_hashes: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
        """Add leaves; return every tile that changed, as stored bytes.

        Full tiles are returned once, when they fill; the partial tile of each
        level is returned whenever it grew.
        """
        changed: dict[tuple[int, int], bytes] = {}
        self._grow(0, self.size, leaf_hashes, changed)
        self.size += len(leaf_hashes)
        return changed

    def extend_hashed(self, blob: bytes, roots: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
        """Add leaves hashed elsewhere: ``blob`` is their leaf hashes, concatenated.

        The tree's size must be a multiple of 256 (no partial level-0 tile), and
        ``roots`` must be the :func:`perfect_root` of each full 256-leaf group
        of ``blob``, in order.  This is how integration spreads the hashing of
        a large batch over several processes and merges it here.
        """
        if self.size % _WIDTH:
            raise ValueError("extend_hashed needs a tree whose size is a multiple of 256")
        count = len(blob) // 32
        full = count // _WIDTH
        if len(blob) % 32 or len(roots) != full:
            raise ValueError("extend_hashed needs one root per full tile of hashes")
        changed: dict[tuple[int, int], bytes] = {}
        first_tile = self.size // _WIDTH
        step = 32 * _WIDTH
        for i in range(full):
            changed[(0, first_tile + i)] = blob[i * step : (i + 1) * step]
        tail = blob[full * step :]
        if tail:
            changed[(0, first_tile + full)] = tail
        self.partials[0] = [tail[i : i + 32] for i in range(0, len(tail), 32)]
        self._grow(1, first_tile, roots, changed)
        self.size += count
        return changed

    def _grow(
        self,
        level: int,
        first: int,
        incoming: Sequence[bytes],
        changed: dict[tuple[int, int], bytes],
    ) -> None:
        """Append ``incoming`` nodes at tile ``level``; ``first`` is the first one's index."""
        while incoming:
            while level >= len(self.partials):
                self.partials.append([])
            row = self.partials[level]
            tile_index = first // _WIDTH
            start = first % _WIDTH
            assert start == len(row)
            stream = row + list(incoming) if row else list(incoming)
            full = len(stream) // _WIDTH
            parents: list[bytes] = []
            for i in range(full):
                chunk = stream[i * _WIDTH : (i + 1) * _WIDTH]
                changed[(level, tile_index + i)] = b"".join(chunk)
                parents.append(perfect_root(chunk))
            rest = stream[full * _WIDTH :]
            if rest:
                changed[(level, tile_index + full)] = b"".join(rest)
            self.partials[level] = rest
            incoming = parents
            first = tile_index
            level += 1
