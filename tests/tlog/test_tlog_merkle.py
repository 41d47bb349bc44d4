"""Merkle hashing and proofs: exhaustive on small trees, against a naive RFC 9162 model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import ProofError
from custodes.tlog import (
    EMPTY_ROOT,
    MemoryTree,
    RightEdge,
    check_consistency,
    check_inclusion,
    leaf_hash,
    node_hash,
    prove_consistency,
    prove_inclusion,
    tree_root,
)

SMALL = 64  # every size, index and pair up to here
FLIP_ALL_BITS = 8  # every bit of every hash up to here; four sampled bits beyond

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(600)]
TREE = MemoryTree(LEAVES)


# -- a naive model, written straight from RFC 9162 section 2.1 -----------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def flips(value: bytes, every_bit: bool, salt: int, seen: set[tuple[int, int]]) -> list[bytes]:
    """``value`` with one bit flipped, for every bit, or for four sampled bits.

    The sample is the first and last byte and two more, each at a bit that turns with
    ``salt``, so that over a test every byte and every bit of each kind of hash is
    flipped in the larger trees too (``seen`` gathers the sampled ones, and each test
    checks that all 256 were).
    """
    n = len(value)
    if every_bit:
        where = [(i, bit) for i in range(n) for bit in range(8)]
    else:
        picks = (0, n - 1, 1 + salt % (n - 2), 1 + (salt + n // 2) % (n - 2))
        where = [(i, (salt + i + k) % 8) for k, i in enumerate(picks)]
    out = []
    for i, bit in where:
        changed = bytearray(value)
        changed[i] ^= 1 << bit
        out.append(bytes(changed))
        if not every_bit:
            seen.add((i, bit))
    return out


ALL_BITS = {(i, bit) for i in range(32) for bit in range(8)}


def rejects(fn: object, **kwargs: object) -> bool:
    try:
        fn(**kwargs)  # type: ignore[operator]
    except ProofError:
        return True
    return False


# -- hashing -----------------------------------------------------------------------------


def test_hash_definitions() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_roots_match_the_model() -> None:
    for size in range(SMALL * 2 + 1):
        assert TREE.root(size) == mth(LEAVES[:size])
    assert TREE.root(600) == mth(LEAVES)


def test_empty_tree_root_reads_nothing() -> None:
    def read(nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        raise AssertionError("read for an empty tree")

    assert tree_root(0, read) == EMPTY_ROOT


def test_functions_read_once() -> None:
    calls: list[list[tuple[int, int]]] = []

    def read(nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        calls.append(list(nodes))
        return TREE.read_hashes(nodes)

    tree_root(600, read)
    prove_inclusion(123, 600, read)
    prove_consistency(77, 600, read)
    RightEdge.from_reader(600, read)
    assert len(calls) == 4
    assert calls[0] == [(9, 0), (6, 8), (4, 36), (3, 74)]


# -- inclusion -----------------------------------------------------------------------------


def test_inclusion_exhaustive() -> None:
    for size in range(1, SMALL + 1):
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.prove_inclusion(index, size)
            assert proof == path(index, LEAVES[:size])
            check_inclusion(proof, index=index, size=size, leaf=LEAVES[index], root=root)


def test_inclusion_every_bit_flip_rejected() -> None:
    seen: dict[str, set[tuple[int, int]]] = {"proof": set(), "leaf": set(), "root": set()}
    salt = 0
    for size in range(1, SMALL + 1):
        every = size <= FLIP_ALL_BITS
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.prove_inclusion(index, size)
            args = {"index": index, "size": size, "leaf": LEAVES[index], "root": root}
            for i, h in enumerate(proof):
                salt += 1
                for bad in flips(h, every, salt, seen["proof"]):
                    forged = [*proof[:i], bad, *proof[i + 1 :]]
                    assert rejects(check_inclusion, proof=forged, **args)
            salt += 1
            for bad in flips(LEAVES[index], every, salt, seen["leaf"]):
                assert rejects(check_inclusion, proof=proof, **{**args, "leaf": bad})
            for bad in flips(root, every, salt, seen["root"]):
                assert rejects(check_inclusion, proof=proof, **{**args, "root": bad})
    assert all(bits == ALL_BITS for bits in seen.values())


def test_inclusion_truncated_or_extended_rejected() -> None:
    extra = b"\x07" * 32
    for size in range(1, SMALL + 1):
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.prove_inclusion(index, size)
            args = {"index": index, "size": size, "leaf": LEAVES[index], "root": root}
            assert rejects(check_inclusion, proof=[*proof, extra], **args)
            assert rejects(check_inclusion, proof=[extra, *proof], **args)
            if proof:
                assert rejects(check_inclusion, proof=proof[:-1], **args)
                assert rejects(check_inclusion, proof=proof[1:], **args)


def test_inclusion_proof_for_another_index_rejected() -> None:
    for size in range(2, 17):
        root = TREE.root(size)
        for index in range(size):
            proof = TREE.prove_inclusion(index, size)
            for other in range(size):
                if other != index:
                    assert rejects(
                        check_inclusion,
                        proof=proof,
                        index=other,
                        size=size,
                        leaf=LEAVES[index],
                        root=root,
                    )


@pytest.mark.parametrize(
    ("index", "size", "leaf", "root", "message"),
    [
        (5, 5, LEAVES[0], LEAVES[0], "not in a tree of size 5"),
        (-1, 5, LEAVES[0], LEAVES[0], "not in a tree of size 5"),
        (0, 0, LEAVES[0], LEAVES[0], "not in a tree of size 0"),
        (0, 1, b"short", LEAVES[0], "leaf hash is 5 bytes"),
        (0, 1, LEAVES[0], b"", "root hash is 0 bytes"),
        (0, 1 << 63, LEAVES[0], LEAVES[0], "out of range"),
    ],
    ids=["index_equals_size", "negative_index", "empty_tree", "short_leaf", "empty_root", "huge"],
)
def test_inclusion_bad_arguments(
    index: int, size: int, leaf: bytes, root: bytes, message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        check_inclusion([], index=index, size=size, leaf=leaf, root=root)


def test_inclusion_short_proof_hash_rejected() -> None:
    proof = TREE.prove_inclusion(3, 8)
    with pytest.raises(ProofError, match="proof hash is 31 bytes"):
        check_inclusion(
            [proof[0][:31], *proof[1:]], index=3, size=8, leaf=LEAVES[3], root=TREE.root(8)
        )


def test_prove_inclusion_bad_index() -> None:
    with pytest.raises(ProofError, match="Leaf index 8 is not in a tree of size 8"):
        TREE.prove_inclusion(8, 8)


# -- consistency ---------------------------------------------------------------------------


def test_consistency_exhaustive() -> None:
    for new in range(1, SMALL + 1):
        new_root = TREE.root(new)
        for old in range(1, new + 1):
            proof = TREE.prove_consistency(old, new)
            assert proof == subproof(old, LEAVES[:new], True)
            check_consistency(
                proof, old_size=old, new_size=new, old_root=TREE.root(old), new_root=new_root
            )


def test_consistency_every_bit_flip_rejected() -> None:
    seen: dict[str, set[tuple[int, int]]] = {"proof": set(), "old_root": set(), "new_root": set()}
    salt = 0
    for new in range(1, SMALL + 1):
        every = new <= FLIP_ALL_BITS
        for old in range(1, new + 1):
            proof = TREE.prove_consistency(old, new)
            args = {
                "old_size": old,
                "new_size": new,
                "old_root": TREE.root(old),
                "new_root": TREE.root(new),
            }
            for i, h in enumerate(proof):
                salt += 1
                for bad in flips(h, every, salt, seen["proof"]):
                    forged = [*proof[:i], bad, *proof[i + 1 :]]
                    assert rejects(check_consistency, proof=forged, **args)
            salt += 1
            for key in ("old_root", "new_root"):
                for bad in flips(args[key], every, salt, seen[key]):  # type: ignore[arg-type]
                    assert rejects(check_consistency, proof=proof, **{**args, key: bad})
    assert all(bits == ALL_BITS for bits in seen.values())


def test_consistency_truncated_or_extended_rejected() -> None:
    extra = b"\x07" * 32
    for new in range(1, SMALL + 1):
        for old in range(1, new + 1):
            proof = TREE.prove_consistency(old, new)
            args = {
                "old_size": old,
                "new_size": new,
                "old_root": TREE.root(old),
                "new_root": TREE.root(new),
            }
            assert rejects(check_consistency, proof=[*proof, extra], **args)
            assert rejects(check_consistency, proof=[extra, *proof], **args)
            if proof:
                assert rejects(check_consistency, proof=proof[:-1], **args)
                assert rejects(check_consistency, proof=proof[1:], **args)


def test_consistency_proof_for_other_sizes_rejected() -> None:
    for new in range(2, 17):
        for old in range(1, new):
            proof = TREE.prove_consistency(old, new)
            for other in range(1, new):
                if other != old:
                    assert rejects(
                        check_consistency,
                        proof=proof,
                        old_size=other,
                        new_size=new,
                        old_root=TREE.root(other),
                        new_root=TREE.root(new),
                    )


def test_consistency_same_size() -> None:
    root = TREE.root(7)
    assert TREE.prove_consistency(7, 7) == []
    check_consistency([], old_size=7, new_size=7, old_root=root, new_root=root)
    with pytest.raises(ProofError, match="does not lead to the new root"):
        check_consistency([], old_size=7, new_size=7, old_root=root, new_root=TREE.root(6))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (0, 5, "old tree size of at least 1"),
        (6, 5, "old tree size 6 is larger than the new tree size 5"),
        (-1, 5, "out of range"),
        (1, 1 << 63, "out of range"),
    ],
    ids=["old_size_zero", "sizes_out_of_order", "negative_size", "huge_size"],
)
def test_consistency_bad_sizes(old: int, new: int, message: str) -> None:
    root = TREE.root(5)
    with pytest.raises(ProofError, match=message):
        check_consistency([], old_size=old, new_size=new, old_root=root, new_root=root)
    with pytest.raises(ProofError, match=message):
        prove_consistency(old, new, TREE.read_hashes)


def test_consistency_short_roots_rejected() -> None:
    with pytest.raises(ProofError, match="old root hash is 3 bytes"):
        check_consistency([], old_size=1, new_size=1, old_root=b"abc", new_root=LEAVES[0])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_random_proofs_in_a_larger_tree(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 600))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    root = TREE.root(size)
    check_inclusion(
        TREE.prove_inclusion(index, size), index=index, size=size, leaf=LEAVES[index], root=root
    )
    check_consistency(
        TREE.prove_consistency(old, size),
        old_size=old,
        new_size=size,
        old_root=TREE.root(old),
        new_root=root,
    )


# -- readers -----------------------------------------------------------------------------


def test_reader_answering_wrong_count_is_refused() -> None:
    with pytest.raises(ProofError, match="returned 1 hashes for 2 requested nodes"):
        tree_root(3, lambda nodes: [LEAVES[0]])


def test_reader_answering_short_hash_is_refused() -> None:
    with pytest.raises(ProofError, match="hash of 4 bytes"):
        tree_root(2, lambda nodes: [b"abcd"] * len(nodes))


def test_memory_tree_refuses_missing_nodes() -> None:
    tree = MemoryTree(LEAVES[:5])
    with pytest.raises(ProofError, match="no complete subtree at level 3, index 0"):
        tree.read_hashes([(3, 0)])
    with pytest.raises(ProofError, match="holds 5 leaves, not 6"):
        tree.root(6)
    with pytest.raises(ProofError, match="leaf hash is 3 bytes"):
        tree.append(b"abc")


# -- the right edge ----------------------------------------------------------------------


def test_right_edge_matches_memory_tree() -> None:
    edge = RightEdge()
    tree = MemoryTree()
    for size, leaf in enumerate(LEAVES[:300], start=1):
        nodes = edge.append(leaf)
        tree.append(leaf)
        for level, index, h in nodes:
            assert tree.read_hashes([(level, index)]) == [h]
        assert nodes[0] == (0, size - 1, leaf)
        assert len(nodes) == 1 + ((size - 1) ^ size).bit_count() - 1
        assert edge.size == size
        assert edge.root() == tree.root()
        assert len(edge.hashes) == size.bit_count()


def test_right_edge_extend_equals_appends() -> None:
    one, many = RightEdge(), RightEdge()
    appended = [node for leaf in LEAVES for node in one.append(leaf)]
    assert many.extend(LEAVES) == appended
    assert many.hashes == one.hashes and many.root() == TREE.root()


def test_right_edge_from_reader_and_resume() -> None:
    for size in range(130):
        edge = RightEdge.from_reader(size, TREE.read_hashes)
        assert edge.root() == TREE.root(size)
        resumed = RightEdge(size, edge.hashes)
        resumed.extend(LEAVES[size:200])
        assert resumed.root() == TREE.root(200)


def test_right_edge_append_subtree() -> None:
    edge = RightEdge()
    for i in range(600 // 8):
        (sub,) = TREE.read_hashes([(3, i)])
        nodes = edge.append_subtree(3, sub)
        assert nodes[0] == (3, i, sub)
    assert edge.size == 600 and edge.root() == TREE.root()
    with pytest.raises(ProofError, match="level 4 cannot start at leaf 600"):
        edge.append_subtree(4, LEAVES[0])


def test_right_edge_empty_and_copy() -> None:
    edge = RightEdge()
    assert edge.root() == EMPTY_ROOT and edge.hashes == ()
    edge.extend(LEAVES[:5])
    copy = edge.copy()
    copy.append(LEAVES[5])
    assert edge.size == 5 and copy.size == 6


@pytest.mark.parametrize(
    ("size", "hashes", "message"),
    [
        (3, [LEAVES[0]], "3 has 2 maximal complete subtrees, but 1 hashes"),
        (1, [b"x"], "subtree hash is 1 bytes"),
        (-1, [], "out of range"),
    ],
    ids=["wrong_count", "short_hash", "negative_size"],
)
def test_right_edge_bad_construction(size: int, hashes: list[bytes], message: str) -> None:
    with pytest.raises(ProofError, match=message):
        RightEdge(size, hashes)


def test_right_edge_refuses_short_leaf() -> None:
    with pytest.raises(ProofError, match="leaf hash is 2 bytes"):
        RightEdge().append(b"ab")
    with pytest.raises(ProofError, match="leaf hash is 2 bytes"):
        RightEdge().extend([LEAVES[0], b"ab"])
