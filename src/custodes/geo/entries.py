"""The geography's log entries: districts and categorised places.

Coverage figures (cameras per km², per 1,000 residents, how watched each
category of place is) are computed from these entries and the cameras'
``camera.registered`` / ``camera.changed`` / ``camera.retired`` entries, so
anyone holding the log can recompute them.

``district.defined``  ``district`` (id), ``name``, ``population`` (integer or
                      null), ``area_km2`` (rounded to 3 decimals, computed from
                      the polygon) and ``polygon``: GeoJSON ``Polygon`` or
                      ``MultiPolygon`` coordinates ([lon, lat] pairs)
``district.removed``  ``district``
``place.defined``     ``place`` (id), ``category`` (e.g. ``worship``, ``school``,
                      ``official-residence``, ``protest-site``), ``name``,
                      ``lat``, ``lon``
``place.removed``     ``place``
"""

from __future__ import annotations

from typing import Any

from custodes.fleet.model import format_time

__all__ = ["GEO_TYPES", "district_defined", "district_removed", "place_defined", "place_removed"]

V = 1
GEO_TYPES = ("district.defined", "district.removed", "place.defined", "place.removed")


def _base(kind: str, now_ms: int) -> dict[str, Any]:
    return {"type": kind, "v": V, "time": format_time(now_ms)}


def district_defined(
    district: str,
    name: str,
    population: int | None,
    area_km2: float,
    polygon: dict[str, Any],
    now_ms: int,
) -> dict[str, Any]:
    return {
        **_base("district.defined", now_ms),
        "district": district,
        "name": name,
        "population": population,
        "area_km2": round(area_km2, 3),
        "polygon": polygon,
    }


def district_removed(district: str, now_ms: int) -> dict[str, Any]:
    return {**_base("district.removed", now_ms), "district": district}


def place_defined(
    place: str, category: str, name: str, lat: float, lon: float, now_ms: int
) -> dict[str, Any]:
    return {
        **_base("place.defined", now_ms),
        "place": place,
        "category": category,
        "name": name,
        "lat": lat,
        "lon": lon,
    }


def place_removed(place: str, now_ms: int) -> dict[str, Any]:
    return {**_base("place.removed", now_ms), "place": place}
