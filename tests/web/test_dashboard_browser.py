"""The public dashboard in real Chromium: the map, the coverage table, and nothing from elsewhere.

One ``custodes serve`` and one browser per module.  Every request the pages
make is recorded, and each must go to the server on 127.0.0.1.  Screenshots of
each page go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO
from tests.geo import city

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        data, _ = city.make_instance(tmp_path_factory.mktemp("city"))
        with city.serving(data) as url:
            yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A fresh page: (page, every URL it requested, console errors)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg, requests, errors
    finally:
        context.close()


def _shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"dashboard-{name}.png"), full_page=True)


def _local_only(requests: list[str]) -> None:
    hosts = {urlsplit(u).hostname for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts


def test_the_map_shows_every_registered_camera_and_filters_by_capability(
    site: str, page: tuple[Any, list[str], list[str]]
) -> None:
    pg, requests, errors = page
    pg.goto(site + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=15_000)
    markers = pg.locator("path.cam-marker")
    assert markers.count() == len(city.CAMERAS)
    assert pg.locator("path.cam-silent").count() == 1  # cam-c3 fell silent
    assert pg.locator("path.cam-recording").count() == 1  # cam-w1 came back
    assert pg.locator("path.cam-cone").count() == sum(1 for c in city.CAMERAS if c[4] is not None)
    assert pg.locator("path.place-marker").count() == len(city.PLACES)
    _shot(pg, "map")

    pg.select_option("#capability", "face_recognition_capable")
    assert markers.count() == sum(1 for c in city.CAMERAS if c[5])
    assert pg.locator("#shown").inner_text() == "Showing 2 of 6 cameras."
    pg.select_option("#capability", "")
    pg.uncheck("input[name=status][value=silent]")
    assert markers.count() == len(city.CAMERAS) - 1

    # A marker's popup shows the registry record.
    pg.check("input[name=status][value=silent]")
    pg.locator("path.cam-silent").click()
    popup = pg.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5_000)
    assert "cam-c3" in popup.inner_text() and "City Transport" in popup.inner_text()
    _shot(pg, "map-popup")
    # Keyboard: a marker takes focus, says what it is, and Enter opens its record.
    pg.locator(".leaflet-popup-close-button").click()
    popup.wait_for(state="detached", timeout=5_000)
    marker = pg.locator("path.cam-silent")
    assert marker.get_attribute("aria-label") == "Camera cam-c3, silent"
    marker.focus()
    pg.keyboard.press("Enter")
    popup.wait_for(timeout=5_000)
    assert "cam-c3" in popup.inner_text()
    assert errors == []
    _local_only(requests)


def test_the_coverage_table_matches_the_registry(
    site: str, page: tuple[Any, list[str], list[str]]
) -> None:
    pg, requests, errors = page
    pg.goto(site + "/coverage")
    pg.wait_for_selector("#map[data-ready=true]", timeout=15_000)
    shown = {
        row.get_attribute("data-district"): int(row.locator("td[data-col=cameras]").inner_text())
        for row in pg.locator("#coverage-table tbody tr").all()
    }
    # Expected counts worked out from where the test put each camera, not from the server.
    expected: dict[str, int] = {}
    for _cid, district, *_ in city.CAMERAS:
        key = district or "outside"
        expected[key] = expected.get(key, 0) + 1
    assert shown == expected
    assert pg.locator("path.district-area").count() == len(city.DISTRICTS)
    fills = {
        pg.locator("path.district-area").nth(i).get_attribute("fill")
        for i in range(len(city.DISTRICTS))
    }
    assert len(fills) == 2  # the centre is denser than west and east, which are equal
    school = pg.locator("#category-table tr[data-category=school] td").all_inner_texts()
    assert school[:2] == ["2", "1"]
    _shot(pg, "coverage")
    assert errors == []
    _local_only(requests)


def test_no_page_loads_anything_from_another_host_and_all_work_by_keyboard(
    site: str, page: tuple[Any, list[str], list[str]]
) -> None:
    pg, requests, errors = page
    for path, name in (
        ("/outages", "outages"),
        ("/statistics", "access"),
        ("/verify", "log"),
        ("/looked", "looked"),
    ):
        pg.goto(site + path)
        pg.wait_for_load_state("networkidle")
        assert pg.locator("html").get_attribute("lang") == "en"
        _shot(pg, name)
    # The skip link is the first stop for the keyboard.
    pg.keyboard.press("Tab")
    assert pg.evaluate("document.activeElement.textContent") == "Skip to content"
    # The "who looked?" form, filled in and sent with the keyboard only.
    pg.select_option("#place", index=2)  # School No. 1 (sorted by id: res-1, school-1, ...)
    pg.fill("#from", f"{city.DAY}T00:00")  # a date picker: datetime-local
    pg.fill("#to", f"{city.DAY}T23:00")
    pg.focus("#to")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#looked-counts")
    assert "fewer than 2" in pg.locator("#looked-counts").inner_text()
    _shot(pg, "looked-answer")
    for label in pg.locator("input:not([type=hidden]), select").all():
        ident = label.get_attribute("id")
        assert ident and pg.locator(f"label[for={ident}]").count() == 1, ident
    assert errors == []
    _local_only(requests)
