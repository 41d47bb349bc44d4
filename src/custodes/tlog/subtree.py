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
    _check_size,
    _read_ranges,
    _sha256,
    _split,
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


def _subtree_path(
    start: int, end: int, size: int
) -> tuple[tuple[int, int] | None, list[tuple[int, int, bool]]]:
    """The plan of a subtree consistency proof, nearest the leaves first.

    Returns the range of the first proof hash, or None when the recursion ends
    on the subtree itself (its hash is known and not sent), then the siblings
    from the deepest up as ``(lo, hi, is_left)``.
    """
    steps: list[tuple[int, int, bool]] = []
    lo, hi = 0, size
    s, e = start, end  # relative to lo
    known = True
    while not (s == 0 and e == hi - lo):
        k = _split(hi - lo)
        if e <= k:
            steps.append((lo + k, hi, False))
            hi = lo + k
        elif s >= k:
            steps.append((lo, lo + k, True))
            lo += k
            s -= k
            e -= k
        else:  # s == 0 < k < e: the left half lies inside the subtree
            steps.append((lo, lo + k, True))
            lo += k
            e -= k
            known = False
    steps.reverse()
    return (None if known else (lo, hi)), steps


def subtree_hash(start: int, end: int, read: HashReader) -> bytes:
    """``MTH(D[start:end])`` of a valid subtree, from the complete subtrees in it."""
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree.")
    return _read_ranges([(start, end)], read)[0]


def prove_subtree_consistency(start: int, end: int, size: int, read: HashReader) -> list[bytes]:
    """The proof that the subtree ``[start, end)`` lies in the tree of ``size`` leaves."""
    _check_subtree(start, end, size)
    first, path = _subtree_path(start, end, size)
    ranges = ([first] if first is not None else []) + [(lo, hi) for lo, hi, _ in path]
    return _read_ranges(ranges, read)


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
    first, path = _subtree_path(start, end, size)
    expected = len(path) + (first is not None)
    if len(proof) != expected:
        raise ProofError(
            f"A subtree consistency proof for [{start}, {end}) in a tree of size {size} has "
            f"{expected} hashes, not {len(proof)}."
        )
    for h in proof:
        _check_hash(h, "proof hash")
    rest = list(proof)
    sub_acc = root_acc = rest.pop(0) if first is not None else subtree
    for h, (lo, _, is_left) in zip(rest, path, strict=True):
        if is_left:
            if lo >= start:  # inside the subtree: part of both hashes
                sub_acc = _sha256(b"\x01" + h + sub_acc).digest()
            root_acc = _sha256(b"\x01" + h + root_acc).digest()
        else:
            root_acc = _sha256(b"\x01" + root_acc + h).digest()
    if sub_acc != subtree:
        raise ProofError(
            f"The subtree consistency proof for [{start}, {end}) does not lead to the subtree hash."
        )
    if root_acc != root:
        raise ProofError(
            f"The subtree consistency proof for [{start}, {end}) does not lead to the root of the"
            f" tree of size {size}."
        )
