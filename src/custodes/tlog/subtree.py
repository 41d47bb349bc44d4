"""Subtrees and subtree consistency proofs (draft-ietf-plants-merkle-tree-certs, section 4).

tlog-mirror's ``add-entries`` and tlog-witness's ``sign-subtree`` prove a run of
entries against a checkpoint with these.  A *subtree* ``[start, end)`` is valid
when ``start < end`` and ``start`` is a multiple of ``BIT_CEIL(end - start)``,
the smallest power of two at least ``end - start``: it is then the left part of
an aligned block, and its hash ``MTH(D[start:end])`` is built from complete
subtrees the way a tree of ``end - start`` leaves is.

The proof that ``[start, end)`` with hash ``H`` lies in the tree of ``n`` leaves
follows the RFC 9162 consistency recursion, with the subtree in place of the
old tree (k is the largest power of two below the current width)::

    SUBPROOF(start, end, D_n, known):
        start = 0 and end = n:  []  if known, else [MTH(D_n)]
        end <= k:               SUBPROOF(start, end, D[0:k], known)      : MTH(D[k:n])
        start >= k:             SUBPROOF(start - k, end - k, D[k:n], known) : MTH(D[0:k])
        otherwise (start = 0):  SUBPROOF(0, end - k, D[k:n], false)      : MTH(D[0:k])

    proof = SUBPROOF(start, end, D_n, true)

so with ``start = 0`` it is the consistency proof from size ``end`` to ``n``.
The verifier climbs from the subtree (or the first proof hash) to the root,
rebuilding both the subtree hash (from left siblings inside the subtree) and the
root (from every sibling), and requires both to match.
"""

from __future__ import annotations

from collections.abc import Sequence

from custodes.errors import ProofError
from custodes.tlog.merkle import (
    HashReader,
    _check_hash,
    _check_proof_hashes,
    _check_size,
    _climb,
    _prove_path,
    _read_ranges,
    _subproof_path,
)

__all__ = [
    "check_subtree_consistency",
    "is_valid_subtree",
    "prove_subtree_consistency",
    "subtree_hash",
]


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree: non-empty, ``start`` a multiple of BIT_CEIL(size)."""
    if not 0 <= start < end:
        return False
    ceil = 1 << (end - start - 1).bit_length()
    return start % ceil == 0


def _check_subtree(start: int, end: int, size: int) -> None:
    _check_size(size, "tree size")
    if not is_valid_subtree(start, end):
        raise ProofError(
            f"[{start}, {end}) is not a subtree: it must be non-empty and start at a multiple"
            " of the smallest power of two at least its size."
        )
    if end > size:
        raise ProofError(f"The subtree [{start}, {end}) ends beyond the tree of size {size}.")


def subtree_hash(start: int, end: int, read: HashReader) -> bytes:
    """``MTH(D[start:end])`` of a valid subtree, from the complete subtrees in it."""
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree.")
    return _read_ranges([(start, end)], read)[0]


def prove_subtree_consistency(start: int, end: int, size: int, read: HashReader) -> list[bytes]:
    """The proof that the subtree ``[start, end)`` lies in the tree of ``size`` leaves."""
    _check_subtree(start, end, size)
    return _prove_path(_subproof_path(start, end, size), read)


def check_subtree_consistency(
    proof: Sequence[bytes],
    *,
    start: int,
    end: int,
    size: int,
    subtree: bytes,
    root: bytes,
) -> None:
    """Check that the subtree ``[start, end)`` with hash ``subtree`` is in ``(size, root)``.

    Raises :class:`ProofError` saying why when it is not.
    """
    _check_subtree(start, end, size)
    _check_hash(subtree, "subtree hash")
    _check_hash(root, "root hash")
    plan = _subproof_path(start, end, size)
    _check_proof_hashes(
        proof, plan, f"A subtree consistency proof for [{start}, {end}) in a tree of size {size}"
    )
    sub_acc, root_acc = _climb(proof, plan, start, subtree)
    if sub_acc != subtree:
        raise ProofError(
            f"The subtree consistency proof for [{start}, {end}) does not lead to the subtree hash."
        )
    if root_acc != root:
        raise ProofError(
            f"The subtree consistency proof for [{start}, {end}) does not lead to the root of the"
            f" tree of size {size}."
        )
