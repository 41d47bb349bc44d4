"""Districts and places imported while the server runs (issue 15, item 17).

``custodes geo districts|places import --server URL --token TOKEN`` appends to
the running server's log instead of the files behind its back; an operator can
do the same from the browser (``/app/geo``).  Refusals are one sentence.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from custodes.ledger.instance import Instance
from tests.conftest import run_cli
from tests.geo import city
from tests.web.test_login import Server

CHROMIUM = "/usr/bin/chromium"
PW = "operator's long password"


def _entries(data: Path) -> list[dict[str, Any]]:
    store = Instance.load(data).reader().store
    try:
        return [json.loads(e) for e in store.read_entries(0, store.next_index())]
    finally:
        store.close()


@pytest.fixture
def served(instance: tuple[Path, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    data, _ = instance
    tokens = {}
    for name, role in (("oleg", "operator"), ("olga", "auditor")):
        out = run_cli("users", "add", name, "--role", role, "--password-stdin", data=data,
                      input=PW.encode())  # fmt: skip
        tokens[name] = out.stdout.decode().strip()
    srv = Server(data)
    srv.start()
    try:
        yield {"server": srv, "data": data, "files": city.write(tmp_path), "tokens": tokens}
    finally:
        srv.stop()


def test_geo_import_through_the_running_server(served: dict[str, Any]) -> None:
    srv, data, files, tokens = (served[k] for k in ("server", "data", "files", "tokens"))
    # The data directory is the server's: a local import says what to do instead.
    busy = run_cli("geo", "districts", "import", str(files["districts"]), data=data, check=False)
    assert busy.returncode != 0 and "--server URL --token OPERATOR_TOKEN" in busy.stderr.decode()

    args = ("--server", srv.url, "--token", tokens["oleg"], "--json")
    out = run_cli("geo", "districts", "import", str(files["districts"]), *args, data=data)
    report = json.loads(out.stdout)
    assert sorted(report["defined"]) == ["centre", "east", "west"]
    defined = [e for e in _entries(data) if e["type"] == "district.defined"]
    assert sorted(e["district"] for e in defined) == ["centre", "east", "west"]
    again = json.loads(
        run_cli("geo", "districts", "import", str(files["districts"]), *args, data=data).stdout
    )
    assert again["defined"] == [] and len(again["unchanged"]) == 3  # nothing written twice
    places = json.loads(
        run_cli("geo", "places", "import", str(files["places"]), *args, data=data).stdout
    )
    assert sorted(places["defined"]) == ["res-1", "school-1", "school-2"]
    plain = run_cli("geo", "places", "import", str(files["places"]), *args[:-1], data=data)
    assert plain.stdout.decode().startswith("0 places defined, 3 unchanged, 0 removed")

    # Refusals: no token, the wrong role, a file that is not GeoJSON (before any request).
    bare = run_cli("geo", "places", "import", str(files["places"]), "--server", srv.url,
                   data=data, check=False)  # fmt: skip
    assert bare.returncode != 0 and "--server needs an operator token" in bare.stderr.decode()
    wrong = run_cli("geo", "places", "import", str(files["places"]), "--server", srv.url,
                    "--token", tokens["olga"], data=data, check=False)  # fmt: skip
    assert wrong.returncode != 0 and f"{srv.url} refused:" in wrong.stderr.decode()
    junk = files["places"].with_name("junk.json")
    junk.write_text("[1, 2")
    bad = run_cli("geo", "places", "import", str(junk), *args, data=data, check=False)
    assert bad.returncode != 0 and len(bad.stderr.decode().strip().splitlines()) == 1


def test_geo_import_from_the_browser(served: dict[str, Any]) -> None:
    srv, data, files = served["server"], served["data"], served["files"]
    with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}, timeout=60) as oleg:
        assert oleg.post("/login", data={"name": "oleg", "password": PW}).status_code == 303
        assert 'href="/app/geo"' in oleg.get("/app").text
        up = oleg.post("/app/geo/districts",
                       files={"file": ("d.geojson", files["districts"].read_bytes(),
                                       "application/geo+json")})  # fmt: skip
        assert up.status_code == 200
        said = " ".join(unescape(re.sub(r"<[^>]+>", " ", up.text)).split())
        assert re.search(r"3 districts defined, 0 unchanged, 0 removed \(log entries from \d+\)",
                         said)  # fmt: skip
        assert len([e for e in _entries(data) if e["type"] == "district.defined"]) == 3
        bad = oleg.post("/app/geo/places",
                        files={"file": ("p.geojson", b"{}", "application/geo+json")})  # fmt: skip
        assert bad.status_code == 400
        assert not [e for e in _entries(data) if e["type"] == "place.defined"]
    with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}, timeout=60) as olga:
        assert olga.post("/login", data={"name": "olga", "password": PW}).status_code == 303
        assert olga.get("/app/geo").status_code == 403


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium")
def test_the_geo_page_passes_axe_and_fits_a_phone(served: dict[str, Any]) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    from tests.web.test_pages_a11y import _axe, _too_wide

    srv = served["server"]
    assert shutil.which(CHROMIUM)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            pg = browser.new_context(viewport={"width": 360, "height": 800}).new_page()
            pg.goto(srv.url + "/login?next=/app/geo")
            pg.get_by_label("Name").fill("oleg")
            pg.get_by_label("Password").fill(PW)
            pg.get_by_role("button", name="Log in").click()
            pg.wait_for_url(srv.url + "/app/geo")
            pg.get_by_label("A file of places").set_input_files(str(served["files"]["places"]))
            pg.get_by_role("button", name="Import the places and log them").click()
            pg.wait_for_load_state()
            assert pg.locator("#geo-report").inner_text().startswith("3 places defined")
            assert [v["id"] for v in _axe(pg, srv.url)] + _too_wide(pg) == []
        finally:
            browser.close()
