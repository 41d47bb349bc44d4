"""Imports from OpenStreetMap (Overpass JSON) and GeoJSON, and the GeoJSON export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custodes.errors import FormatError
from custodes.fleet.imports import parse_cameras, to_geojson

DATA = Path(__file__).parent / "data"


def test_overpass_fixture_takes_cameras_and_explains_the_rest() -> None:
    result = parse_cameras((DATA / "overpass_moscow.json").read_bytes())
    cams = {c.id: c for c in result.cameras}
    assert sorted(cams) == sorted(
        [
            "MSK-0001",
            "MSK-0002",
            "MSK-0004",
            "METRO-12",
            "ALPR-7",
            "osm-node-4122336790",
            "osm-node-5011223344",
            "osm-node-6011223347",
        ]
    )
    assert cams["MSK-0001"].direction == 45.0  # camera:direction=NE
    assert cams["MSK-0001"].type == "dome" and cams["MSK-0001"].mount == "wall"
    assert cams["MSK-0001"].operator == "ЦОДД" and cams["MSK-0001"].zone == "town"
    assert cams["MSK-0002"].direction == 135.0  # the older direction key
    assert cams["MSK-0002"].name == "Театральная площадь"
    assert cams["osm-node-4122336790"].direction == 292.5  # camera:direction wins
    assert cams["osm-node-6011223347"].direction == 247.5  # "wsw"
    assert cams["MSK-0004"].direction is None and cams["MSK-0004"].type is None
    assert (cams["METRO-12"].lat, cams["METRO-12"].lon) == (55.75615, 37.61515)
    # A number-plate camera is a camera, recorded as one (custodes reads no plates).
    assert cams["ALPR-7"].capabilities.plate_reading_capable
    assert not cams["MSK-0001"].capabilities.plate_reading_capable

    skipped = {s.element: s.reason for s in result.skipped}
    assert skipped == {
        "node/6011223345": "surveillance:type=guard is not a camera",
        "node/6011223349": "its id MSK-0001 repeats node/1785423412",
        "node/7000000001": "not man_made=surveillance",
        "node/7000000002": "no tags (a geometry node, not a camera)",
        "node/7000000003": "no tags (a geometry node, not a camera)",
        "way/88002": "no position (ask Overpass for 'out center' for ways)",
        "way/88003": "not man_made=surveillance",
        "relation/99001": "a relation has no single position",
    }
    warned = {s.element for s in result.warnings}
    assert {"node/5011223344", "node/6011223347", "node/6011223348"} <= warned


def test_geojson_round_trip_keeps_every_field() -> None:
    first = parse_cameras((DATA / "overpass_moscow.json").read_bytes()).cameras
    doc = to_geojson(first)
    again = parse_cameras(json.dumps(doc).encode())
    assert again.cameras == first and not again.skipped


def test_geojson_ids_and_skips() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "F-1",
                "geometry": {"type": "Point", "coordinates": [37.6, 55.7]},
                "properties": {"type": "fixed", "capabilities": {"ptz": True}},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.7, 55.8]},
                "properties": {"id": "P-2"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.8, 55.9]},
                "properties": {"name": "no id"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                "properties": {},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.8, 95.0]},
                "properties": {"id": "too-north"},
            },
        ],
    }
    result = parse_cameras(json.dumps(doc).encode())
    ids = [c.id for c in result.cameras]
    assert ids[:2] == ["F-1", "P-2"] and ids[2].startswith("geo-")
    assert result.cameras[0].capabilities.ptz
    again = parse_cameras(json.dumps(doc).encode())
    assert [c.id for c in again.cameras] == ids  # derived ids are stable
    assert [s.element for s in result.skipped] == ["feature 3", "feature 4"]


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"type": "Topology"}'])
def test_unknown_files_are_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_cameras(data)
