"""Plane-free geometry on the WGS84 sphere: distances, areas, containment and view cones.

Everything here is a pure function of numbers and GeoJSON geometry objects
(``{"type": "Polygon" | "MultiPolygon", "coordinates": ...}`` with
``[lon, lat]`` positions, as in RFC 7946).  Anyone recomputing a published
coverage figure needs only this module and the log.

* :func:`haversine_m`: great-circle distance in metres.
* :func:`point_in_polygon`: even-odd containment in a Polygon or MultiPolygon
  (holes excluded), treating coordinates as planar, which is exact enough for
  city districts.
* :func:`polygon_area_km2`: spherical area (the Chamberlain-Duquette line
  integral, as used by d3 and turf), holes subtracted.
* :func:`bbox`: ``(min_lon, min_lat, max_lon, max_lat)``.
* :func:`destination`: the point reached from a start along a bearing.
* :func:`view_cone`: a camera's field of view as a ring of ``[lon, lat]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "EARTH_RADIUS_M",
    "bbox",
    "destination",
    "haversine_m",
    "point_in_polygon",
    "polygon_area_km2",
    "polygons_of",
    "view_cone",
]

EARTH_RADIUS_M = 6371008.8
"""The mean Earth radius (IUGG), the one custodes uses everywhere."""

Ring = Sequence[Sequence[float]]


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def polygons_of(geometry: dict[str, Any]) -> Iterator[Sequence[Ring]]:
    """Each polygon (outer ring, then holes) of a Polygon or MultiPolygon geometry."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    if kind == "Polygon":
        yield coords
    elif kind == "MultiPolygon":
        yield from coords


def _in_ring(x: float, y: float, ring: Ring) -> bool:
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def point_in_polygon(lat: float, lon: float, geometry: dict[str, Any]) -> bool:
    """True when the point lies inside the geometry's area (and outside its holes)."""
    for rings in polygons_of(geometry):
        if not rings or not _in_ring(lon, lat, rings[0]):
            continue
        if not any(_in_ring(lon, lat, hole) for hole in rings[1:]):
            return True
    return False


def _ring_area_m2(ring: Ring) -> float:
    """Absolute spherical area of one ring, in square metres."""
    n = len(ring)
    if n < 3:
        return 0.0
    total = 0.0
    for i in range(n):
        lon1, lat1 = ring[i][0], ring[i][1]
        lon2, lat2 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        total += math.radians(lon2 - lon1) * (
            2 + math.sin(math.radians(lat1)) + math.sin(math.radians(lat2))
        )
    return abs(total * EARTH_RADIUS_M * EARTH_RADIUS_M / 2)


def polygon_area_km2(geometry: dict[str, Any]) -> float:
    """The area of a Polygon or MultiPolygon in km² (holes subtracted)."""
    m2 = 0.0
    for rings in polygons_of(geometry):
        if not rings:
            continue
        m2 += _ring_area_m2(rings[0]) - sum(_ring_area_m2(h) for h in rings[1:])
    return max(0.0, m2) / 1e6


def bbox(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """``(min_lon, min_lat, max_lon, max_lat)`` of a Polygon or MultiPolygon."""
    lons: list[float] = []
    lats: list[float] = []
    for rings in polygons_of(geometry):
        for ring in rings:
            lons.extend(p[0] for p in ring)
            lats.extend(p[1] for p in ring)
    if not lons:
        raise ValueError("the geometry has no positions")
    return min(lons), min(lats), max(lons), max(lats)


def destination(
    lat: float, lon: float, bearing_deg: float, distance_m: float
) -> tuple[float, float]:
    """``(lat, lon)`` reached from a point along a compass bearing over a distance."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon2 = (math.degrees(l2) + 540) % 360 - 180
    return math.degrees(p2), lon2


def view_cone(
    lat: float,
    lon: float,
    direction: float,
    field_of_view: float,
    range_m: float,
    *,
    steps: int = 8,
) -> list[list[float]]:
    """A closed ring of ``[lon, lat]`` outlining what a camera sees.

    The camera sits at the apex; the arc spans ``field_of_view`` degrees centred
    on ``direction`` at ``range_m`` metres.  A 360° view gives a full circle.
    """
    fov = min(max(field_of_view, 1.0), 360.0)
    full = fov >= 360.0
    start = direction - fov / 2
    count = max(2, steps if not full else steps * 4)
    arc = []
    for i in range(count + 1):
        la, lo = destination(lat, lon, start + fov * i / count, range_m)
        arc.append([round(lo, 7), round(la, 7)])
    if full:
        return arc[:-1] + [arc[0]]
    apex = [round(lon, 7), round(lat, 7)]
    return [apex, *arc, apex]
