"""Reading districts and places: strict, all or nothing, and errors that name the feature."""

from __future__ import annotations

import json
from typing import Any

import pytest

from custodes.errors import FormatError
from custodes.geo.imports import parse_districts, parse_places
from tests.geo.city import districts_geojson, places_geojson, square


def _doc(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def _district(**props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": square(37.6, 55.75)}


def test_the_city_reads_back_with_areas_from_the_polygons() -> None:
    districts = parse_districts(json.dumps(districts_geojson()).encode())
    assert [d.id for d in districts] == ["west", "centre", "east"]
    assert [d.population for d in districts] == [20000, 5000, None]
    assert all(0.69 < d.area_km2 < 0.70 for d in districts)
    places = parse_places(json.dumps(places_geojson()).encode())
    assert {p.category for p in places} == {"school", "official-residence"}


@pytest.mark.parametrize(
    ("feature", "words"),
    [
        (_district(id="a", population=-1), "population"),
        (_district(id="a", population=1.5), "population"),
        (_district(name="no id"), "id"),
        (
            {
                "type": "Feature",
                "properties": {"id": "a"},
                "geometry": {"type": "Point", "coordinates": [0, 0]},
            },
            "not a (Multi)Polygon",
        ),
        (
            {
                "type": "Feature",
                "properties": {"id": "a"},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
            },
            "end where it starts",
        ),
        (
            {
                "type": "Feature",
                "properties": {"id": "a"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]],
                },
            },
            "longitude and latitude",
        ),
    ],
)
def test_a_bad_district_refuses_the_file_naming_the_feature(
    feature: dict[str, Any], words: str
) -> None:
    with pytest.raises(FormatError) as err:
        parse_districts(_doc(_district(id="fine"), feature))
    assert "districts feature 1" in str(err.value) and words in str(err.value)


def test_duplicate_ids_and_non_collections_are_refused() -> None:
    with pytest.raises(FormatError, match="appears twice"):
        parse_districts(_doc(_district(id="a"), _district(id="a")))
    with pytest.raises(FormatError, match="FeatureCollection"):
        parse_districts(b'{"type": "Feature"}')
    with pytest.raises(FormatError, match="not JSON"):
        parse_places(b"{nope")


def test_a_place_needs_a_point_and_a_category_slug() -> None:
    point = {"type": "Point", "coordinates": [37.6, 55.75]}
    with pytest.raises(FormatError, match="slug"):
        parse_places(
            _doc(
                {
                    "type": "Feature",
                    "properties": {"id": "p", "category": "Worship!"},
                    "geometry": point,
                }
            )
        )
    with pytest.raises(FormatError, match="Point"):
        parse_places(
            _doc(
                {
                    "type": "Feature",
                    "properties": {"id": "p", "category": "school"},
                    "geometry": square(0, 0),
                }
            )
        )
    [place] = parse_places(
        _doc({"type": "Feature", "id": 7, "properties": {"category": "school"}, "geometry": point})
    )
    assert (place.id, place.name, place.lat, place.lon) == ("7", "7", 55.75, 37.6)
