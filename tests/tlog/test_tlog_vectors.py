"""custodes.tlog against the independent vectors (Go's sumdb/tlog and note), byte for byte."""

from __future__ import annotations

from custodes.tlog import (
    RightEdge,
    Signer,
    Tile,
    TreeVerifier,
    Verifier,
    bundles_for_size,
    check_consistency,
    check_inclusion,
    format_checkpoint,
    format_entry_bundle,
    format_hash_tile,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_entry_bundle,
    parse_hash_tile,
    parse_note,
    parse_tile_path,
    prove_consistency,
    prove_inclusion,
    sign_checkpoint,
    sign_note,
    tile_hash_reader,
    tile_path,
    tiles_for_size,
    tree_root,
)
from custodes.tlog.merkle import MemoryTree

from .helpers import Log1000


def test_every_leaf_hash(log1000: Log1000) -> None:
    assert len(log1000.entries) == 1000
    assert any(e == b"" for e in log1000.entries), "the vectors include empty entries"
    for entry, expected in zip(log1000.entries, log1000.leaf_hashes, strict=True):
        assert leaf_hash(entry) == expected


def test_root_for_every_size(log1000: Log1000, tree1000: MemoryTree) -> None:
    assert sorted(log1000.roots) == list(range(1, 1001))
    edge = RightEdge()
    for size in range(1, 1001):
        edge.append(log1000.leaf_hashes[size - 1])
        assert tree1000.root(size) == log1000.roots[size]
        assert edge.root() == log1000.roots[size]


def test_inclusion_proofs(log1000: Log1000, tree1000: MemoryTree) -> None:
    for index, size, proof in log1000.inclusion:
        assert tree1000.prove_inclusion(index, size) == proof
        check_inclusion(
            proof,
            index=index,
            size=size,
            leaf=log1000.leaf_hashes[index],
            root=log1000.roots[size],
        )


def test_consistency_proofs(log1000: Log1000, tree1000: MemoryTree) -> None:
    for old, new, proof in log1000.consistency:
        assert tree1000.prove_consistency(old, new) == proof
        check_consistency(
            proof,
            old_size=old,
            new_size=new,
            old_root=log1000.roots[old],
            new_root=log1000.roots[new],
        )


def test_checkpoint_verifies_with_the_verifier_key(log1000: Log1000) -> None:
    signed = open_checkpoint(log1000.checkpoint, Verifier.from_key(log1000.verifier_key))
    cp = signed.checkpoint
    assert (cp.origin, cp.size, cp.root_hash) == (log1000.origin, 1000, log1000.roots[1000])
    assert signed.raw == log1000.checkpoint
    assert [s.name for s in signed.note.verified] == [log1000.origin]
    assert format_checkpoint(parse_checkpoint(signed.note.text)) == signed.note.text


def test_signature_line_reproduced_by_signing(log1000: Log1000) -> None:
    signer = Signer.from_key(log1000.signer_key)
    assert signer.verifier_key == log1000.verifier_key
    cp = parse_checkpoint(parse_note(log1000.checkpoint).text)
    assert sign_checkpoint(cp, signer) == log1000.checkpoint
    assert sign_note(format_checkpoint(cp), signer) == log1000.checkpoint


def test_tile_files_parse_and_match(log1000: Log1000, tree1000: MemoryTree) -> None:
    files = sorted(
        str(p.relative_to(log1000.root)) for p in (log1000.root / "tile").rglob("*") if p.is_file()
    )
    expected = sorted(tile_path(t) for t in [*tiles_for_size(1000), *bundles_for_size(1000)])
    assert files == expected
    for name in files:
        tile = parse_tile_path(name)
        assert tile_path(tile) == name
        data = (log1000.root / name).read_bytes()
        start = tile.index * 256
        if tile.is_entries:
            entries = parse_entry_bundle(data, tile.width)
            assert entries == log1000.entries[start : start + tile.width]
            assert format_entry_bundle(entries) == data
        else:
            hashes = parse_hash_tile(data, tile.width)
            level = 8 * tile.level
            nodes = [(level, start + i) for i in range(tile.width)]
            assert hashes == tree1000.read_hashes(nodes)
            assert format_hash_tile(hashes) == data


def test_tree_verifier_over_the_bundles(log1000: Log1000) -> None:
    verifier = TreeVerifier()
    for tile in bundles_for_size(1000):
        data = (log1000.root / tile_path(tile)).read_bytes()
        leaves = verifier.add_bundle(tile.index, parse_entry_bundle(data, tile.width))
        assert leaves == log1000.leaf_hashes[tile.index * 256 : tile.index * 256 + tile.width]
    for tile in tiles_for_size(1000):
        verifier.check_hash_tile(
            tile.level, tile.index, (log1000.root / tile_path(tile)).read_bytes()
        )
    assert verifier.size == 1000
    assert verifier.root() == log1000.roots[1000]


def test_proofs_from_the_stored_tiles(log1000: Log1000) -> None:
    def get_tile(level: int, index: int, width: int) -> bytes:
        tile = Tile(level=level, index=index, width=width)
        return (log1000.root / tile_path(tile)).read_bytes()

    read = tile_hash_reader(1000, get_tile)
    assert tree_root(1000, read) == log1000.roots[1000]
    assert RightEdge.from_reader(1000, read).root() == log1000.roots[1000]
    for index, size, proof in log1000.inclusion:
        if size == 1000:
            assert prove_inclusion(index, size, read) == proof
    for old, new, proof in log1000.consistency:
        if new == 1000:
            assert prove_consistency(old, new, read) == proof
