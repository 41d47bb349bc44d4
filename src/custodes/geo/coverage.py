"""Which cameras stand near each categorised place.

The published figures per district and per category of place are defined
once, in :mod:`custodes.reports.figures` (``coverage``, ``place_categories``),
so that the dashboard, ``custodes geo coverage`` and the transparency report
agree.  This module adds the per-place detail the map shows: for each place,
the active cameras within ``radius_m`` (haversine), by the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from custodes.geo.geometry import haversine_m

__all__ = ["place_coverage"]


def _points(cameras: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, float]]:
    return [(str(c["id"]), float(c["lat"]), float(c["lon"])) for c in cameras]


class _Grid:
    """Cameras bucketed by cells about ``size_m`` wide, for radius queries."""

    def __init__(self, points: list[tuple[str, float, float]], size_m: float) -> None:
        self.dlat = max(size_m, 1.0) / 111_195.0
        self.cells: dict[tuple[int, int], list[tuple[str, float, float]]] = {}
        for p in points:
            self.cells.setdefault(self._key(p[1], p[2]), []).append(p)

    def _key(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.dlat), math.floor(lon / self.dlat)

    def near(self, lat: float, lon: float, radius_m: float) -> list[str]:
        dlon_scale = max(0.01, math.cos(math.radians(lat)))
        reach_lat = math.ceil(radius_m / 111_195.0 / self.dlat) + 1
        reach_lon = math.ceil(radius_m / (111_195.0 * dlon_scale) / self.dlat) + 1
        ky, kx = self._key(lat, lon)
        out = []
        for y in range(ky - reach_lat, ky + reach_lat + 1):
            for x in range(kx - reach_lon, kx + reach_lon + 1):
                for cid, clat, clon in self.cells.get((y, x), ()):
                    if haversine_m(lat, lon, clat, clon) <= radius_m:
                        out.append(cid)
        return sorted(out)


def place_coverage(
    cameras: Iterable[Mapping[str, Any]],
    places: Mapping[str, Mapping[str, Any]],
    radius_m: float = 100.0,
) -> list[dict[str, Any]]:
    """Per place (in id order): its category, name, position and the cameras within radius."""
    grid = _Grid(_points(cameras), radius_m)
    rows = []
    for pid in sorted(places):
        p = places[pid]
        near = grid.near(float(p["lat"]), float(p["lon"]), radius_m)
        rows.append(
            {
                "place": pid,
                "category": p["category"],
                "name": p.get("name", pid),
                "lat": p["lat"],
                "lon": p["lon"],
                "cameras": len(near),
                "camera_ids": near,
            }
        )
    return rows
