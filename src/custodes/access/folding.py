"""Feeding a fold of the log (anything with ``size`` and ``feed(index, raw)``) what it lacks."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Fold", "feed_from"]

CHUNK = 4096
"""Entries read from the store at a time."""


class Fold(Protocol):
    size: int

    def feed(self, index: int, raw: bytes) -> None: ...


def feed_from(store: Any, fold: Fold) -> None:
    """Feed ``fold`` every entry ``store`` holds past ``fold.size``, in order."""
    end = store.next_index()
    start = fold.size
    while start < end:
        stop = min(end, start + CHUNK)
        for i, raw in enumerate(store.read_entries(start, stop), start):
            fold.feed(i, bytes(raw))
        start = stop
