"""The public dashboard over HTTP: every page and its data, computed from the public log."""

from __future__ import annotations

import html
import json
import shlex
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.geo import city

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with _OPENER.open(url, timeout=20) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _json(url: str) -> Any:
    status, body, _ = _get(url)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        data, vkey = city.make_instance(tmp_path_factory.mktemp("city"))
        with city.serving(data) as url:
            yield url, data, vkey


SCHOOL = f"lat={city.PLACES[0][3]}&lon={city.PLACES[0][4]}&radius=100"
WINDOW = f"from={city.DAY}T00:00:00Z&to={city.DAY}T23:59:00Z"


def test_every_public_page_answers_without_login(site: tuple[str, Path, str]) -> None:
    url, _, vkey = site
    for path, words in (
        ("/", b"The camera map"),
        ("/coverage", b"Coverage by district"),
        ("/outages", b"Timeline"),
        ("/statistics", b"By purpose"),
        ("/looked", b"Who looked at this place and time?"),
        ("/verify", b"Verify it yourself"),
    ):
        status, body, headers = _get(url + path)
        assert status == 200, path
        assert words in body, path
        assert b'<html lang="en">' in body and b"Skip to content" in body
        assert b"checkpoint" in body
        assert b"https://" not in body.replace(b'href="https://', b"")  # nothing fetched elsewhere
    _, home, _ = _get(url + "/")
    assert vkey.encode() in home and b"custodes verify" in home


def test_the_camera_layer_lists_every_registered_camera_with_status_and_cone(
    site: tuple[str, Path, str],
) -> None:
    url, _, _ = site
    doc = _json(url + "/public/cameras.geojson")
    feats = {f["id"]: f["properties"] for f in doc["features"]}
    assert set(feats) == {c[0] for c in city.CAMERAS}
    assert feats["cam-c3"]["status"] == "silent"  # camera.silent is in the log
    assert feats["cam-w1"]["status"] == "recording"  # camera.back is in the log
    assert feats["cam-c1"]["status"] == "unknown"  # never heard from
    assert feats["cam-c1"]["capabilities"]["face_recognition_capable"] is True
    assert feats["cam-c1"]["cone"][0] == feats["cam-c1"]["cone"][-1]
    assert feats["cam-c3"]["cone"] is None  # no direction recorded
    assert feats["cam-c1"]["record"]["operator"] == "City Transport"
    assert doc["checkpoint"]["size"] > 0


def test_coverage_is_counted_by_polygon_and_published_with_its_checkpoint(
    site: tuple[str, Path, str],
) -> None:
    url, _, _ = site
    cov = _json(url + "/public/coverage.json")
    counts = {r["district"]: r["cameras"] for r in cov["districts"]}
    assert counts == {**city.EXPECTED, "outside": city.EXPECTED_OUTSIDE}
    assert [c["category"] for c in cov["categories"]] == ["official-residence", "school"]
    districts = _json(url + "/public/districts.geojson")
    centre = next(f for f in districts["features"] if f["id"] == "centre")
    assert centre["geometry"]["type"] == "Polygon" and centre["properties"]["per_1000"] == 0.6
    places = _json(url + "/public/places.geojson")
    school = next(f for f in places["features"] if f["id"] == "school-1")
    assert school["properties"]["camera_ids"] == ["cam-c1", "cam-c2"]
    _, page, _ = _get(url + "/coverage")
    assert b'data-district="centre"' in page and b"official-residence" in page


def test_access_statistics_count_requests_by_purpose_district_and_month(
    site: tuple[str, Path, str],
) -> None:
    url, _, _ = site
    stats = _json(url + "/public/statistics.json")
    assert stats["total"] == {
        "requested": 3, "approved": 2, "denied": 1, "released": 1, "expired": 0
    }  # fmt: skip
    assert stats["by_purpose"]["investigation"]["requested"] == 2
    assert stats["by_district"]["centre"]["denied"] == 1
    assert stats["by_month"]["2026-11"]["requested"] == 3
    assert stats["sensitive"]["requested"] == 1
    assert stats["flags"] == {
        "odd-hours": {"raised": 1, "resolved": 0},
        "volume": {"raised": 1, "resolved": 1},
    }
    _, page, _ = _get(url + "/statistics")
    assert b"investigation" in page and b"odd-hours" in page


def test_who_looked_hides_small_counts_and_says_whether_cameras_recorded(
    site: tuple[str, Path, str],
) -> None:
    url, _, _ = site
    ans = _json(f"{url}/public/looked.json?{SCHOOL}&{WINDOW}")
    assert ans["cameras"] == ["cam-c1", "cam-c2"]
    assert ans["counts"] == {
        "requested": 2,
        "approved": "fewer than 2",
        "denied": "fewer than 2",
        "released": "fewer than 2",
    }
    assert list(ans["by_purpose"]) == ["investigation"]
    assert ans["min_count"] == 2 and ans["disclosure_delay_s"] == 3600
    assert all(r["recording"] for r in ans["recording"])
    assert ans["checkpoint"]["size"] > 0
    # Elsewhere, or on another day, nobody looked.
    other = _json(
        f"{url}/public/looked.json?{SCHOOL}&from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z"
    )
    assert other["counts"]["requested"] == 0
    # cam-c3 was silent that night, and the log says so.
    c3 = city.CAMERAS[3]
    lat, lon = city.LAT0 + c3[2], city.LON0 + city.STEP + c3[3]
    night = _json(f"{url}/public/looked.json?lat={lat}&lon={lon}&radius=5&{WINDOW}")
    [rec] = night["recording"]
    assert rec["camera"] == "cam-c3" and not rec["recording"]
    assert {g["kind"] for g in rec["gaps"]} == {"silent", "outage"}
    _, page, _ = _get(f"{url}/looked?{SCHOOL}&{WINDOW}")
    assert b"fewer than 2" in page and b"These figures rest on checkpoint" in page


def test_who_looked_breaks_nothing_down_below_the_minimum(site: tuple[str, Path, str]) -> None:
    url, _, _ = site
    e1 = city.CAMERAS[4]  # only r3 (traffic, approved) looked at cam-e1
    lat, lon = city.LAT0 + e1[2], city.LON0 + 2 * city.STEP + e1[3]
    ans = _json(f"{url}/public/looked.json?lat={lat}&lon={lon}&radius=5&{WINDOW}")
    assert ans["cameras"] == ["cam-e1"]
    assert ans["counts"] == {"requested": "fewer than 2"} and ans["by_purpose"] == {}
    _, page, _ = _get(f"{url}/looked?lat={lat}&lon={lon}&radius=5&{WINDOW}")
    assert b"traffic" not in page and b"nothing more about them is published" in page


def test_bad_queries_are_refused_in_one_sentence(site: tuple[str, Path, str]) -> None:
    url, _, _ = site
    status, body, _ = _get(f"{url}/public/looked.json?lat=91&lon=0&{WINDOW}")
    assert status == 400 and "out of range" in json.loads(body)["error"]
    status, body, _ = _get(
        f"{url}/looked?{SCHOOL}&from={city.DAY}T10:00:00Z&to={city.DAY}T09:00:00Z"
    )
    assert status == 400 and b"must end after it starts" in body


def test_outages_show_late_declarations_and_the_incident_query_with_proofs(
    site: tuple[str, Path, str],
) -> None:
    url, _, _ = site
    timeline = _json(url + "/public/outages.json")["outages"]
    kinds = [(o["kind"], o["late"]) for o in timeline]
    assert ("outage.declared", True) in kinds and ("camera.silent", False) in kinds
    _, page, _ = _get(url + "/outages")
    assert b"declared late" in page
    chart = page.decode().split('id="outage-chart"')[1].split("</figure>")[0]
    assert ">cam-c3<" in chart and ">cam-w1<" in chart  # one row per camera with an outage
    assert "late-declared" in chart and "(still silent)" in chart  # cam-c3 never came back
    c1 = city.CAMERAS[1]
    q = f"lat={city.LAT0 + c1[2]}&lon={city.LON0 + city.STEP + c1[3]}&radius=500&{WINDOW}"
    status, page, _ = _get(f"{url}/outages?{q}")
    assert status == 200 and b"Download the answer and its proofs" in page
    status, body, headers = _get(f"{url}/public/incident.json?{q}")
    assert status == 200 and "attachment" in headers["content-disposition"]
    rep = json.loads(body)
    long = q.replace(f"to={city.DAY}T23:59:00Z", "to=2026-11-05T00:00:00Z")
    status, page, _ = _get(f"{url}/outages?{long}")
    assert status == 400 and b"at most 2 days" in page
    assert {c["camera"]["id"] for c in rep["cameras"]} >= {"cam-c1", "cam-c2", "cam-c3"}
    assert rep["checkpoint"].startswith("city.custodes.example/log\n")


def test_the_log_page_gives_the_exact_verify_command(site: tuple[str, Path, str]) -> None:
    url, data, vkey = site
    _, page, _ = _get(url + "/verify")
    text = html.unescape(page.decode())
    command = f"custodes verify --vkey '{vkey}' --source {url}/log --state my-view.checkpoint"
    assert command in text
    # The command works as printed.
    state = data.parent / "my-view.checkpoint"
    out = run_cli(*shlex.split(command)[1:-1], str(state))
    assert out.returncode == 0 and state.exists()
    assert "/log --state my-view.checkpoint" in text
    assert "no witness" in text
    status, cp, _ = _get(url + "/log/checkpoint")
    assert cp.decode().splitlines()[1] in text  # the size of the latest checkpoint


def test_static_files_are_served_locally_and_no_tiles_by_default(
    site: tuple[str, Path, str],
) -> None:
    url, _, _ = site
    for path in ("/static/map.js", "/static/custodes.css", "/static/vendor/leaflet/leaflet.js"):
        assert _get(url + path)[0] == 200, path
    _, home, _ = _get(url + "/")
    assert b'data-tile-url=""' in home


def test_the_public_view_follows_the_log_incrementally(instance: tuple[Path, str]) -> None:
    from custodes.ledger.instance import Instance
    from custodes.records.canonical import canonicalize
    from custodes.web.public import PublicView
    from custodes.web.service import LedgerService

    data, _ = instance
    svc = LedgerService(Instance.load(data))
    try:
        view = PublicView(svc)
        assert view.use(lambda state, snap: (state.size, snap.size if snap else None)) == (0, 0)
        entries = [canonicalize(e) for e in city.history()]
        svc.write(lambda log: log.append(entries))
        # Not yet in a signed checkpoint: the public view does not show it.
        assert view.use(lambda state, _snap: state.size) == 0
        svc.integrate_now()
        state, snap = view.use(lambda state, snap: (state, snap))
        assert state.size == snap.size == len(entries) and len(state.requests) == 3
        # Unchanged log: the same state, nothing re-applied.
        assert view.use(lambda s, _snap: (s is state, s.size)) == (True, len(entries))
    finally:
        svc.close()


def test_the_tile_layer_is_off_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from custodes.web.routes.dashboard import tile_settings

    monkeypatch.delenv("CUSTODES_TILE_URL", raising=False)
    assert tile_settings(tmp_path)["url"] is None
    (tmp_path / "custodes.json").write_text(
        json.dumps({"tile_url": "https://tiles.example/{z}/{x}/{y}.png", "tile_attribution": "OSM"})
    )
    assert tile_settings(tmp_path) == {
        "url": "https://tiles.example/{z}/{x}/{y}.png",
        "attribution": "OSM",
    }
    monkeypatch.setenv("CUSTODES_TILE_URL", "http://127.0.0.1:9/{z}/{x}/{y}.png")
    assert tile_settings(tmp_path)["url"] == "http://127.0.0.1:9/{z}/{x}/{y}.png"


def test_no_generated_query_makes_a_public_endpoint_fail(site: tuple[str, Path, str]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    url, _, _ = site
    schema = schemathesis.openapi.from_url(url + "/openapi.json").include(path_regex="^/public/")
    seen = []
    for result in schema.get_all_operations():
        op = result.ok()
        seen.append(op.path)

        @given(case=op.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call(base_url=url, timeout=60)
            assert response.status_code < 500, (case.path, case.query, response.text[:300])

        run()
    # with /public/basemap.geojson (the demo city's streets), the map's own data, the
    # downloads of the findability pages (cameras.csv, entries.csv, tables/{name}.csv)
    # and /public/live.json
    assert len(seen) == 16
