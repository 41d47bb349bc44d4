"""``cameras import`` as an operator importing a city from OpenStreetMap meets it.

Number-plate cameras are cameras (with the capability plate_reading_capable),
a file of which nothing is a camera fails instead of reporting success, and
the help names every GeoJSON property the importer reads.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from custodes.fleet.imports import GEOJSON_PROPERTIES, parse_cameras, to_geojson
from custodes.fleet.model import Camera, Capabilities
from custodes.ledger.instance import Instance
from tests.conftest import run_cli


def log_entries(data: Path) -> list[dict[str, Any]]:
    store = Instance.load(data).reader().store
    try:
        return [json.loads(e) for e in store.read_entries(0, store.next_index())]
    finally:
        store.close()


def _overpass(elements: list[dict[str, object]]) -> bytes:
    return json.dumps({"version": 0.6, "elements": elements}).encode()


def test_alpr_cameras_are_registered_with_their_capability(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = instance
    src = tmp_path / "alpr.json"
    src.write_bytes(
        _overpass(
            [
                {"type": "node", "id": 1, "lat": 55.75, "lon": 37.61,
                 "tags": {"man_made": "surveillance", "surveillance:type": "ALPR",
                          "ref": "ALPR-1"}},
                {"type": "node", "id": 2, "lat": 55.76, "lon": 37.62,
                 "tags": {"man_made": "surveillance", "surveillance:type": "camera",
                          "ref": "CAM-2"}},
            ]
        )
    )  # fmt: skip
    out = run_cli("cameras", "import", str(src), "--json", data=data)
    report = json.loads(out.stdout)
    assert sorted(report["registered"]) == ["ALPR-1", "CAM-2"] and report["skipped"] == []
    listed = {
        c["id"]: c for c in json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    }
    assert listed["ALPR-1"]["capabilities"]["plate_reading_capable"] is True
    # The log says so too; an ordinary camera's record has no new field (records as before).
    regs = {
        e["camera"]["id"]: e["camera"]
        for e in log_entries(data)
        if e["type"] == "camera.registered"
    }
    assert regs["ALPR-1"]["capabilities"]["plate_reading_capable"] is True
    assert set(regs["CAM-2"]["capabilities"]) == {
        "recording", "audio", "ptz", "face_recognition_capable"
    }  # fmt: skip
    # Exported to GeoJSON and read back, the capability stays.
    again = parse_cameras(json.dumps(to_geojson(parse_cameras(src.read_bytes()).cameras)).encode())
    assert [c.capabilities.plate_reading_capable for c in again.cameras] == [True, False]


def test_a_file_with_no_camera_fails_and_writes_nothing(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = instance
    run_cli("cameras", "import", str(Path(__file__).parent / "data" / "overpass_moscow.json"),
            data=data)  # fmt: skip
    before = len(log_entries(data))
    guards = tmp_path / "guards.json"
    guards.write_bytes(
        _overpass(
            [
                {"type": "node", "id": 9, "lat": 55.7, "lon": 37.6,
                 "tags": {"man_made": "surveillance", "surveillance:type": "guard"}},
                {"type": "node", "id": 10, "lat": 55.7, "lon": 37.6, "tags": {"amenity": "bench"}},
            ]
        )
    )  # fmt: skip
    # --retire-missing with a file of no cameras would retire the whole city: refused.
    res = run_cli("cameras", "import", str(guards), "--retire-missing", data=data, check=False)
    err = res.stderr.decode()
    assert res.returncode != 0
    assert "nothing was imported: all 2 elements were skipped" in err
    assert "node/9: surveillance:type=guard is not a camera" in err
    assert len(log_entries(data)) == before
    listed = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert len(listed) == 8  # none retired
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    res = run_cli("cameras", "import", str(empty), "--json", data=data, check=False)
    assert res.returncode != 0 and "the file holds no cameras" in res.stderr.decode()


def test_help_names_every_property_read_and_an_overpass_query(instance: tuple[Path, str]) -> None:
    data, _ = instance
    text = run_cli("cameras", "import", "--help", data=data).stdout.decode()
    documented = {name for name, _ in GEOJSON_PROPERTIES}
    read = {f.name for f in fields(Camera)} - {"lat", "lon"}
    assert documented == read  # a field added to Camera must be documented here
    for name in documented:
        assert f"\n    {name}: " in text, name
    for cap in (f.name for f in fields(Capabilities)):
        assert cap in text, cap
    assert '["man_made"="surveillance"]' in text and "out center;" in text
    assert "surveillance:type=ALPR" in text
