"""What the sequencer needs from durable storage, and nothing more.

Each engine (SQLite, PostgreSQL) implements :class:`LogStore` in its own
way, and both pass one conformance suite (``tests/ledger/test_conformance.py``).
There is deliberately no shared base class: each driver is written for its
engine.

The store holds three things:

* **entries**: the sequenced entries, by index 0..N-1.  Appending is atomic
  per call and durable when it returns; an index once returned is never
  reassigned or lost.
* **tiles**: hash tiles of height 8 (C2SP tlog-tiles), keyed by
  ``(level, index)``; the stored value is the latest (possibly partial)
  tile's hashes concatenated, 32 bytes per hash.  Full tiles never change.
* **the integrated state**: the tree size that the tiles cover and the
  signed checkpoint for it, moved only by a compare-and-swap on the size,
  in the same transaction as the tiles it covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["IntegratedState", "LogStore", "TileKey"]

TileKey = tuple[int, int]
"""``(level, index)`` of a hash tile."""


@dataclass(frozen=True, slots=True)
class IntegratedState:
    """What the tiles cover, and the checkpoint signed for it."""

    size: int
    checkpoint: bytes | None


class LogStore(Protocol):
    """Durable storage for one log.  One writer at a time.

    Every method raises :class:`custodes.errors.StoreUnavailableError` when the
    engine cannot be reached or written, so callers can fail closed.
    """

    def next_index(self) -> int:
        """The number of entries sequenced so far (the next index to assign)."""
        ...

    def append(self, entries: Iterable[bytes]) -> tuple[int, int]:
        """Durably store ``entries`` at consecutive indexes, all or none.

        Returns ``(first, count)``.  ``entries`` may be a long generator: the
        driver consumes it inside one transaction, so if the generator raises,
        nothing of it is stored and the exception propagates.
        """
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start`` .. ``end - 1``; raises NotFoundError past the end."""
        ...

    def integrated(self) -> IntegratedState:
        """The integrated tree size and its signed checkpoint (None before any)."""
        ...

    def read_tiles(self, keys: Sequence[TileKey]) -> list[bytes | None]:
        """The stored hashes of each tile, in order; None where none is stored."""
        ...

    def integrate(
        self,
        *,
        old_size: int,
        new_size: int,
        tiles: dict[TileKey, bytes],
        checkpoint: bytes,
    ) -> None:
        """Atomically write ``tiles`` and move the integrated state.

        A compare-and-swap: raises :class:`custodes.errors.ConflictError`
        (writing nothing) unless the stored integrated size is ``old_size``.
        ``new_size`` must be at least ``old_size`` and at most
        :meth:`next_index`.
        """
        ...

    def close(self) -> None:
        """Release connections and locks.  Idempotent."""
        ...
