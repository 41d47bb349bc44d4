"""Merkle tree hashing and proofs (RFC 9162, section 2.1), as pure functions.

A log of ``n`` entries ``D[0:n]`` has a tree head ``MTH(D[0:n])``::

    leaf_hash(d)   = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH(D[0:1])    = leaf_hash(D[0])
    MTH(D[0:n])    = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k: largest power of 2 < n

Nodes are named ``(level, index)``: the complete subtree of ``2**level``
leaves ``[index * 2**level, (index + 1) * 2**level)``. Storage is consulted
through one batch call, a :data:`HashReader`; every function here first works
out all the nodes it needs, reads them in one call, then computes.

Worked example, a tree of size 5 (``a``..``e`` are leaf hashes)::

                 root = node_hash(h, e)
                /                   \\
      h = (2, 0)                     e = (0, 4)
      /        \\
   (1, 0)      (1, 1)
   /   \\       /   \\
  a     b     c     d

``tree_root(5, read)`` reads ``[(2, 0), (0, 4)]``: one node per 1-bit of 5,
largest first. The inclusion proof of ``c`` (index 2) is ``[d, (1, 0), e]``,
nearest the leaf first; the consistency proof from size 3 to size 5 is
``[c, d, (1, 0), e]``.

Decisions where RFC 9162 leaves room:

* A consistency proof from size ``m`` to size ``m`` is empty, and checks that
  the two roots are equal.
* A consistency proof from size 0 does not exist (RFC 9162, 2.1.4: proofs are
  defined for ``0 < m``): :func:`prove_consistency` and
  :func:`check_consistency` refuse ``old_size == 0`` with :class:`ProofError`.
  Every tree extends the empty tree, whose root is :data:`EMPTY_ROOT`; callers
  comparing checkpoints handle that case themselves.
* Impossible requests (``index >= size``, sizes out of order, hashes not 32
  bytes long, a reader that answers the wrong number of hashes) raise
  :class:`ProofError` too, with a sentence saying which.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from custodes.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashReader",
    "MemoryTree",
    "RightEdge",
    "check_consistency",
    "check_inclusion",
    "leaf_hash",
    "node_hash",
    "prove_consistency",
    "prove_inclusion",
    "tree_root",
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# The largest tree this module reasons about (C2SP checkpoints cap sizes below 2**63).
_MAX_SIZE = 1 << 63

HashReader = Callable[[Sequence[tuple[int, int]]], list[bytes]]
"""Given ``(level, index)`` nodes, the hash of each complete subtree, in order."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf holding ``data``: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


# -- planning: which complete subtrees make up a range -----------------------


def _range_nodes(lo: int, hi: int) -> list[tuple[int, int]]:
    """The complete subtrees, largest first, whose fold is MTH(D[lo:hi]).

    Valid for the ranges RFC 9162 recursion produces: ``lo`` is a multiple of
    a power of two at least ``hi - lo``.
    """
    nodes: list[tuple[int, int]] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees, largest first."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(b"\x01" + h + acc).digest()
    return acc


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_path(index: int, size: int) -> list[tuple[int, int, bool]]:
    """Siblings on the path from leaf ``index`` to the root, nearest the leaf first.

    Each is ``(lo, hi, is_left)``: the range the sibling covers, and whether
    it lies to the left of the path.
    """
    steps: list[tuple[int, int, bool]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            steps.append((lo + k, hi, False))
            hi = lo + k
        else:
            steps.append((lo, lo + k, True))
            lo += k
    steps.reverse()
    return steps


def _subproof_path(
    start: int, end: int, size: int
) -> tuple[tuple[int, int] | None, list[tuple[int, int, bool]]]:
    """The plan of RFC 9162's SUBPROOF for the range ``[start, end)`` in a tree of ``size``.

    With ``start == 0`` it is the consistency proof from size ``end``; with
    another aligned start, the subtree consistency proof of
    :mod:`custodes.tlog.subtree`.  Returns the range of the first proof hash, or
    None when the recursion ends on the range itself (its hash is known and
    not sent), then the siblings from the deepest up as ``(lo, hi, is_left)``.
    A left sibling lies to the left of the range's path, a right one wholly
    beyond ``end``.
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
        else:  # s == 0 < k < e: the left half lies inside the range
            steps.append((lo, lo + k, True))
            lo += k
            e -= k
            known = False
    steps.reverse()
    return (None if known else (lo, hi)), steps


def _prove_path(
    plan: tuple[tuple[int, int] | None, list[tuple[int, int, bool]]], read: HashReader
) -> list[bytes]:
    """The proof hashes of a :func:`_subproof_path` plan, read in one call."""
    first, path = plan
    ranges = ([first] if first is not None else []) + [(lo, hi) for lo, hi, _ in path]
    return _read_ranges(ranges, read)


def _check_proof_hashes(
    proof: Sequence[bytes],
    plan: tuple[tuple[int, int] | None, list[tuple[int, int, bool]]],
    what: str,
) -> None:
    """``proof`` has as many 32-byte hashes as the plan takes; ``what`` names the proof."""
    first, path = plan
    expected = len(path) + (first is not None)
    if len(proof) != expected:
        raise ProofError(f"{what} has {expected} hashes, not {len(proof)}.")
    for h in proof:
        _check_hash(h, "proof hash")


def _climb(
    proof: Sequence[bytes],
    plan: tuple[tuple[int, int] | None, list[tuple[int, int, bool]]],
    start: int,
    known: bytes,
) -> tuple[bytes, bytes]:
    """The range's hash and the root that a SUBPROOF ``proof`` rebuilds, climbing its plan.

    Left siblings at or after ``start`` lie inside the range and feed both
    hashes; every sibling feeds the root.  ``known`` is the range's own hash,
    the starting point when the proof does not begin with a hash of its own.
    """
    first, path = plan
    rest = list(proof)
    inner = outer = rest.pop(0) if first is not None else known
    for h, (lo, _, is_left) in zip(rest, path, strict=True):
        if is_left:
            if lo >= start:
                inner = _sha256(b"\x01" + h + inner).digest()
            outer = _sha256(b"\x01" + h + outer).digest()
        else:
            outer = _sha256(b"\x01" + outer + h).digest()
    return inner, outer


def _read_ranges(ranges: Sequence[tuple[int, int]], read: HashReader) -> list[bytes]:
    """MTH of each range, reading every node they need in one call."""
    plans = [_range_nodes(lo, hi) for lo, hi in ranges]
    wanted = [node for plan in plans for node in plan]
    hashes = _checked_read(read, wanted)
    out: list[bytes] = []
    at = 0
    for plan in plans:
        out.append(_fold(hashes[at : at + len(plan)]))
        at += len(plan)
    return out


def _checked_read(read: HashReader, wanted: Sequence[tuple[int, int]]) -> list[bytes]:
    if not wanted:
        return []
    hashes = read(wanted)
    if len(hashes) != len(wanted):
        raise ProofError(
            f"The hash reader returned {len(hashes)} hashes for {len(wanted)} requested nodes."
        )
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(f"The hash reader returned a hash of {len(h)} bytes, not 32.")
    return list(hashes)


def _check_size(size: int, what: str) -> None:
    if not 0 <= size < _MAX_SIZE:
        raise ProofError(f"The {what} {size} is out of range: sizes lie in 0..2**63-1.")


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"The {what} is {len(value)} bytes long; hashes are 32 bytes.")


# -- roots and proofs ----------------------------------------------------------


def tree_root(size: int, read: HashReader) -> bytes:
    """The tree head of the first ``size`` leaves (EMPTY_ROOT for size 0)."""
    _check_size(size, "tree size")
    if size == 0:
        return EMPTY_ROOT
    return _read_ranges([(0, size)], read)[0]


def prove_inclusion(index: int, size: int, read: HashReader) -> list[bytes]:
    """The proof that leaf ``index`` is in the tree of ``size`` leaves (RFC 9162 order)."""
    _check_size(size, "tree size")
    if not 0 <= index < size:
        raise ProofError(f"Leaf index {index} is not in a tree of size {size}.")
    return _read_ranges([(lo, hi) for lo, hi, _ in _inclusion_path(index, size)], read)


def check_inclusion(
    proof: Sequence[bytes], *, index: int, size: int, leaf: bytes, root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` with ``root``.

    Raises :class:`ProofError` saying why when it is not.
    """
    _check_size(size, "tree size")
    if not 0 <= index < size:
        raise ProofError(f"Leaf index {index} is not in a tree of size {size}.")
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    path = _inclusion_path(index, size)
    if len(proof) != len(path):
        raise ProofError(
            f"An inclusion proof for leaf {index} in a tree of size {size} has "
            f"{len(path)} hashes, not {len(proof)}."
        )
    acc = leaf
    for h, (_, _, is_left) in zip(proof, path, strict=True):
        _check_hash(h, "proof hash")
        acc = _sha256(b"\x01" + h + acc).digest() if is_left else node_hash(acc, h)
    if acc != root:
        raise ProofError(
            f"The inclusion proof for leaf {index} does not lead to the root of the "
            f"tree of size {size}."
        )


def prove_consistency(old_size: int, new_size: int, read: HashReader) -> list[bytes]:
    """The proof that the tree of ``old_size`` is a prefix of the tree of ``new_size``."""
    _check_sizes(old_size, new_size)
    return _prove_path(_subproof_path(0, old_size, new_size), read)


def check_consistency(
    proof: Sequence[bytes],
    *,
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check that the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    Raises :class:`ProofError` saying why when it is not.
    """
    _check_sizes(old_size, new_size)
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    plan = _subproof_path(0, old_size, new_size)
    _check_proof_hashes(proof, plan, f"A consistency proof from size {old_size} to size {new_size}")
    # (1) Start from the subtree where the old tree's right edge ends; (2) climb: left
    # siblings are old and feed both roots, right ones are new.
    old_acc, new_acc = _climb(proof, plan, 0, old_root)
    # (3) Both reconstructions must match the roots we were given.
    if old_acc != old_root:
        raise ProofError(
            f"The consistency proof from size {old_size} to size {new_size} does not "
            "lead to the old root."
        )
    if new_acc != new_root:
        raise ProofError(
            f"The consistency proof from size {old_size} to size {new_size} does not "
            "lead to the new root."
        )


def _check_sizes(old_size: int, new_size: int) -> None:
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size == 0:
        raise ProofError(
            "A consistency proof needs an old tree size of at least 1; every tree "
            "extends the empty tree."
        )
    if old_size > new_size:
        raise ProofError(
            f"The old tree size {old_size} is larger than the new tree size {new_size}."
        )


# -- an in-memory tree ---------------------------------------------------------


class MemoryTree:
    """Every complete subtree of a tree held in memory: for tests and small logs.

    ``levels[L][i]`` is the hash of node ``(L, i)``. Memory is about two
    hashes per leaf.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> None:
        """Add a leaf, given its leaf hash."""
        _check_hash(leaf_hash, "leaf hash")
        levels = self._levels
        levels[0].append(leaf_hash)
        level = 0
        while len(levels[level]) % 2 == 0:
            row = levels[level]
            parent = _sha256(b"\x01" + row[-2] + row[-1]).digest()
            level += 1
            if level == len(levels):
                levels.append([])
            levels[level].append(parent)

    def read_hashes(self, nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        """A :data:`HashReader` over this tree."""
        out: list[bytes] = []
        for level, index in nodes:
            if not (0 <= level < len(self._levels) and 0 <= index < len(self._levels[level])):
                raise ProofError(
                    f"The tree of size {self.size} has no complete subtree at level "
                    f"{level}, index {index}."
                )
            out.append(self._levels[level][index])
        return out

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofError(f"The tree holds {self.size} leaves, not {size}.")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The tree head at ``size`` (default: the whole tree)."""
        return tree_root(self._size_or_current(size), self.read_hashes)

    def prove_inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size``."""
        return prove_inclusion(index, self._size_or_current(size), self.read_hashes)

    def prove_consistency(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The consistency proof from ``old_size`` to ``new_size``."""
        return prove_consistency(old_size, self._size_or_current(new_size), self.read_hashes)


# -- the right edge: an incremental builder ------------------------------------


class RightEdge:
    """The roots of the maximal complete subtrees of a tree: all it takes to extend it.

    For a tree of ``size`` leaves there is one hash per 1-bit of ``size``,
    largest subtree first; a tree of 6 leaves keeps ``[(2, 0), (1, 2)]``.
    Appending a leaf returns every node that became complete, so a sequencer
    can store tiles as it goes.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size(size, "tree size")
        if len(hashes) != size.bit_count():
            raise ProofError(
                f"A tree of size {size} has {size.bit_count()} maximal complete "
                f"subtrees, but {len(hashes)} hashes were given."
            )
        for h in hashes:
            _check_hash(h, "subtree hash")
        self._size = size
        self._stack: list[bytes] = list(hashes)

    @classmethod
    def from_reader(cls, size: int, read: HashReader) -> RightEdge:
        """The right edge of the tree of ``size``, read in one call."""
        _check_size(size, "tree size")
        return cls(size, _checked_read(read, _range_nodes(0, size)))

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The maximal complete subtrees' roots, largest first."""
        return tuple(self._stack)

    def __repr__(self) -> str:
        return f"RightEdge(size={self._size})"

    def copy(self) -> RightEdge:
        """An independent copy."""
        return RightEdge(self._size, self._stack)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf (its leaf hash); return the new complete nodes ``(level, index, hash)``."""
        if len(leaf) != HASH_SIZE:
            _check_hash(leaf, "leaf hash")
        n = self._size
        stack = self._stack
        out = [(0, n, leaf)]
        h = leaf
        level = 0
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
            level += 1
            out.append((level, n, h))
        stack.append(h)
        self._size += 1
        return out

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Add many leaves; return every node that became complete, in order."""
        sha = _sha256
        stack = self._stack
        push = stack.append
        pop = stack.pop
        size = self._size
        out: list[tuple[int, int, bytes]] = []
        emit = out.append
        try:
            for h in leaves:
                if len(h) != HASH_SIZE:
                    _check_hash(h, "leaf hash")
                emit((0, size, h))
                n = size
                level = 0
                while n & 1:
                    h = sha(b"\x01" + pop() + h).digest()
                    n >>= 1
                    level += 1
                    emit((level, n, h))
                push(h)
                size += 1
        finally:
            self._size = size
        return out

    def append_subtree(self, level: int, subtree_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add ``2**level`` leaves at once, given the root of their complete subtree.

        The tree size must be a multiple of ``2**level``. Returns the nodes
        above ``level`` that became complete (the subtree itself first).
        """
        _check_hash(subtree_hash, "subtree hash")
        if level < 0 or self._size & ((1 << level) - 1):
            raise ProofError(
                f"A complete subtree of level {level} cannot start at leaf {self._size}."
            )
        n = self._size >> level
        stack = self._stack
        out = [(level, n, subtree_hash)]
        h = subtree_hash
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
            level += 1
            out.append((level, n, h))
        stack.append(h)
        self._size += 1 << out[0][0]
        return out

    def root(self) -> bytes:
        """The tree head (EMPTY_ROOT for an empty tree)."""
        if not self._stack:
            return EMPTY_ROOT
        return _fold(self._stack)
