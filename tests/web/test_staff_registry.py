"""The operator's registry pages as an operator uses them (issue 15, item 17).

Search and pages of the registry, capabilities shown and edited, a camera
added and one retired, and a GeoJSON or OpenStreetMap file imported from the
browser by the same code as ``custodes cameras import``; every change is in
the log.  The pages pass axe-core and fit a 360 px screen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from typing import Any

from tests.web import test_internal_pages as kit

city = kit.city  # the fixtures: a served city (the OSM fixture's 8 cameras), and Chromium
browser = kit.browser
_entries, _login = kit._entries, kit._login


@contextmanager
def _session(base: str, name: str) -> Iterator[Any]:
    client = kit._session(base, name)
    try:
        yield client
    finally:
        client.close()


def _words(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _kinds(city: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in _entries(city["data"]) if e["type"] == kind]


def _grid(n: int) -> bytes:
    feats = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [37.5 + i / 1000, 55.7]},
         "properties": {"id": f"GRID-{i:03d}", "name": f"Grid street {i}", "district": "grid"}}
        for i in range(n)
    ]  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


def test_import_from_the_browser_then_search_and_pages(city: dict[str, Any]) -> None:
    base = city["server"].url
    with _session(base, "oleg") as oleg:
        up = oleg.post(
            "/app/registry/import",
            files={"file": ("grid.geojson", _grid(60), "application/geo+json")},
        )
        assert up.status_code == 200
        assert "Registered 60, changed 0, unchanged 0, skipped 0." in _words(up.text)
        assert len(_kinds(city, "camera.registered")) == 68
        first = oleg.get("/app/registry").text
        assert "Cameras 1-50 of 68." in _words(first)
        assert 'href="/app/registry?page=2" rel="next"' in first
        second = oleg.get("/app/registry", params={"page": 2}).text
        assert "Cameras 51-68 of 68." in _words(second) and "Page 2 of 2" in _words(second)
        found = oleg.get("/app/registry", params={"q": "grid-05 street"}).text
        assert "Cameras 1-10 of 10 matching “grid-05 street”." in _words(found)
        assert "GRID-050" in found and "GRID-061" not in found
        none = oleg.get("/app/registry", params={"q": "nowhere at all"}).text
        assert "No camera matches “nowhere at all”." in _words(none)

        # An OSM file with a number-plate camera: registered, with its capability shown.
        osm = {"elements": [{"type": "node", "id": 5, "lat": 55.71, "lon": 37.51,
                             "tags": {"man_made": "surveillance", "surveillance:type": "ALPR",
                                      "ref": "ALPR-9"}}]}  # fmt: skip
        up = oleg.post(
            "/app/registry/import",
            files={"file": ("city.json", json.dumps(osm).encode(), "application/json")},
        )
        assert "Registered 1," in _words(up.text) and "ALPR-9" in up.text
        row = oleg.get("/app/registry", params={"q": "ALPR-9"}).text
        assert "plate reading capable" in _words(row)

        # A file of which nothing is a camera: refused in one sentence, nothing logged.
        before = len(_entries(city["data"]))
        bench = {"elements": [{"type": "node", "id": 6, "lat": 55.7, "lon": 37.5,
                               "tags": {"amenity": "bench"}}]}  # fmt: skip
        bad = oleg.post(
            "/app/registry/import",
            files={"file": ("b.json", json.dumps(bench).encode(), "application/json")},
        )
        assert bad.status_code == 400
        assert "nothing was imported: all 1 elements were skipped" in unescape(bad.text)
        assert len(_entries(city["data"])) == before
    with _session(base, "nina") as nina:  # an operator for district tverskoy only
        out = nina.post(
            "/app/registry/import", files={"file": ("g.geojson", _grid(2), "application/geo+json")}
        )
        assert out.status_code == 403
        assert "2 cameras of the file are outside your scope (GRID-000, GRID-001)" in unescape(
            out.text
        )


def test_add_edit_capabilities_and_retire(city: dict[str, Any]) -> None:
    base = city["server"].url
    with _session(base, "oleg") as oleg:
        form = {"id": "NEW-1", "lat": "55.75", "lon": "37.61", "name": "New corner",
                "caps": "1", "cap-recording": "on", "cap-plate_reading_capable": "on"}  # fmt: skip
        added = oleg.post("/app/registry/new", data=form, follow_redirects=False)
        assert added.status_code == 303
        [reg] = [e for e in _kinds(city, "camera.registered") if e["camera"]["id"] == "NEW-1"]
        assert reg["camera"]["capabilities"]["plate_reading_capable"] is True
        assert reg["camera"]["capabilities"]["audio"] is False
        again = oleg.post("/app/registry/new", data=form)
        assert again.status_code == 409
        assert "camera NEW-1 is already registered; edit it instead" in unescape(again.text)

        page = oleg.get("/app/registry/MSK-0001").text
        assert 'id="cap-recording" name="cap-recording" checked' in page
        assert 'id="cap-audio" name="cap-audio" >' in page
        fields = dict(re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', page))
        fields.update({"caps": "1", "cap-recording": "on", "cap-audio": "on"})
        fields.pop("reason", None)
        edited = oleg.post("/app/registry/MSK-0001", data=fields, follow_redirects=False)
        assert edited.status_code == 303
        [change] = [e for e in _kinds(city, "camera.changed") if e["camera"] == "MSK-0001"]
        assert change["changes"]["capabilities"]["audio"] is True

        nothing = oleg.post("/app/registry/MSK-0002/retire", data={"reason": " "})
        assert nothing.status_code == 400
        assert "say why the camera is retired: the reason is published" in unescape(nothing.text)
        gone = oleg.post("/app/registry/MSK-0002/retire", data={"reason": "pole removed"},
                         follow_redirects=False)  # fmt: skip
        assert gone.status_code == 303
        [retired] = _kinds(city, "camera.retired")
        assert retired["camera"] == "MSK-0002" and retired["reason"] == "pole removed"
        listing = oleg.get(gone.headers["location"]).text
        assert "Camera MSK-0002 was retired" in listing
        assert oleg.get("/app/registry", params={"q": "MSK-0002"}).text.count("<td>MSK-0002") == 0


def test_registry_pages_pass_axe_and_fit_a_phone(city: dict[str, Any], browser: Any) -> None:
    from tests.web.test_pages_a11y import _axe, _too_wide

    base = city["server"].url
    pg = _login(browser, base, "oleg", "/app/registry")
    pg.set_viewport_size({"width": 360, "height": 800})
    problems = []
    for path in ("/app/registry", "/app/registry?q=MSK", "/app/registry/new",
                 "/app/registry/MSK-0001"):  # fmt: skip
        pg.goto(base + path)
        problems += [f"{path}: {v['id']}" for v in _axe(pg, base)]
        problems += [f"{path}: {w}" for w in _too_wide(pg)]
    # The upload form in the browser, and the page it leads to.
    pg.goto(base + "/app/registry")
    pg.get_by_label("GeoJSON or OpenStreetMap Overpass JSON file").set_input_files(
        files=[{"name": "grid.geojson", "mimeType": "application/geo+json", "buffer": _grid(3)}]
    )
    pg.get_by_role("button", name="Import and log").click()
    pg.wait_for_load_state()
    assert "Registered 3, changed 0" in pg.locator("#import-summary").inner_text()
    problems += [f"imported: {v['id']}" for v in _axe(pg, base)] + _too_wide(pg)
    assert problems == []
