"""The registry from the command line, as an operator uses it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.fleet.conftest import DATA


def test_import_list_export_and_reimport(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    out = run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), "--json", data=data)
    report = json.loads(out.stdout)
    assert len(report["registered"]) == 8 and len(report["skipped"]) == 8
    assert {"element": "node/6011223345", "reason": "surveillance:type=guard is not a camera"} in (
        report["skipped"]
    )
    listed = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert {c["id"] for c in listed} == set(report["registered"])
    assert all(c["status"] == "unknown" for c in listed)

    geo = tmp_path / "cams.geojson"
    run_cli("cameras", "export", str(geo), data=data)
    doc = json.loads(geo.read_text())
    assert len(doc["features"]) == 8
    # The same file again changes nothing; a moved camera is logged with what changed.
    again = json.loads(run_cli("cameras", "import", str(geo), "--json", data=data).stdout)
    assert again["registered"] == [] and again["changed"] == {} and again["unchanged"] == 8
    for f in doc["features"]:
        if f["id"] == "MSK-0002":
            f["geometry"]["coordinates"] = [37.62, 55.77]
            f["properties"]["legal_basis"] = "Moscow decree 410-PP"
    geo.write_text(json.dumps(doc))
    changed = json.loads(run_cli("cameras", "import", str(geo), "--json", data=data).stdout)
    assert changed["changed"] == {
        "MSK-0002": {"lat": 55.77, "lon": 37.62, "legal_basis": "Moscow decree 410-PP"}
    }
    # Every registration and change is in the log, as canonical JSON.
    size = json.loads(run_cli("log", "checkpoint", "--json", data=data).stdout)["size"]
    assert size == 9


def test_retire_and_retire_missing(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
    run_cli("cameras", "retire", "MSK-0004", "--reason", "dismantled", data=data)
    listed = json.loads(run_cli("cameras", "list", "--json", "--all", data=data).stdout)
    assert {c["id"]: c["status"] for c in listed}["MSK-0004"] == "retired"
    geo = tmp_path / "one.geojson"
    geo.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": "MSK-0001",
                        "geometry": {"type": "Point", "coordinates": [37.6172999, 55.755826]},
                        "properties": {},
                    }
                ],
            }
        )
    )
    rep = json.loads(
        run_cli("cameras", "import", str(geo), "--retire-missing", "--json", data=data).stdout
    )
    assert len(rep["retired"]) == 6
    assert [
        c["id"] for c in json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    ] == ["MSK-0001"]
    bad = run_cli("cameras", "retire", "NOPE", "--reason", "x", data=data, check=False)
    assert bad.returncode == 1 and b"no active camera with id NOPE" in bad.stderr


def test_agent_token_is_the_last_line_and_only_its_hash_is_kept(
    instance: tuple[Path, str],
) -> None:
    data, _ = instance
    out = run_cli("agents", "add", "recorder-7", "--cameras", "MSK-0001", data=data)
    token = out.stdout.decode().splitlines()[-1]
    assert token.startswith("cus_")
    assert token.encode() not in (data / "fleet.db").read_bytes()
    assert token.encode() not in (data / "log.db").read_bytes()


def test_declared_outage_after_the_fact_is_marked_late(instance: tuple[Path, str]) -> None:
    data, _ = instance
    run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
    late = json.loads(
        run_cli(
            "fleet",
            "declare",
            "outage",
            "--camera",
            "MSK-0001",
            "--camera",
            "MSK-0002",
            "--from",
            "2026-01-01T22:00:00Z",
            "--to",
            "2026-01-02T04:00:00Z",
            "--reason",
            "power failure",
            "--json",
            data=data,
        ).stdout
    )
    assert late["late"] is True and late["type"] == "outage.declared"
    ahead = json.loads(
        run_cli(
            "fleet",
            "declare",
            "maintenance",
            "--camera",
            "MSK-0001",
            "--from",
            "2999-01-01T00:00:00Z",
            "--to",
            "2999-01-01T02:00:00Z",
            "--reason",
            "lens cleaning",
            "--json",
            data=data,
        ).stdout
    )
    assert ahead["late"] is False
    status = json.loads(
        run_cli(
            "fleet",
            "status",
            "--camera",
            "MSK-0002",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-03T00:00:00Z",
            "--json",
            data=data,
        ).stdout
    )
    [ev] = [e for e in status["events"] if e["kind"] == "outage"]
    assert ev["late"] is True and ev["reason"] == "power failure" and ev["verified"] is True
    text = run_cli(
        "fleet",
        "status",
        "--camera",
        "MSK-0002",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-03T00:00:00Z",
        data=data,
    ).stdout.decode()
    assert "LATE" in text


def test_errors_are_one_sentence(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    bad = run_cli("cameras", "import", str(junk), data=data, check=False)
    assert bad.returncode == 1 and b"Traceback" not in bad.stderr
    assert b"neither GeoJSON" in bad.stderr
    bad = run_cli(
        "fleet",
        "status",
        "--camera",
        "X",
        "--from",
        "yesterday",
        "--to",
        "2026-01-01T00:00:00Z",
        data=data,
        check=False,
    )
    assert bad.returncode == 2 and b"RFC 3339" in bad.stderr
