"""Geometry on the sphere: the numbers behind every published coverage figure."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.geo.geometry import (
    EARTH_RADIUS_M,
    bbox,
    destination,
    haversine_m,
    point_in_polygon,
    polygon_area_km2,
    view_cone,
)
from tests.geo.city import square


def _rect_km2(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """The exact spherical area of a longitude-latitude rectangle."""
    r = EARTH_RADIUS_M / 1000
    return (
        r
        * r
        * math.radians(lon1 - lon0)
        * (math.sin(math.radians(lat1)) - math.sin(math.radians(lat0)))
    )


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert abs(haversine_m(0, 0, 1, 0) - 111_195) < 1
    assert haversine_m(55.75, 37.6, 55.75, 37.6) == 0


def test_a_rectangle_has_its_exact_spherical_area() -> None:
    geom = square(37.60, 55.75, 0.01)
    assert math.isclose(polygon_area_km2(geom), _rect_km2(37.60, 55.75, 37.61, 55.76), rel_tol=1e-9)
    assert math.isclose(polygon_area_km2(square(0, 0, 1)), 12363.7, rel_tol=1e-4)


def test_a_hole_is_subtracted_and_a_multipolygon_summed() -> None:
    outer = square(0, 0, 1)["coordinates"][0]
    hole = square(0.25, 0.25, 0.5)["coordinates"][0]
    holed = {"type": "Polygon", "coordinates": [outer, hole]}
    assert math.isclose(
        polygon_area_km2(holed),
        _rect_km2(0, 0, 1, 1) - _rect_km2(0.25, 0.25, 0.75, 0.75),
        rel_tol=1e-9,
    )
    multi = {"type": "MultiPolygon", "coordinates": [[outer], [square(5, 5, 1)["coordinates"][0]]]}
    assert math.isclose(
        polygon_area_km2(multi), _rect_km2(0, 0, 1, 1) + _rect_km2(5, 5, 6, 6), rel_tol=1e-9
    )
    assert point_in_polygon(0.1, 0.1, holed)
    assert not point_in_polygon(0.5, 0.5, holed)  # in the hole
    assert point_in_polygon(5.5, 5.5, multi) and not point_in_polygon(3, 3, multi)
    assert bbox(multi) == (0, 0, 6, 6)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-60, 60), st.floats(-170, 170), st.floats(0.001, 2), st.integers(0, 3), st.booleans()
)
def test_area_does_not_depend_on_where_the_ring_starts_or_its_winding(
    lat: float, lon: float, size: float, shift: int, reverse: bool
) -> None:
    ring = square(lon, lat, size)["coordinates"][0][:-1]
    ring = ring[shift:] + ring[:shift]
    if reverse:
        ring.reverse()
    geom = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    assert math.isclose(
        polygon_area_km2(geom), polygon_area_km2(square(lon, lat, size)), rel_tol=1e-9
    )
    assert point_in_polygon(lat + size / 2, lon + size / 2, geom)
    assert not point_in_polygon(lat - size / 10, lon + size / 2, geom)


@settings(max_examples=60, deadline=None)
@given(st.floats(-80, 80), st.floats(-179, 179), st.floats(0, 359.9), st.floats(1, 10_000))
def test_destination_is_at_the_distance_asked(
    lat: float, lon: float, bearing: float, dist: float
) -> None:
    la, lo = destination(lat, lon, bearing, dist)
    assert math.isclose(haversine_m(lat, lon, la, lo), dist, rel_tol=1e-6, abs_tol=1e-3)


def test_a_view_cone_starts_at_the_camera_and_spans_its_field_of_view() -> None:
    ring = view_cone(55.75, 37.6, 90.0, 60.0, 50.0)
    assert ring[0] == ring[-1] == [37.6, 55.75]
    arc = ring[1:-1]
    for lon, lat in arc:
        assert abs(haversine_m(55.75, 37.6, lat, lon) - 50) < 0.1
        assert lon > 37.6  # pointing east
    # the arc's ends lie 30° either side of east
    first, last = arc[0], arc[-1]
    assert first[1] > 55.75 > last[1]
    full = view_cone(55.75, 37.6, 0.0, 360.0, 50.0)
    assert full[0] == full[-1] and [37.6, 55.75] not in full
