"""Putting the geography into the log: ``district.defined`` and ``place.defined`` entries.

The log is the record: the current districts and places are whatever its
``district.*`` and ``place.*`` entries say, read back with :func:`read_geo`.
An import appends an entry only for what is new or changed, so importing the
same file twice writes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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
    objs: list[dict[str, Any]] = []
    defined: list[str] = []
    unchanged: list[str] = []
    given: set[str] = set()
    for d in districts:
        given.add(d.id)
        obj = E.district_defined(d.id, d.name, d.population, d.area_km2, d.polygon, at)
        if _same(st.districts.get(d.id), obj):
            unchanged.append(d.id)
        else:
            objs.append(obj)
            defined.append(d.id)
    removed = sorted(set(st.districts) - given) if remove_missing else []
    objs.extend(E.district_removed(r, at) for r in removed)
    first = _append(log, objs)
    for o in objs:
        st.apply(o)
    return {"defined": defined, "unchanged": unchanged, "removed": removed, "first_index": first}


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
    objs: list[dict[str, Any]] = []
    defined: list[str] = []
    unchanged: list[str] = []
    given: set[str] = set()
    for p in places:
        given.add(p.id)
        obj = E.place_defined(p.id, p.category, p.name, p.lat, p.lon, at)
        if _same(st.places.get(p.id), obj):
            unchanged.append(p.id)
        else:
            objs.append(obj)
            defined.append(p.id)
    removed = sorted(set(st.places) - given) if remove_missing else []
    objs.extend(E.place_removed(r, at) for r in removed)
    first = _append(log, objs)
    for o in objs:
        st.apply(o)
    return {"defined": defined, "unchanged": unchanged, "removed": removed, "first_index": first}
