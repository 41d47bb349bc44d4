"""The map's own data (issue 15, item 10): compact, kept until the registry changes, gzipped.

The map reads ``/public/map/cameras.json`` (columns) and ``/public/map/status.json``
(one digit a camera), never the GeoJSON download; a camera's record is fetched
when its popup opens.
"""

from __future__ import annotations

import gzip
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.reports.replay import PublicState
from custodes.web.map_data import Body, BodyCache, compact_cameras, registry_version, status_codes
from tests.geo import city

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CHROMIUM = "/usr/bin/chromium"


def _get(url: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers={k.replace("_", "-"): v for k, v in headers.items()})
    try:
        with _OPENER.open(req, timeout=20) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, err.read(), {k.lower(): v for k, v in err.headers.items()}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        data, _ = city.make_instance(tmp_path_factory.mktemp("city"))
        with city.serving(data) as url:
            yield url, data


def _cameras(url: str) -> dict[str, dict[str, Any]]:
    """The map's data unpacked the way the page does: camera id -> its fields."""
    _, body, _ = _get(url + "/public/map/cameras.json")
    _, sbody, _ = _get(url + "/public/map/status.json")
    doc, st = json.loads(body), json.loads(sbody)
    assert doc["version"] == st["version"]
    cols = doc["columns"]
    out = {}
    for i, cid in enumerate(cols["id"]):
        caps = {n for b, n in enumerate(doc["capabilities"]) if cols["caps"][i] >> b & 1}
        op = cols["operator"][i]
        out[cid] = {
            "lat": cols["lat"][i],
            "lon": cols["lon"][i],
            "direction": cols["direction"][i],
            "caps": caps,
            "operator": doc["operators"][op] if op >= 0 else None,
            "status": st["statuses"][int(st["codes"][i])],
        }
    return out


def test_the_maps_data_says_what_the_geojson_download_says(site: tuple[str, Path]) -> None:
    url, _ = site
    cams = _cameras(url)
    _, body, _ = _get(url + "/public/cameras.geojson")
    feats = {f["id"]: f for f in json.loads(body)["features"]}
    assert set(cams) == set(feats) == {c[0] for c in city.CAMERAS}
    for cid, f in feats.items():
        p = f["properties"]
        assert cams[cid]["status"] == p["status"], cid
        lon, lat = f["geometry"]["coordinates"]
        assert cams[cid]["lon"] == pytest.approx(lon, abs=1e-7), cid  # to the centimetre
        assert cams[cid]["lat"] == pytest.approx(lat, abs=1e-7), cid
        assert cams[cid]["caps"] == {k for k, v in p["capabilities"].items() if v is True}
        assert cams[cid]["operator"] == p["record"].get("operator")
        assert cams[cid]["direction"] == p["record"].get("direction")
    assert cams["cam-c3"]["status"] == "silent" and cams["cam-w1"]["status"] == "recording"
    assert cams["cam-c1"]["status"] == "unknown"


def test_the_maps_data_is_gzipped_when_accepted_and_not_sent_again_when_unchanged(
    site: tuple[str, Path],
) -> None:
    url, _ = site
    for path in ("/public/map/cameras.json", "/public/map/status.json", "/public/cameras.geojson",
                 "/public/districts.geojson", "/public/places.geojson"):  # fmt: skip
        status, plain, headers = _get(url + path)
        assert status == 200 and "content-encoding" not in headers, path
        status, packed, zheaders = _get(url + path, Accept_Encoding="gzip")
        if path == "/public/map/status.json":  # six digits: gzip would make it bigger
            assert zheaders.get("content-encoding") is None and packed == plain
        else:
            assert status == 200 and zheaders["content-encoding"] == "gzip", path
            assert gzip.decompress(packed) == plain and len(packed) < len(plain), path
        assert zheaders["etag"] == headers["etag"] and "Accept-Encoding" in zheaders["vary"]
        # A browser that has it sends its ETag back and gets nothing to download.
        status, body, again = _get(url + path, If_None_Match=headers["etag"])
        assert (status, body, again["etag"]) == (304, b"", headers["etag"]), path
        status, _, _ = _get(url + path, If_None_Match='"another"')
        assert status == 200, path


def test_a_cameras_record_is_one_small_request(site: tuple[str, Path]) -> None:
    url, _ = site
    status, body, _ = _get(url + "/public/cameras/cam-c3.json")
    assert status == 200
    feat = json.loads(body)
    assert feat["properties"]["status"] == "silent"
    assert feat["properties"]["record"]["operator"] == "City Transport"
    status, body, _ = _get(url + "/public/cameras/cam-nowhere.json")
    assert status == 404 and "no camera 'cam-nowhere'" in json.loads(body)["error"]


def _state_with(cameras: int) -> PublicState:
    state = PublicState()
    for i in range(cameras):
        cam = {"id": f"cam-{i}", "lat": 1.0 + i / 1000, "lon": 2.0, "operator": "Police",
               "capabilities": {"ptz": i % 2 == 0}}  # fmt: skip
        state.apply(i, {"type": "camera.registered", "time": "2026-12-01T00:00:00Z",
                        "camera": cam, "seq": i})  # fmt: skip
    return state


def test_the_columns_are_built_once_per_registry_change() -> None:
    state = _state_with(3)
    cache, built = BodyCache(), []

    def make() -> Body:
        built.append(1)
        return Body.of(json.dumps(compact_cameras(state, None)).encode(), "application/json")

    first = cache.get("cams", registry_version(state), make)
    # Entries that are not the registry (a heartbeat batch, a request) change nothing.
    state.apply(3, {"type": "segments.batch", "time": "2026-12-01T00:01:00Z", "count": 4})
    assert cache.get("cams", registry_version(state), make) is first and len(built) == 1
    # A retirement is a registry change (its status digit is in the other document).
    state.apply(4, {"type": "camera.retired", "time": "2026-12-01T00:02:00Z", "camera": "cam-1"})
    assert cache.get("cams", registry_version(state), make) is not first and len(built) == 2
    assert status_codes(state, cache.ids(state), {"cam-0": "up", "cam-2": "silent"}) == "031"
    state.apply(5, {"type": "camera.registered", "time": "2026-12-01T00:03:00Z", "seq": 3,
                    "camera": {"id": "cam-3", "lat": 1.0, "lon": 2.0}})  # fmt: skip
    third = cache.get("cams", registry_version(state), make)
    assert len(built) == 3 and third.etag != first.etag and b"cam-3" in third.raw


def test_the_columns_are_compact_at_scale() -> None:
    state = _state_with(20_000)
    raw = json.dumps(compact_cameras(state, None), separators=(",", ":")).encode()
    assert len(raw) / 20_000 < 60  # bytes a camera, before gzip
    assert len(gzip.compress(raw)) / 20_000 < 15


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Chromium at /usr/bin/chromium")
def test_the_map_page_draws_from_the_compact_data_not_the_download(site: tuple[str, Path]) -> None:
    sync = pytest.importorskip("playwright.sync_api")
    url, _ = site
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            pg = b.new_page(viewport={"width": 1200, "height": 900})
            seen: list[str] = []
            errors: list[str] = []
            pg.on("request", lambda r: seen.append(r.url.removeprefix(url)))
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(url + "/")
            pg.wait_for_selector("#map[data-ready=true]", timeout=15_000)
            assert "/public/map/cameras.json" in seen and "/public/map/status.json" in seen
            assert "/public/cameras.geojson" not in seen
            assert pg.locator("path.cam-marker").count() == len(city.CAMERAS)
            coned = sum(1 for c in city.CAMERAS if c[4] is not None)
            assert pg.locator("path.cam-cone").count() == coned
            # The record comes when the popup opens, and says whose camera it is.
            pg.locator("path.cam-silent").click()
            popup = pg.locator(".leaflet-popup-content")
            popup.wait_for(timeout=5_000)
            assert "cam-c3" in popup.inner_text() and "City Transport" in popup.inner_text()
            assert "/public/cameras/cam-c3.json" in seen
            pg.locator("#camera-list summary").click()
            rows = pg.locator("#camera-list tbody tr")
            rows.nth(len(city.CAMERAS) - 1).wait_for(timeout=5_000)  # filled on the toggle event
            assert rows.count() == len(city.CAMERAS)
            assert "City Transport" in pg.locator("#camera-list tbody").inner_text()
            assert errors == []
        finally:
            b.close()
