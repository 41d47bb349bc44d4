"""Tiles and entry bundles (C2SP tlog-tiles, tile height 8, width 256).

A tiled log publishes its tree as static files. A hash tile at level ``L``
holds up to 256 consecutive hashes of tree level ``8 * L``, 32 bytes each:
tile ``n`` of level ``L`` holds the nodes ``(8L, 256n + i)``. The nodes of
the seven tree levels between two tile levels are recomputed by hashing. An
entry bundle holds up to 256 consecutive entries, each a big-endian uint16
length then the entry's bytes, and hashes to the level-0 tile of the same
index.

Paths split the index into 3-digit groups, all but the last prefixed ``x``;
tiles narrower than 256 (the rightmost, *partial*, ones) end in ``.p/<width>``::

    Tile(level=0, index=1234067, width=256)     tile/0/x001/x234/067
    Tile(level=1, index=0, width=3)             tile/1/000.p/3
    Tile(level=-1, index=1234, width=12)        tile/entries/x001/234.p/12

Entry bundles are tiles with ``level == ENTRIES_LEVEL`` (-1).

Worked example: a log of 1,000 entries is published as bundles and level-0
tiles 000, 001, 002 (full) and 003.p/232, and the level-1 tile 000.p/3,
whose three hashes are the roots of the three full level-0 tiles. Node
``(9, 1)`` (leaves 512..1023) is not complete at size 1000; node ``(9, 0)``
is read from tile ``1/000.p/3`` by hashing its first two hashes.

:class:`TreeVerifier` recomputes a log from its bundles, checking each hash
tile against the entries; it keeps, per tile level, a window of the newest tiles.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from custodes.errors import BundleError, ProofError, TileError
from custodes.tlog._text import parse_decimal
from custodes.tlog.merkle import HASH_SIZE, HashReader, RightEdge

__all__ = [
    "ENTRIES_LEVEL",
    "MAX_ENTRY_SIZE",
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TileFetcher",
    "TreeVerifier",
    "bundles_for_size",
    "format_entry_bundle",
    "format_hash_tile",
    "parse_entry_bundle",
    "parse_hash_tile",
    "parse_tile_path",
    "tile_hash_reader",
    "tile_path",
    "tiles_for_size",
]

TILE_HEIGHT = 8
TILE_WIDTH = 256
ENTRIES_LEVEL = -1
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF

_MAX_INDEX = 1 << 63
_GROUP = re.compile("[0-9]{3}")
_sha256 = hashlib.sha256
_U16 = struct.Struct(">H")

TileFetcher = Callable[[int, int, int], bytes]
"""``get_tile(level, index, width)``: the stored bytes of that hash tile."""


@dataclass(frozen=True, kw_only=True)
class Tile:
    """A hash tile (``level >= 0``) or an entry bundle (``level == ENTRIES_LEVEL``)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not ENTRIES_LEVEL <= self.level <= MAX_TILE_LEVEL:
            raise TileError(f"A tile level must be in -1..63, not {self.level}.")
        if not 0 <= self.index < _MAX_INDEX:
            raise TileError(f"A tile index must be in 0..2**63-1, not {self.index}.")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"A tile width must be in 1..256, not {self.width}.")

    @property
    def is_entries(self) -> bool:
        """Whether this is an entry bundle rather than a hash tile."""
        return self.level == ENTRIES_LEVEL

    @property
    def is_partial(self) -> bool:
        """Whether it holds fewer than 256 hashes or entries."""
        return self.width < TILE_WIDTH


# -- paths -------------------------------------------------------------------------


def tile_path(tile: Tile) -> str:
    """The path of ``tile`` under the log prefix, e.g. ``tile/0/x001/x234/067``."""
    n = tile.index
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    level = "entries" if tile.is_entries else str(tile.level)
    path = f"tile/{level}/{'/'.join(reversed(groups))}"
    if tile.width < TILE_WIDTH:
        path += f".p/{tile.width}"
    return path


def parse_tile_path(path: str) -> Tile:
    """The tile a canonical path names; raises :class:`TileError` otherwise."""
    if not isinstance(path, str):
        raise TileError("A tile path must be a string.")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError(f"The tile path {path!r} does not start with 'tile/<level>/'.")
    if parts[1] == "entries":
        level = ENTRIES_LEVEL
    else:
        parsed = parse_decimal(parts[1], MAX_TILE_LEVEL + 1)
        if parsed is None:
            raise TileError(
                f"The tile level {parts[1]!r} is not 'entries' or a canonical decimal in 0..63."
            )
        level = parsed
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        parsed = parse_decimal(rest[-1], TILE_WIDTH)
        if parsed is None or parsed == 0:
            raise TileError(
                f"The partial tile width {rest[-1]!r} is not a canonical decimal in 1..255."
            )
        width = parsed
        rest = [*rest[:-2], rest[-2][:-2]]
    if len(rest) > 7:
        raise TileError(f"The tile path {path!r} has too many index groups.")
    index = 0
    for i, group in enumerate(rest):
        last = i == len(rest) - 1
        digits = group if last else group[1:]
        if (not last and not group.startswith("x")) or _GROUP.fullmatch(digits) is None:
            raise TileError(
                f"The tile index group {group!r} is not 3 digits"
                + (" after an 'x'." if not last else ".")
            )
        if i == 0 and not last and digits == "000":
            raise TileError(f"The tile index in {path!r} has a leading zero group.")
        index = index * 1000 + int(digits)
    if index >= _MAX_INDEX:
        raise TileError(f"The tile index in {path!r} is too large.")
    return Tile(level=level, index=index, width=width)


# -- which tiles a tree needs ------------------------------------------------------


def tiles_for_size(size: int) -> list[Tile]:
    """Every hash tile of the tree of ``size``: the full ones and the partial one, per level."""
    if not 0 <= size < _MAX_INDEX:
        raise TileError(f"A tree size must be in 0..2**63-1, not {size}.")
    tiles: list[Tile] = []
    level = 0
    n = size
    while n:
        tiles.extend(_row(level, n))
        level += 1
        n >>= TILE_HEIGHT
    return tiles


def bundles_for_size(size: int) -> list[Tile]:
    """Every entry bundle of the tree of ``size``."""
    if not 0 <= size < _MAX_INDEX:
        raise TileError(f"A tree size must be in 0..2**63-1, not {size}.")
    return _row(ENTRIES_LEVEL, size)


def _row(level: int, n: int) -> list[Tile]:
    full, partial = divmod(n, TILE_WIDTH)
    row = [Tile(level=level, index=i, width=TILE_WIDTH) for i in range(full)]
    if partial:
        row.append(Tile(level=level, index=full, width=partial))
    return row


# -- hash tiles and entry bundles --------------------------------------------------


def format_hash_tile(hashes: Sequence[bytes]) -> bytes:
    """The stored bytes of a hash tile: the hashes, concatenated."""
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise TileError(f"A hash tile holds 1..256 hashes, not {len(hashes)}.")
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise TileError(f"A hash tile holds 32-byte hashes, not {len(h)}-byte ones.")
    return b"".join(hashes)


def parse_hash_tile(data: bytes, width: int | None = None) -> list[bytes]:
    """The hashes in a stored hash tile, of exactly ``width`` hashes when given."""
    size = len(data)
    if size % HASH_SIZE or not 1 <= size // HASH_SIZE <= TILE_WIDTH:
        raise TileError(
            f"A hash tile is 32 to 8192 bytes in whole 32-byte hashes; this one is {size} bytes."
        )
    count = size // HASH_SIZE
    if width is not None and count != width:
        raise TileError(f"The hash tile holds {count} hashes, but {width} were expected.")
    raw = bytes(data)
    return [raw[i : i + HASH_SIZE] for i in range(0, size, HASH_SIZE)]


def format_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """The stored bytes of an entry bundle: each entry after its big-endian uint16 length."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise BundleError(f"An entry bundle holds 1..256 entries, not {len(entries)}.")
    lengths = list(map(len, entries))
    if max(lengths) > MAX_ENTRY_SIZE:
        raise BundleError(
            f"An entry of {max(lengths)} bytes does not fit an entry bundle (at most 65535)."
        )
    # Lengths and entries interleaved, all in C loops (a server formats every bundle it serves).
    parts: list[bytes] = [b""] * (2 * len(entries))
    parts[0::2] = map(_U16.pack, lengths)
    parts[1::2] = entries
    return b"".join(parts)


_ENTRY_SLOTS = range(TILE_WIDTH)


def parse_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """The entries in a stored entry bundle, exactly ``width`` of them when given."""
    raw = bytes(data)
    end = len(raw)
    entries: list[bytes] = []
    add = entries.append
    # One pass with as few operations an entry as can be (verifiers parse millions); any
    # fault, or more than 256 entries, is left for the careful pass to name.
    at = nxt = 2  # ``at``: where the entry starts, after its length
    try:
        for _ in _ENTRY_SLOTS:
            nxt = at + ((raw[at - 2] << 8) | raw[at - 1])
            add(raw[at:nxt])
            if nxt >= end:
                break
            at = nxt + 2
    except IndexError:
        nxt = -1
    if nxt != end:
        entries = _parse_entry_bundle_strictly(raw)
    if width is not None and len(entries) != width:
        raise BundleError(
            f"The entry bundle holds {len(entries)} entries, but {width} were expected."
        )
    return entries


def _parse_entry_bundle_strictly(raw: bytes) -> list[bytes]:
    """The entries in ``raw``, checked at every step, saying where a bad bundle goes wrong."""
    end = len(raw)
    entries: list[bytes] = []
    at = 0
    while at < end:
        if len(entries) == TILE_WIDTH:
            raise BundleError("The entry bundle holds more than 256 entries.")
        if at + 2 > end:
            raise BundleError(f"The entry bundle ends inside the length of entry {len(entries)}.")
        length = (raw[at] << 8) | raw[at + 1]
        at += 2
        if at + length > end:
            raise BundleError(
                f"The entry bundle ends inside entry {len(entries)}, which claims {length} bytes."
            )
        entries.append(raw[at : at + length])
        at += length
    if not entries:
        raise BundleError("An entry bundle must hold at least one entry.")
    return entries


# -- reading the tree from tiles ---------------------------------------------------


def _tile_width(level: int, index: int, size: int) -> int:
    n = size >> (TILE_HEIGHT * level)
    return TILE_WIDTH if index < n >> TILE_HEIGHT else n & (TILE_WIDTH - 1)


def _subtree_root(hashes: list[bytes]) -> bytes:
    """The root over a power-of-two count of hashes, pairwise."""
    sha = _sha256
    while len(hashes) > 1:
        it = iter(hashes)
        hashes = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=True)]
    return hashes[0]


def tile_hash_reader(size: int, get_tile: TileFetcher) -> HashReader:
    """A :data:`HashReader` for the tree of ``size`` over its stored hash tiles.

    Node ``(L, i)`` lives in tile level ``L // 8``; when ``L % 8`` is not 0 it
    is recomputed from the ``2**(L % 8)`` tile hashes beneath it. Each call of
    the reader fetches each tile it needs once, at the width the tree of
    ``size`` publishes it.
    """
    if not 0 <= size < _MAX_INDEX:
        raise TileError(f"A tree size must be in 0..2**63-1, not {size}.")

    def read(nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        # (1) Locate every node's hashes in a tile.
        plan: list[tuple[tuple[int, int], int, int]] = []
        wanted: dict[tuple[int, int], int] = {}
        for level, index in nodes:
            if level < 0 or index < 0 or (index + 1) << level > size:
                raise ProofError(
                    f"Node ({level}, {index}) is not a complete subtree of the tree of size {size}."
                )
            tile_level, height = divmod(level, TILE_HEIGHT)
            first = index << height
            key = (tile_level, first >> TILE_HEIGHT)
            wanted.setdefault(key, _tile_width(tile_level, key[1], size))
            plan.append((key, first & (TILE_WIDTH - 1), 1 << height))
        # (2) Fetch each tile once.
        tiles: dict[tuple[int, int], list[bytes]] = {}
        for (tile_level, tile_index), width in wanted.items():
            data = get_tile(tile_level, tile_index, width)
            tiles[(tile_level, tile_index)] = parse_hash_tile(data, width)
        # (3) Hash up to each node.
        return [_subtree_root(tiles[key][at : at + count]) for key, at, count in plan]

    return read


class TreeVerifier:
    """Recompute a log from its entry bundles, and check its hash tiles against them.

    Add bundles in order (:meth:`add_bundle`); a partial bundle may be added
    again later with more entries. A hash tile can be checked
    (:meth:`check_hash_tile`) once the entries under it are added; the
    verifier keeps the newest ``window`` tiles of each level (by default 256:
    the last 65,536 entries at level 0), so a streaming client checks each
    tile soon after its entries.
    """

    __slots__ = ("_edge", "_partial", "_tiles", "_window")

    def __init__(self, *, window: int = 256) -> None:
        if window < 1:
            raise TileError(f"A tree verifier must keep at least one tile per level, not {window}.")
        self._window = window
        self._edge = RightEdge()  # the full bundles, 256 leaves at a time
        self._partial: list[bytes] = []  # leaf hashes of a trailing partial bundle
        self._tiles: list[dict[int, list[bytes]]] = [{}]

    @property
    def size(self) -> int:
        """The number of entries added."""
        return self._edge.size + len(self._partial)

    def _keep(self, level: int, index: int, hashes: list[bytes]) -> None:
        while len(self._tiles) <= level:
            self._tiles.append({})
        row = self._tiles[level]
        row[index] = hashes
        if len(row) > self._window:
            del row[next(iter(row))]  # tiles arrive in order: the first is the oldest

    def add_bundle(self, index: int, entries: Sequence[bytes]) -> list[bytes]:
        """Add bundle ``index`` and return its leaf hashes.

        The bundle is the next one, or the trailing partial one again, grown.
        """
        count = len(entries)
        if not 1 <= count <= TILE_WIDTH:
            raise BundleError(f"An entry bundle holds 1..256 entries, not {count}.")
        expected = self._edge.size >> TILE_HEIGHT
        if index != expected:
            raise BundleError(
                f"Bundle {index} is out of order: the next bundle to verify is {expected}."
            )
        sha = _sha256
        leaves = [sha(b"\x00" + entry).digest() for entry in entries]
        partial = self._partial
        if partial:
            if count < len(partial):
                raise ProofError(
                    f"Bundle {index} now holds {count} entries, fewer than the "
                    f"{len(partial)} already verified."
                )
            if leaves[: len(partial)] != partial:
                raise ProofError(f"Bundle {index} changes entries that were already verified.")
        self._keep(0, index, leaves)
        if count < TILE_WIDTH:
            self._partial = leaves
            return leaves
        self._partial = []
        self._add_root(_subtree_root(leaves))
        return leaves

    def add_bundle_root(self, index: int, root: bytes) -> None:
        """Add full bundle ``index`` by the root of its 256 leaves, hashed elsewhere.

        For clients that hash bundles in several processes: the caller has
        checked the bundle's level-0 tile itself, so only the tiles above it
        are kept here.
        """
        expected = self._edge.size >> TILE_HEIGHT
        if index != expected or self._partial:
            raise BundleError(
                f"Bundle {index} is out of order: the next bundle to verify is {expected}."
            )
        self._add_root(root)

    def _add_root(self, root: bytes) -> None:
        for level, node_index, h in self._edge.append_subtree(TILE_HEIGHT, root):
            if level % TILE_HEIGHT == 0:
                tile_level = level // TILE_HEIGHT
                tile_index = node_index >> TILE_HEIGHT
                row = self._tiles[tile_level] if tile_level < len(self._tiles) else {}
                current = row.get(tile_index)
                if current is None:
                    self._keep(tile_level, tile_index, [h])
                else:
                    current.append(h)

    def check_hash_tile(self, level: int, index: int, data: bytes) -> None:
        """Check a stored hash tile against the hashes computed from the entries added."""
        if level < 0:
            raise TileError("Only hash tiles can be checked; entry bundles are added instead.")
        hashes = parse_hash_tile(data)
        tile = Tile(level=level, index=index, width=len(hashes))
        name = tile_path(tile)
        available = self.size >> (TILE_HEIGHT * level)
        if index * TILE_WIDTH + len(hashes) > available:
            raise ProofError(
                f"Hash tile {name} covers entries beyond the {self.size} verified so far."
            )
        row = self._tiles[level] if level < len(self._tiles) else {}
        computed = row.get(index)
        if computed is None:
            raise ProofError(
                f"Hash tile {name} is older than the tiles this verifier keeps; check each "
                "tile as its entries are added."
            )
        for i, (got, want) in enumerate(zip(hashes, computed, strict=False)):
            if got != want:
                raise ProofError(f"Hash tile {name} does not match the entries: hash {i} differs.")

    def tile_hashes(self, level: int, index: int) -> list[bytes] | None:
        """The hashes of tile ``index`` of ``level`` at the current size, if still kept.

        Level 0 holds the leaf hashes of a bundle; above, the roots of the
        complete subtrees of ``256**level`` leaves.  None once it fell out of
        the window.
        """
        if not 0 <= level < len(self._tiles):
            return None
        hashes = self._tiles[level].get(index)
        return list(hashes) if hashes is not None else None

    def root(self) -> bytes:
        """The tree head over every entry added."""
        if not self._partial:
            return self._edge.root()
        tail = RightEdge()
        tail.extend(self._partial)
        hashes = [*self._edge.hashes, *tail.hashes]
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = _sha256(b"\x01" + h + acc).digest()
        return acc
