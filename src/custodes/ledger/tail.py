"""The writer's own record of what it appended last, readable without the store's lock.

A reader in the writer's process (the gateway's view of the log) asks for the
entries past the point it has read after every decision.  Asking the store means
taking its lock, which the writer holds across each durable commit, so every
decision would wait out one more fsync than it needs.  The writer knows what it
appended: :class:`AppendTail` keeps the log's end as this process sequenced it
and the last few thousand entries, so such a reader catches up from memory and
goes to the store only for what is no longer kept.

It is only as complete as the writer: entries appended by another process or by
another :class:`~custodes.ledger.log.Log` object are not in it.  The data
directory's writer lock makes this process the only writer while it runs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator

__all__ = ["AppendTail"]

KEEP = 16384
"""Entries kept in memory; an append of more is not kept (readers go to the store)."""


class AppendTail:
    """The end of the log as its writer knows it, and its last appended entries."""

    def __init__(self, end: int, keep: int = KEEP) -> None:
        self._end = end
        self._keep = keep
        self._runs: deque[tuple[int, list[bytes]]] = deque()
        self._held = 0
        self._lock = threading.Lock()  # never held across I/O

    @property
    def end(self) -> int:
        """How many entries the log holds, as of this process's last append."""
        return self._end

    def capture(self, entries: Iterable[bytes], into: list[bytes]) -> Iterator[bytes]:
        """Pass ``entries`` through, keeping the first ``KEEP + 1`` of them in ``into``
        (a longer append is then seen as incomplete by :meth:`appended`)."""
        for e in entries:
            if len(into) <= self._keep:
                into.append(e)
            yield e

    def appended(self, first: int, count: int, kept: list[bytes]) -> None:
        """Record a durable append of ``count`` entries at ``first``."""
        with self._lock:
            if first != self._end or len(kept) != count:  # a gap, or too many to keep
                self._runs.clear()
                self._held = 0
            if count and len(kept) == count:
                self._runs.append((first, kept))
                self._held += count
                while self._held - len(self._runs[0][1]) >= self._keep:
                    self._held -= len(self._runs.popleft()[1])
            self._end = max(self._end, first + count)

    def read(self, start: int, end: int) -> list[bytes] | None:
        """Entries ``start .. end - 1`` if all are kept here, else None."""
        if start == end:
            return []
        with self._lock:
            if not self._runs or start < self._runs[0][0] or end > self._end:
                return None
            wanted: list[tuple[int, list[bytes]]] = []
            for first, run in reversed(self._runs):  # readers want the newest few
                if first + len(run) <= start:
                    break
                wanted.append((first, run))
        out: list[bytes] = []
        for first, run in reversed(wanted):
            lo, hi = max(start, first), min(end, first + len(run))
            if lo < hi:
                out.extend(run[lo - first : hi - first])
        return out if len(out) == end - start else None
