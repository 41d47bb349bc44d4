"""custodes.geo: districts, categorised places, and how watched each one is.

:mod:`custodes.geo.geometry` (distances, areas, containment, view cones) and
:mod:`custodes.geo.coverage` (the cameras near each place) import only the
standard library, so anyone recomputing a published figure needs nothing else;
:mod:`custodes.geo.ops` writes definitions into the log.
"""

from custodes.geo.coverage import place_coverage
from custodes.geo.geometry import (
    bbox,
    haversine_m,
    point_in_polygon,
    polygon_area_km2,
    view_cone,
)
from custodes.geo.imports import District, Place, parse_districts, parse_places

__all__ = [
    "District",
    "Place",
    "bbox",
    "haversine_m",
    "parse_districts",
    "parse_places",
    "place_coverage",
    "point_in_polygon",
    "polygon_area_km2",
    "view_cone",
]
