"""Putting the geography into the log: ``district.defined`` and ``place.defined`` entries.

The log is the record: the current districts and places are whatever its
``district.*`` and ``place.*`` entries say, read back with :func:`read_geo`.
An import appends an entry only for what is new or changed, so importing the
same file twice writes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from custodes.fleet.model import now_ms as _now
from custodes.geo import entries as E
from custodes.geo.imports import District, Place
from custodes.ledger.log import Log
from custodes.ledger.reader import LogReader
from custodes.records.canonical import canonicalize

__all__ = ["GeoState", "import_districts", "import_places", "read_geo"]

CHUNK = 4096


@dataclass
class GeoState:
    """The districts and places in force: id to the ``*.defined`` entry that defined it."""

    districts: dict[str, dict[str, Any]] = field(default_factory=dict)
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: int = 0

    def apply(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "district.defined":
            self.districts[obj["district"]] = obj
        elif kind == "district.removed":
            self.districts.pop(obj["district"], None)
        elif kind == "place.defined":
            self.places[obj["place"]] = obj
        elif kind == "place.removed":
            self.places.pop(obj["place"], None)


def read_geo(reader: LogReader, state: GeoState | None = None) -> GeoState:
    """The geography in the log, read from ``state.size`` on (from the start by default)."""
    st = state or GeoState()
    end = reader.store.next_index()
    while st.size < end:
        stop = min(end, st.size + CHUNK)
        for data in reader.store.read_entries(st.size, stop):
            if b'"district.' not in data and b'"place.' not in data:
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("type") in E.GEO_TYPES:
                st.apply(obj)
        st.size = stop
    return st


def _same(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False
    keep = {k: v for k, v in old.items() if k != "time"}
    fresh = {k: v for k, v in new.items() if k != "time"}
    return canonicalize(keep) == canonicalize(fresh)


def _append(log: Log, objs: Sequence[dict[str, Any]]) -> int | None:
    if not objs:
        return None
    first, _count = log.append([canonicalize(o) for o in objs])
    return first


def import_districts(
    log: Log,
    districts: Iterable[District],
    *,
    current: GeoState | None = None,
    remove_missing: bool = False,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Log each new or changed district; with ``remove_missing``, remove the others.

    Returns ``{"defined": [ids], "unchanged": [ids], "removed": [ids], "first_index"}``.
    """
    at = _now() if now_ms is None else now_ms
    st = read_geo(log, current)
    wanted = {
        d.id: E.district_defined(d.id, d.name, d.population, d.area_km2, d.polygon, at)
        for d in districts
    }
    return _import(log, st, st.districts, wanted, E.district_removed, remove_missing, at)


def import_places(
    log: Log,
    places: Iterable[Place],
    *,
    current: GeoState | None = None,
    remove_missing: bool = False,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Log each new or changed place; with ``remove_missing``, remove the others."""
    at = _now() if now_ms is None else now_ms
    st = read_geo(log, current)
    wanted = {p.id: E.place_defined(p.id, p.category, p.name, p.lat, p.lon, at) for p in places}
    return _import(log, st, st.places, wanted, E.place_removed, remove_missing, at)


def _import(
    log: Log,
    st: GeoState,
    have: dict[str, dict[str, Any]],
    wanted: dict[str, dict[str, Any]],
    removal: Callable[[str, int], dict[str, Any]],
    remove_missing: bool,
    at: int,
) -> dict[str, Any]:
    """Append a definition for each new or changed item; removals for the rest if asked."""
    objs: list[dict[str, Any]] = []
    defined: list[str] = []
    unchanged: list[str] = []
    for key, obj in wanted.items():
        if _same(have.get(key), obj):
            unchanged.append(key)
        else:
            objs.append(obj)
            defined.append(key)
    removed = sorted(set(have) - set(wanted)) if remove_missing else []
    objs.extend(removal(r, at) for r in removed)
    first = _append(log, objs)
    for o in objs:
        st.apply(o)
    return {"defined": defined, "unchanged": unchanged, "removed": removed, "first_index": first}
