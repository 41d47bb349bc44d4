"""``custodes geo``: definitions go into the log once, and coverage is recomputed from the log."""

from __future__ import annotations

import json
from pathlib import Path

from custodes.ledger.instance import Instance
from tests.conftest import run_cli
from tests.geo import city


def _entries(data: Path) -> list[dict[str, object]]:
    reader = Instance.load(data).reader()
    try:
        end = reader.store.next_index()
        return [json.loads(e) for e in reader.store.read_entries(0, end)]
    finally:
        reader.store.close()


def test_import_logs_each_definition_once_and_coverage_matches_the_registry(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = instance
    files = city.write(tmp_path)
    run_cli("cameras", "import", str(files["cameras"]), data=data)
    first = json.loads(
        run_cli("geo", "districts", "import", str(files["districts"]), "--json", data=data).stdout
    )
    assert first["defined"] == ["west", "centre", "east"] and first["unchanged"] == []
    run_cli("geo", "places", "import", str(files["places"]), data=data)
    size = len(_entries(data))

    again = run_cli("geo", "districts", "import", str(files["districts"]), data=data)
    assert b"0 districts defined, 3 unchanged" in again.stdout
    run_cli("geo", "places", "import", str(files["places"]), data=data)
    assert len(_entries(data)) == size  # nothing new was written

    defined = [e for e in _entries(data) if e["type"] == "district.defined"]
    assert [e["district"] for e in defined] == ["west", "centre", "east"]
    assert all(e["area_km2"] == 0.696 and e["polygon"]["type"] == "Polygon" for e in defined)

    cov = json.loads(run_cli("geo", "coverage", "--json", data=data).stdout)
    counts = {r["district"]: r["cameras"] for r in cov["districts"]}
    assert counts == {**city.EXPECTED, "outside": city.EXPECTED_OUTSIDE}
    centre = next(r for r in cov["districts"] if r["district"] == "centre")
    assert centre["per_km2"] == round(3 / 0.696, 2) and centre["per_1000"] == round(3000 / 5000, 2)
    east = next(r for r in cov["districts"] if r["district"] == "east")
    assert east["per_1000"] is None  # no population given
    cats = {c["category"]: c for c in cov["categories"]}
    assert cats["school"]["watched"] == 1 and cats["school"]["places"] == 2
    assert cats["school"]["cameras"] == 2 and cats["school"]["share"] == 0.5
    assert cats["official-residence"]["watched"] == 0
    assert cov["checkpoint"]["size"] == size
    text = run_cli("geo", "coverage", data=data).stdout.decode()
    assert "Centre" in text and "official-residence" in text


def test_a_changed_district_is_logged_again_and_missing_ones_removed(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = instance
    doc = city.districts_geojson()
    path = tmp_path / "d.geojson"
    path.write_text(json.dumps(doc))
    run_cli("geo", "districts", "import", str(path), data=data)
    doc["features"][0]["properties"]["population"] = 21000
    del doc["features"][2]
    path.write_text(json.dumps(doc))
    out = json.loads(
        run_cli(
            "geo", "districts", "import", str(path), "--remove-missing", "--json", data=data
        ).stdout
    )
    assert out["defined"] == ["west"] and out["unchanged"] == ["centre"]
    assert out["removed"] == ["east"]
    kinds = [(e["type"], e.get("district")) for e in _entries(data)]
    assert kinds[-2:] == [("district.defined", "west"), ("district.removed", "east")]


def test_a_bad_file_is_refused_in_one_sentence_and_nothing_is_written(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = instance
    path = tmp_path / "bad.geojson"
    doc = city.districts_geojson()
    doc["features"][1]["properties"]["population"] = "many"
    path.write_text(json.dumps(doc))
    out = run_cli("geo", "districts", "import", str(path), data=data, check=False)
    assert out.returncode == 1
    err = out.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "districts feature 1" in err and "population" in err
    assert _entries(data) == []
