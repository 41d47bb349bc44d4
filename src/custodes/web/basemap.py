"""The demo city's own base map: streets and blocks drawn from its district grid.

The demo city (:mod:`custodes.demo.city`) is made up, so no tile server has
its streets.  Without a tile layer its map would be cameras on grey; this
module draws a plausible street plan from the city's own geometry instead,
so that the map reads like a city:

* each district's boundary is an avenue;
* inside a district, streets run every ``STREET_M`` metres both ways;
* between the streets, each block is a rectangle set back from the kerbs,
  some of them parks (more in the leafy north-east, as the demo describes).

The plan is a pure function of the district polygons in the public log, so
anyone replaying the log draws the same map.  It is served only for the
demo city: a real city without a tile layer gets no invented streets.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["STREET_M", "street_plan"]

STREET_M = 275.0
"""Metres between two streets of a district (the demo's districts are 2,200 m: eight blocks)."""
KERB_M = 22.0
"""How far a block is set back from the middle of its streets."""
M_PER_DEG = 111_320.0


def _bbox(polygon: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of a GeoJSON Polygon or MultiPolygon, in degrees."""
    rings = polygon.get("coordinates") or []
    if polygon.get("type") == "MultiPolygon":
        rings = [ring for poly in rings for ring in poly]
    pts = [p for ring in rings for p in ring if isinstance(p, list | tuple) and len(p) >= 2]
    if not pts:
        return None
    lons = [float(p[0]) for p in pts]
    lats = [float(p[1]) for p in pts]
    return min(lons), min(lats), max(lons), max(lats)


def _steps(lo: float, hi: float, step: float) -> list[float]:
    """Evenly spaced cuts from lo to hi (both included), about ``step`` apart."""
    n = max(1, round((hi - lo) / step))
    return [lo + (hi - lo) * k / n for k in range(n + 1)]


def _line(kind: str, a: tuple[float, float], b: tuple[float, float]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [list(a), list(b)]},
        "properties": {"kind": kind},
    }


def street_plan(districts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of avenues, streets, blocks and parks for ``districts``.

    ``districts`` maps district ids to their records (with a ``polygon``), as in
    :class:`~custodes.reports.replay.PublicState`.  Features carry a ``kind``:
    ``avenue``, ``street``, ``block`` or ``park``; blocks and parks are drawn
    first, so that streets lie over them.
    """
    areas: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    avenues: set[tuple[tuple[float, float], tuple[float, float]]] = set()
    for did in sorted(districts):
        box = _bbox(districts[did].get("polygon") or {})
        if box is None:
            continue
        west, south, east, north = box
        mid = math.radians((south + north) / 2)
        dlat = STREET_M / M_PER_DEG
        dlon = STREET_M / (M_PER_DEG * max(0.01, math.cos(mid)))
        xs = _steps(west, east, dlon)
        ys = _steps(south, north, dlat)
        kerb_lat = KERB_M / M_PER_DEG
        kerb_lon = KERB_M / (M_PER_DEG * max(0.01, math.cos(mid)))
        leafy = "northeast" in did or "north-east" in did
        for i, (x0, x1) in enumerate(zip(xs, xs[1:], strict=False)):
            for j, (y0, y1) in enumerate(zip(ys, ys[1:], strict=False)):
                park = (i * 7 + j * 3) % (3 if leafy else 13) == 0
                ring = [
                    [round(x0 + kerb_lon, 6), round(y0 + kerb_lat, 6)],
                    [round(x1 - kerb_lon, 6), round(y0 + kerb_lat, 6)],
                    [round(x1 - kerb_lon, 6), round(y1 - kerb_lat, 6)],
                    [round(x0 + kerb_lon, 6), round(y1 - kerb_lat, 6)],
                ]
                ring.append(ring[0])
                areas.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                        "properties": {"kind": "park" if park else "block"},
                    }
                )
        for k, x in enumerate(xs):
            a, b = (round(x, 6), round(south, 6)), (round(x, 6), round(north, 6))
            if k in (0, len(xs) - 1):
                avenues.add((a, b))
            else:
                lines.append(_line("street", a, b))
        for k, y in enumerate(ys):
            a, b = (round(west, 6), round(y, 6)), (round(east, 6), round(y, 6))
            if k in (0, len(ys) - 1):
                avenues.add((a, b))
            else:
                lines.append(_line("street", a, b))
    lines += [_line("avenue", a, b) for a, b in sorted(avenues)]
    return {"type": "FeatureCollection", "features": areas + lines}
