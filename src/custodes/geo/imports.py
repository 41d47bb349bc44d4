"""Reading districts and categorised places from GeoJSON.

Districts: a FeatureCollection of ``Polygon`` or ``MultiPolygon`` features
whose properties give ``id`` (or the feature's own ``id``), ``name`` and,
optionally, ``population`` (a whole number of residents)::

    {"type": "Feature", "properties": {"id": "north", "name": "North", "population": 52000},
     "geometry": {"type": "Polygon", "coordinates": [[[37.60, 55.76], ...]]}}

Places: a FeatureCollection of ``Point`` features with ``id`` (or the
feature's ``id``), ``category`` (a short slug such as ``worship``, ``school``,
``official-residence`` or ``protest-site``) and ``name``.

Parsing is strict and all or nothing: one bad feature refuses the file, and
the error names the feature, so a district never silently goes missing from
the published coverage figures.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from custodes.errors import FormatError
from custodes.geo.geometry import polygon_area_km2

__all__ = ["District", "Place", "parse_districts", "parse_places"]

MAX_GEO_BYTES = 64 << 20
MAX_FEATURES = 200_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class District:
    id: str
    name: str
    population: int | None
    polygon: dict[str, Any]
    """The GeoJSON geometry object: ``{"type": "Polygon" | "MultiPolygon", "coordinates": ...}``."""

    @property
    def area_km2(self) -> float:
        return round(polygon_area_km2(self.polygon), 3)


@dataclass(frozen=True)
class Place:
    id: str
    category: str
    name: str
    lat: float
    lon: float


def _features(data: bytes, what: str) -> list[Any]:
    if len(data) > MAX_GEO_BYTES:
        raise FormatError(f"the {what} file is larger than {MAX_GEO_BYTES >> 20} MiB")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"the {what} file is not JSON") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise FormatError(f"the {what} file must be a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise FormatError(f"the {what} FeatureCollection has no features list")
    if len(features) > MAX_FEATURES:
        raise FormatError(f"the {what} file holds more than {MAX_FEATURES} features")
    return features


def _number(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _position(p: object, where: str) -> list[float]:
    if not isinstance(p, list) or len(p) < 2:
        raise FormatError(f"{where}: a position must be [lon, lat]")
    lon, lat = _number(p[0]), _number(p[1])
    if lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise FormatError(f"{where}: the position {p!r} is not a longitude and latitude")
    return [lon, lat]


def _ring(r: object, where: str) -> list[list[float]]:
    if not isinstance(r, list) or len(r) < 4:
        raise FormatError(f"{where}: a polygon ring needs at least 4 positions")
    ring = [_position(p, where) for p in r]
    if ring[0] != ring[-1]:
        raise FormatError(f"{where}: a polygon ring must end where it starts")
    return ring


def _polygon(rings: object, where: str) -> list[list[list[float]]]:
    if not isinstance(rings, list) or not rings:
        raise FormatError(f"{where}: a polygon needs an outer ring")
    return [_ring(r, where) for r in rings]


def _geometry(geom: object, where: str) -> dict[str, Any]:
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        got = geom.get("type") if isinstance(geom, dict) else None
        raise FormatError(f"{where}: the geometry is {got or 'missing'}, not a (Multi)Polygon")
    coords = geom.get("coordinates")
    if geom["type"] == "Polygon":
        return {"type": "Polygon", "coordinates": _polygon(coords, where)}
    if not isinstance(coords, list) or not coords:
        raise FormatError(f"{where}: a MultiPolygon needs at least one polygon")
    return {"type": "MultiPolygon", "coordinates": [_polygon(p, where) for p in coords]}


def _id(feat: dict[str, Any], props: dict[str, Any], where: str) -> str:
    given = props.get("id", feat.get("id"))
    if isinstance(given, int) and not isinstance(given, bool):
        given = str(given)
    if not isinstance(given, str) or not _ID.fullmatch(given):
        raise FormatError(f"{where}: the id must be 1-128 letters, digits or . _ : -")
    return given


def _feature(n: int, feat: object, what: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    where = f"{what} feature {n}"
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        raise FormatError(f"{where} is not a GeoJSON Feature")
    props = feat.get("properties") or {}
    if not isinstance(props, dict):
        raise FormatError(f"{where}: its properties are not an object")
    return feat, props, where


def _name(props: dict[str, Any], fallback: str, where: str) -> str:
    name = props.get("name", fallback)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise FormatError(f"{where}: the name must be text of 1-200 characters")
    return name.strip()


def parse_districts(data: bytes) -> list[District]:
    """Districts from a GeoJSON FeatureCollection of (Multi)Polygons; all or nothing."""
    out: list[District] = []
    seen: set[str] = set()
    for n, raw in enumerate(_features(data, "districts")):
        feat, props, where = _feature(n, raw, "districts")
        ident = _id(feat, props, where)
        if ident in seen:
            raise FormatError(f"{where}: the district id {ident} appears twice")
        seen.add(ident)
        pop = props.get("population")
        if pop is not None and (isinstance(pop, bool) or not isinstance(pop, int) or pop < 0):
            raise FormatError(f"{where}: the population must be a whole number of residents")
        geom = _geometry(feat.get("geometry"), where)
        district = District(ident, _name(props, ident, where), pop, geom)
        if district.area_km2 <= 0:
            raise FormatError(f"{where}: the district {ident} has no area")
        out.append(district)
    return out


def parse_places(data: bytes) -> list[Place]:
    """Categorised places from a GeoJSON FeatureCollection of Points; all or nothing."""
    out: list[Place] = []
    seen: set[str] = set()
    for n, raw in enumerate(_features(data, "places")):
        feat, props, where = _feature(n, raw, "places")
        ident = _id(feat, props, where)
        if ident in seen:
            raise FormatError(f"{where}: the place id {ident} appears twice")
        seen.add(ident)
        geom = feat.get("geometry")
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            raise FormatError(f"{where}: a place's geometry must be a Point")
        lon, lat = _position(geom.get("coordinates"), where)
        category = props.get("category")
        if not isinstance(category, str) or not _CATEGORY.fullmatch(category):
            raise FormatError(
                f"{where}: the category must be a lower-case slug such as worship or protest-site"
            )
        out.append(Place(ident, category, _name(props, ident, where), lat, lon))
    return out
