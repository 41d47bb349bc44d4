"""An index of the public log for the browsing pages: each entry's type and time, and the
entries that name each camera.

:class:`~custodes.web.public.PublicView` feeds it every entry it applies, so it
covers exactly the entries up to the public checkpoint.  It holds two numbers
an entry (a type code and a time) plus, for the entries that name cameras,
their indexes under each camera: a million entries cost about 10 MB.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

from custodes.errors import FormatError
from custodes.reports.replay import time_ms

__all__ = ["CAMERA_TYPES", "EntryIndex", "Found", "cameras_named"]

CAMERA_TYPES = (
    "camera.registered",
    "camera.changed",
    "camera.retired",
    "camera.silent",
    "camera.back",
    "outage.correlated",
    "outage.declared",
    "maintenance.declared",
    "access.disclosed",
)
"""The entry types that name cameras, and so appear on a camera's page."""

NO_TIME = -(2**62)


def cameras_named(obj: dict[str, Any]) -> list[str]:
    """The camera ids an entry names (an empty list for most entries)."""
    kind = obj.get("type")
    if kind not in CAMERA_TYPES:
        return []
    cam = obj.get("camera")
    if kind == "camera.registered":
        cam = cam.get("id") if isinstance(cam, dict) else None
    if isinstance(cam, str):
        return [cam]
    cams = obj.get("cameras")
    if isinstance(cams, list):
        return sorted({c for c in cams if isinstance(c, str)})
    return []


@dataclass(frozen=True)
class Found:
    """One page of a search: the entry indexes (newest first), how many matched in all."""

    indexes: list[int]
    total: int


class EntryIndex:
    """Types, times and cameras of the entries ``0 .. size - 1``, in log order."""

    def __init__(self) -> None:
        self._codes = array("H")
        self._times = array("q")
        self._names: list[str] = []
        self._code_of: dict[str, int] = {}
        self._by_type: dict[int, array[int]] = {}
        self.by_camera: dict[str, list[int]] = {}

    @property
    def size(self) -> int:
        return len(self._codes)

    def add(self, index: int, obj: Any) -> None:
        """Index entry ``index`` (its parsed JSON, or anything else for an unreadable one)."""
        while self.size < index:  # never happens when fed in order; keeps indexes aligned
            self.add(self.size, None)
        kind = obj.get("type") if isinstance(obj, dict) else None
        name = kind if isinstance(kind, str) and len(kind) <= 64 else "(unreadable)"
        code = self._code_of.get(name)
        if code is None:
            code = len(self._names)
            if code >= 65535:  # more kinds than anyone writes: lump the rest together
                code = self._code_of.setdefault("(other)", code - 1)
            else:
                self._names.append(name)
                self._code_of[name] = code
        when = NO_TIME
        if isinstance(obj, dict) and isinstance(obj.get("time"), str):
            try:
                when = time_ms(obj["time"])
            except FormatError:
                pass
        self._codes.append(code)
        self._times.append(when)
        self._by_type.setdefault(code, array("q")).append(index)
        if isinstance(obj, dict):
            for cam in cameras_named(obj):
                self.by_camera.setdefault(cam, []).append(index)

    def kind(self, index: int) -> str:
        return self._names[self._codes[index]]

    def time(self, index: int) -> int | None:
        t = self._times[index]
        return None if t == NO_TIME else t

    def counts(self) -> dict[str, int]:
        """Entry type -> how many entries of that type, sorted by type."""
        return {self._names[c]: len(ix) for c, ix in sorted(self._by_type.items(),
                key=lambda kv: self._names[kv[0]])}  # fmt: skip

    def find(
        self,
        *,
        kind: str | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Found:
        """The entries of ``kind`` (any when None) whose time is in ``[from_ms, to_ms)``,
        newest first, ``limit`` of them from ``offset``."""
        if kind is None:
            pool: Any = range(self.size)
        else:
            code = self._code_of.get(kind)
            pool = self._by_type.get(code, array("q")) if code is not None else array("q")
        if from_ms is None and to_ms is None:
            n = len(pool)
            stop = max(0, n - offset)
            start = max(0, stop - limit)
            return Found([pool[i] for i in range(stop - 1, start - 1, -1)], n)
        lo = NO_TIME + 1 if from_ms is None else from_ms
        hi = 2**62 if to_ms is None else to_ms
        times = self._times
        hits = [i for i in pool if lo <= times[i] < hi]
        hits.reverse()
        return Found(hits[offset : offset + limit], len(hits))
