"""Subtree consistency proofs (the draft tlog-mirror's add-entries relies on).

Checked against an independent recursive reference written from the draft's
definition over a list of leaf hashes, for every valid subtree of small trees.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import ProofError
from custodes.tlog import MemoryTree, leaf_hash
from custodes.tlog.subtree import (
    check_subtree_consistency,
    is_valid_subtree,
    prove_subtree_consistency,
    subtree_hash,
)


def _mth(d: list[bytes]) -> bytes:
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _ref(start: int, end: int, d: list[bytes], known: bool) -> list[bytes]:
    n = len(d)
    if start == 0 and end == n:
        return [] if known else [_mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if end <= k:
        return _ref(start, end, d[:k], known) + [_mth(d[k:])]
    if start >= k:
        return _ref(start - k, end - k, d[k:], known) + [_mth(d[:k])]
    assert start == 0
    return _ref(0, end - k, d[k:], False) + [_mth(d[:k])]


def _tree(n: int) -> tuple[MemoryTree, list[bytes]]:
    leaves = [leaf_hash(str(i).encode()) for i in range(n)]
    return MemoryTree(leaves), leaves


def test_every_subtree_of_small_trees_proves_and_verifies() -> None:
    for n in range(1, 41):
        tree, leaves = _tree(n)
        root = tree.root()
        for start in range(n):
            for end in range(start + 1, n + 1):
                if not is_valid_subtree(start, end):
                    continue
                proof = prove_subtree_consistency(start, end, n, tree.read_hashes)
                assert proof == _ref(start, end, leaves, True), (start, end, n)
                h = subtree_hash(start, end, tree.read_hashes)
                assert h == _mth(leaves[start:end])
                check_subtree_consistency(proof, start=start, end=end, size=n, subtree=h, root=root)
                if start == 0 and end < n:  # the RFC 9162 consistency proof
                    assert proof == tree.prove_consistency(end, n)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 600), data=st.data())
def test_a_changed_proof_hash_or_subtree_is_refused(n: int, data: st.DataObject) -> None:
    tree, leaves = _tree(n)
    start = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(1, n - start))
    if not is_valid_subtree(start, start + size):
        return
    end = start + size
    proof = prove_subtree_consistency(start, end, n, tree.read_hashes)
    h = subtree_hash(start, end, tree.read_hashes)
    root = tree.root()
    bad_sub = hashlib.sha256(h).digest()
    with pytest.raises(ProofError):
        check_subtree_consistency(proof, start=start, end=end, size=n, subtree=bad_sub, root=root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = hashlib.sha256(bad[i]).digest()
        with pytest.raises(ProofError):
            check_subtree_consistency(bad, start=start, end=end, size=n, subtree=h, root=root)
        with pytest.raises(ProofError, match="hashes, not"):
            check_subtree_consistency(
                proof[:-1], start=start, end=end, size=n, subtree=h, root=root
            )


def test_what_is_not_a_subtree_is_refused() -> None:
    assert is_valid_subtree(256, 300) and is_valid_subtree(0, 5) and is_valid_subtree(8, 13)
    assert not is_valid_subtree(3, 5) and not is_valid_subtree(4, 4) and not is_valid_subtree(1, 0)
    tree, _ = _tree(10)
    with pytest.raises(ProofError, match="not a subtree"):
        prove_subtree_consistency(3, 5, 10, tree.read_hashes)
    with pytest.raises(ProofError, match="beyond"):
        prove_subtree_consistency(8, 12, 10, tree.read_hashes)
