"""Tiles and entry bundles: paths, formats, reading a tree from tiles, TreeVerifier."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import BundleError, ProofError, TileError
from custodes.tlog import (
    ENTRIES_LEVEL,
    HashReader,
    MemoryTree,
    RightEdge,
    Tile,
    TreeVerifier,
    bundles_for_size,
    format_entry_bundle,
    format_hash_tile,
    leaf_hash,
    parse_entry_bundle,
    parse_hash_tile,
    parse_tile_path,
    prove_consistency,
    prove_inclusion,
    tile_hash_reader,
    tile_path,
    tiles_for_size,
    tree_root,
)

from .helpers import assert_sentence

ENTRIES = [i.to_bytes(3, "big") * (i % 5) for i in range(70_000)]
TREE = MemoryTree(leaf_hash(e) for e in ENTRIES)

tiles = st.builds(
    Tile,
    level=st.integers(ENTRIES_LEVEL, 63),
    index=st.integers(0, 2**63 - 1) | st.integers(0, 5000),
    width=st.integers(1, 256),
)


def stored_tile(tree: MemoryTree, level: int, index: int, width: int) -> bytes:
    nodes = [(8 * level, index * 256 + i) for i in range(width)]
    return format_hash_tile(tree.read_hashes(nodes))


# -- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(level=0, index=1234067), "tile/0/x001/x234/067"),
        (Tile(level=1, index=0, width=5), "tile/1/000.p/5"),
        (Tile(level=-1, index=1234, width=12), "tile/entries/x001/234.p/12"),
        (Tile(level=63, index=999), "tile/63/999"),
        (Tile(level=2, index=1000, width=255), "tile/2/x001/000.p/255"),
        (Tile(level=0, index=1_000_000), "tile/0/x001/x000/000"),
    ],
)
def test_tile_paths(tile: Tile, path: str) -> None:
    assert tile_path(tile) == path
    assert parse_tile_path(path) == tile


@settings(max_examples=300, deadline=None)
@given(tile=tiles)
def test_tile_path_round_trip(tile: Tile) -> None:
    assert parse_tile_path(tile_path(tile)) == tile


BAD_PATHS = {
    "four_digit_group": "tile/0/1234",
    "two_digit_group": "tile/0/12",
    "x_on_last_group": "tile/0/x067",
    "missing_x_on_inner_group": "tile/0/001/234",
    "leading_zero_group": "tile/0/x000/067",
    "width_zero": "tile/0/067.p/0",
    "width_256_as_partial": "tile/0/067.p/256",
    "width_with_leading_zero": "tile/0/067.p/05",
    "width_missing": "tile/0/067.p",
    "width_empty": "tile/0/067.p/",
    "width_not_decimal": "tile/0/067.p/+5",
    "level_with_leading_zero": "tile/00/067",
    "level_64": "tile/64/067",
    "level_negative": "tile/-1/067",
    "level_named_entry": "tile/entry/067",
    "no_index": "tile/0/",
    "no_level": "tile/067",
    "wrong_root": "tiles/0/067",
    "leading_slash": "/tile/0/067",
    "trailing_slash": "tile/0/067/",
    "unicode_digits": "tile/0/٠٦٧",
    "partial_marker_on_inner_group": "tile/0/x001.p/067",
    "too_many_groups": "tile/0/" + "x001/" * 7 + "000",
    "empty": "",
}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_bad_tile_path(path: str) -> None:
    with pytest.raises(TileError) as err:
        parse_tile_path(path)
    assert_sentence(err.value)


@pytest.mark.parametrize(
    "fields",
    [{"level": -2, "index": 0}, {"level": 64, "index": 0}, {"level": 0, "index": -1}]
    + [{"level": 0, "index": 0, "width": w} for w in (0, 257)],
    ids=["level_minus_2", "level_64", "negative_index", "width_0", "width_257"],
)
def test_bad_tile_fields(fields: dict[str, int]) -> None:
    with pytest.raises(TileError) as err:
        Tile(**fields)
    assert_sentence(err.value)


# -- which tiles --------------------------------------------------------------------------


def test_tiles_for_70000_as_in_the_spec() -> None:
    got = tiles_for_size(70_000)
    level0 = [t for t in got if t.level == 0]
    assert len(level0) == 274 and level0[-1] == Tile(level=0, index=273, width=112)
    assert [t for t in got if t.level == 1] == [
        Tile(level=1, index=0),
        Tile(level=1, index=1, width=17),
    ]
    assert [t for t in got if t.level == 2] == [Tile(level=2, index=0, width=1)]


def test_tiles_for_small_sizes() -> None:
    assert tiles_for_size(0) == [] and bundles_for_size(0) == []
    assert tiles_for_size(256) == [Tile(level=0, index=0), Tile(level=1, index=0, width=1)]
    assert bundles_for_size(257) == [
        Tile(level=-1, index=0),
        Tile(level=-1, index=1, width=1),
    ]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 2**20) | st.integers(0, 2**63 - 1).map(lambda n: n | 0xFFFF))
def test_tiles_cover_the_tree(size: int) -> None:
    if size >= 2**20:  # too many tiles to list; the last ones must still be right
        size &= 0xFFFF
    got = tiles_for_size(size)
    for level in range(4):
        row = [t for t in got if t.level == level]
        assert sum(t.width for t in row) == size >> (8 * level)
        assert [t.index for t in row] == list(range(len(row)))
        assert all(t.width == 256 for t in row[:-1])
    assert sum(t.width for t in bundles_for_size(size)) == size


# -- hash tiles and bundles ---------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(hashes=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=256))
def test_hash_tile_round_trip(hashes: list[bytes]) -> None:
    data = format_hash_tile(hashes)
    assert parse_hash_tile(data) == hashes
    assert parse_hash_tile(data, len(hashes)) == hashes


BAD_HASH_TILES = {
    "empty": (b"", None),
    "one_byte_short": (bytes(31), None),
    "one_byte_long": (bytes(33), None),
    "257_hashes": (bytes(32 * 257), None),
    "width_mismatch": (bytes(64), 3),
}


@pytest.mark.parametrize(("data", "width"), BAD_HASH_TILES.values(), ids=BAD_HASH_TILES.keys())
def test_bad_hash_tile(data: bytes, width: int | None) -> None:
    with pytest.raises(TileError) as err:
        parse_hash_tile(data, width)
    assert_sentence(err.value)


def test_format_hash_tile_refuses() -> None:
    with pytest.raises(TileError):
        format_hash_tile([])
    with pytest.raises(TileError):
        format_hash_tile([bytes(31)])
    with pytest.raises(TileError):
        format_hash_tile([bytes(32)] * 257)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.binary(max_size=300), min_size=1, max_size=256))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    data = format_entry_bundle(entries)
    assert parse_entry_bundle(data) == entries
    assert parse_entry_bundle(data, len(entries)) == entries


def test_largest_entry() -> None:
    entry = b"x" * 65535
    assert parse_entry_bundle(format_entry_bundle([entry])) == [entry]


BAD_BUNDLES = {
    "empty": (b"", None),
    "truncated_length": (b"\x00\x01a\x00", None),
    "truncated_data": (b"\x00\x05abc", None),
    "trailing_byte": (b"\x00\x01a\x00\x00\x07", None),
    "more_entries_than_width": (b"\x00\x01a\x00\x01b", 1),
    "fewer_entries_than_width": (b"\x00\x01a", 2),
    "257_entries": (b"\x00\x00" * 257, None),
}


@pytest.mark.parametrize(("data", "width"), BAD_BUNDLES.values(), ids=BAD_BUNDLES.keys())
def test_bad_entry_bundle(data: bytes, width: int | None) -> None:
    with pytest.raises(BundleError) as err:
        parse_entry_bundle(data, width)
    assert_sentence(err.value)


def test_oversize_entry_refused() -> None:
    with pytest.raises(BundleError, match="65536 bytes") as err:
        format_entry_bundle([b"x" * 65536])
    assert_sentence(err.value)
    with pytest.raises(BundleError):
        format_entry_bundle([])
    with pytest.raises(BundleError):
        format_entry_bundle([b""] * 257)


# -- reading a tree from tiles --------------------------------------------------------------


def tile_reader(size: int, calls: list[tuple[int, int, int]] | None = None) -> HashReader:
    def get_tile(level: int, index: int, width: int) -> bytes:
        if calls is not None:
            calls.append((level, index, width))
        assert Tile(level=level, index=index, width=width) in tiles_for_size(size)
        return stored_tile(TREE, level, index, width)

    return tile_hash_reader(size, get_tile)


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 65535, 65536, 65537, 70_000])
def test_tile_reader_roots_and_proofs(size: int) -> None:
    read = tile_reader(size)
    assert tree_root(size, read) == TREE.root(size)
    assert RightEdge.from_reader(size, read).root() == TREE.root(size)
    for index in {0, size // 3, size - 1}:
        assert prove_inclusion(index, size, read) == TREE.prove_inclusion(index, size)
    for old in {1, size // 2 or 1, size - 1 or 1, size}:
        assert prove_consistency(old, size, read) == TREE.prove_consistency(old, size)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 70_000), data=st.data())
def test_tile_reader_random_nodes(size: int, data: st.DataObject) -> None:
    level = data.draw(st.integers(0, size.bit_length() - 1))
    index = data.draw(st.integers(0, (size >> level) - 1))
    assert tile_reader(size)([(level, index)]) == TREE.read_hashes([(level, index)])


def test_tile_reader_fetches_each_tile_once() -> None:
    calls: list[tuple[int, int, int]] = []
    read = tile_reader(70_000, calls)
    read([(0, 0), (1, 0), (7, 0), (0, 255), (8, 0), (9, 0), (16, 0)])
    assert sorted(calls) == [(0, 0, 256), (1, 0, 256), (2, 0, 1)]


def test_tile_reader_refuses_incomplete_nodes() -> None:
    with pytest.raises(ProofError, match="not a complete subtree") as err:
        tile_reader(1000)([(9, 1)])
    assert_sentence(err.value)


def test_tile_reader_refuses_bad_tile_data() -> None:
    read = tile_hash_reader(1000, lambda level, index, width: bytes(32 * (width - 1)))
    with pytest.raises(TileError):
        read([(0, 999)])


# -- TreeVerifier ----------------------------------------------------------------------------


def bundles(size: int) -> list[tuple[int, list[bytes]]]:
    return [
        (t.index, ENTRIES[t.index * 256 : t.index * 256 + t.width]) for t in bundles_for_size(size)
    ]


def test_tree_verifier_streams_and_checks_tiles() -> None:
    verifier = TreeVerifier()
    for index, entries in bundles(70_000):
        verifier.add_bundle(index, entries)
        verifier.check_hash_tile(0, index, stored_tile(TREE, 0, index, len(entries)))
        if verifier.size % 65536 == 0:
            verifier.check_hash_tile(1, index // 256, stored_tile(TREE, 1, index // 256, 256))
    for tile in tiles_for_size(70_000):
        if tile.level > 0:
            verifier.check_hash_tile(tile.level, tile.index, stored_tile(TREE, **vars(tile)))
    assert verifier.root() == TREE.root(70_000)


def test_tree_verifier_partial_bundle_grows() -> None:
    verifier = TreeVerifier()
    verifier.add_bundle(0, ENTRIES[:10])
    assert verifier.root() == TREE.root(10)
    verifier.check_hash_tile(0, 0, stored_tile(TREE, 0, 0, 10))
    verifier.add_bundle(0, ENTRIES[:200])
    assert verifier.root() == TREE.root(200)
    verifier.add_bundle(0, ENTRIES[:256])
    verifier.add_bundle(1, ENTRIES[256:300])
    assert verifier.size == 300 and verifier.root() == TREE.root(300)
    verifier.check_hash_tile(0, 0, stored_tile(TREE, 0, 0, 256))
    verifier.check_hash_tile(0, 0, stored_tile(TREE, 0, 0, 17))  # an older partial tile
    verifier.check_hash_tile(1, 0, stored_tile(TREE, 1, 0, 1))


def test_tree_verifier_empty() -> None:
    assert TreeVerifier().root() == TREE.root(0) and TreeVerifier().size == 0


def test_tree_verifier_refuses_bundle_out_of_order() -> None:
    verifier = TreeVerifier()
    with pytest.raises(BundleError, match="out of order") as err:
        verifier.add_bundle(1, ENTRIES[256:512])
    assert_sentence(err.value)
    verifier.add_bundle(0, ENTRIES[:100])
    with pytest.raises(BundleError, match="next bundle to verify is 0"):
        verifier.add_bundle(1, ENTRIES[256:512])


def test_tree_verifier_refuses_changed_entries() -> None:
    verifier = TreeVerifier()
    verifier.add_bundle(0, ENTRIES[:100])
    with pytest.raises(ProofError, match="changes entries") as err:
        verifier.add_bundle(0, [b"other", *ENTRIES[1:256]])
    assert_sentence(err.value)
    with pytest.raises(ProofError, match="fewer than the 100"):
        verifier.add_bundle(0, ENTRIES[:50])


def test_tree_verifier_refuses_bad_bundle_size() -> None:
    with pytest.raises(BundleError):
        TreeVerifier().add_bundle(0, [])
    with pytest.raises(BundleError):
        TreeVerifier().add_bundle(0, [b""] * 257)


def test_tree_verifier_names_the_mismatched_tile() -> None:
    verifier = TreeVerifier()
    for index, entries in bundles(1000):
        verifier.add_bundle(index, entries)
    data = bytearray(stored_tile(TREE, 0, 2, 256))
    data[32 * 7] ^= 1
    with pytest.raises(ProofError, match="tile/0/002 does not match the entries: hash 7") as err:
        verifier.check_hash_tile(0, 2, bytes(data))
    assert_sentence(err.value)
    with pytest.raises(ProofError, match="beyond the 1000 verified"):
        verifier.check_hash_tile(0, 3, stored_tile(TREE, 0, 3, 233))
    with pytest.raises(ProofError, match="beyond"):
        verifier.check_hash_tile(1, 0, stored_tile(TREE, 1, 0, 4))


def test_tree_verifier_window() -> None:
    verifier = TreeVerifier(window=2)
    for index, entries in bundles(1024):
        verifier.add_bundle(index, entries)
    verifier.check_hash_tile(0, 3, stored_tile(TREE, 0, 3, 256))
    with pytest.raises(ProofError, match="older than the tiles this verifier keeps"):
        verifier.check_hash_tile(0, 1, stored_tile(TREE, 0, 1, 256))
    with pytest.raises(TileError):
        TreeVerifier(window=0)
