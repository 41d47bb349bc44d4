"""The camera model's parsers: directions, times, records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custodes.errors import FormatError
from custodes.fleet.model import Camera, Capabilities, format_time, parse_direction, parse_time

CARDINALS = "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split()


@pytest.mark.parametrize(
    ("text", "bearing"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("360", 0.0),
        ("-45", 315.0),
        ("292.5", 292.5),
        ("NE", 45.0),
        ("wsw", 247.5),
        (" S ", 180.0),
        ("0-90", 0.0),
        ("90;270", 90.0),
    ],
)
def test_direction_values_seen_in_osm(text: str, bearing: float) -> None:
    assert parse_direction(text) == bearing


@pytest.mark.parametrize("text", ["", "up", "forward", "NEE", "1e3", "400", "--5", "90°"])
def test_direction_rubbish_gives_none(text: str) -> None:
    assert parse_direction(text) is None


@given(st.integers(min_value=0, max_value=359))
def test_direction_degrees_round_trip(deg: int) -> None:
    assert parse_direction(str(deg)) == float(deg)


@given(st.sampled_from(CARDINALS), st.booleans())
def test_direction_cardinals_in_any_case(name: str, lower: bool) -> None:
    bearing = parse_direction(name.lower() if lower else name)
    assert bearing == CARDINALS.index(name) * 22.5


@given(st.text(max_size=12))
def test_direction_never_raises_and_stays_in_range(text: str) -> None:
    bearing = parse_direction(text)
    assert bearing is None or 0 <= bearing < 360


@given(st.integers(min_value=0, max_value=253402300799999))
def test_time_format_parse_round_trip(ms: int) -> None:
    assert parse_time(format_time(ms)) == ms


def test_time_with_offset_is_converted_to_utc() -> None:
    assert format_time(parse_time("2026-01-02T03:04:05.5+03:00")) == "2026-01-02T00:04:05.500Z"


@pytest.mark.parametrize("text", ["2026-01-02T03:04:05", "2026-02-30T00:00:00Z", "yesterday", 5])
def test_times_without_zone_or_impossible_are_refused(text: object) -> None:
    with pytest.raises(FormatError):
        parse_time(text)


def test_camera_record_round_trip_and_changes() -> None:
    cam = Camera(
        id="C-1",
        lat=55.75,
        lon=37.61,
        direction=45.0,
        type="dome",
        capabilities=Capabilities(audio=True, face_recognition_capable=True),
        operator="City",
        legal_basis="Decree 410",
        district="Tverskoy",
    )
    assert Camera.from_record(cam.to_record()) == cam
    moved = Camera.from_record({**cam.to_record(), "lat": 55.76, "operator": None})
    assert moved.changes_from(cam) == {"lat": 55.76, "operator": None}


@pytest.mark.parametrize(
    "rec",
    [
        {"id": "bad id", "lat": 1, "lon": 1},
        {"id": "a", "lat": 91, "lon": 1},
        {"id": "a", "lat": 1, "lon": 1, "type": "bullet"},
        {"id": "a", "lat": 1, "lon": 1, "direction": 360},
        {"id": "a", "lat": 1, "lon": 1, "colour": "red"},
        {"id": "a", "lat": 1, "lon": 1, "capabilities": {"recognises_faces": True}},
    ],
)
def test_bad_camera_records_are_refused(rec: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        Camera.from_record(rec)
