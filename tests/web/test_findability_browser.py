"""The findability pages in Chromium (issue 15, item 11): the camera list, a camera's page with
its recording timeline, the entry browser and an entry's proof, in a small demo city.

On each page axe-core finds no serious or critical violation, and at 360 and 390 px
nothing is wider than the screen (wide tables scroll inside their own frame).  Then a
person's path: search the map for a street, open a camera, follow its history to the
entry and its proof; and a map link that names a camera opens its record.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO
from tests.geo import city as test_city

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
AXE = REPO / "src" / "custodes" / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from custodes.demo.build import DemoConfig, build_city

    pytest.importorskip("argon2", reason="the demo's staff need the server extra")
    data = tmp_path_factory.mktemp("demo") / "city"
    build_city(data, DemoConfig(cameras=40, days=1, requests=6, clips=False))
    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.delenv("CUSTODES_TILE_URL", raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        with test_city.serving(data) as url:
            yield {"url": url, "data": data}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def _get_json(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as r:
        return json.loads(r.read())


def _axe(pg: Any, base: str) -> list[str]:
    pg.add_script_tag(url=base + "/static/vendor/axe-core/axe.min.js")
    found = pg.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ["violations"]});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 4).map(n => n.target.join(" "))}));
        }"""
    )
    return [f"axe {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}" for v in found
            if v["impact"] in ("serious", "critical")]  # fmt: skip


def _too_wide(pg: Any) -> list[str]:
    result: list[str] = pg.evaluate(
        """() => {
          const w = window.innerWidth;
          if (document.documentElement.scrollWidth <= w) return [];
          const out = [];
          for (const el of document.querySelectorAll("body *")) {
            const r = el.getBoundingClientRect();
            if (r.right > w + 1 && r.width > 0) out.push(el.tagName.toLowerCase() +
              (el.id ? "#" + el.id : "") + " " + Math.round(r.right) + "px");
          }
          const wide = document.documentElement.scrollWidth;
          return ["page is " + wide + "px wide", ...out.slice(0, 8)];
        }"""
    )
    return result


def _a_street_camera(url: str) -> tuple[str, str]:
    """A camera of the demo city with an address, and a word of that address."""
    feats = _get_json(url + "/public/cameras.geojson")["features"]
    named = [f for f in feats if f["properties"]["record"].get("name")]
    assert named
    cam = named[0]
    return cam["id"], cam["properties"]["record"]["name"]


def test_the_findability_pages_pass_axe_and_fit_a_phone(demo: dict[str, Any], browser: Any) -> None:
    assert AXE.is_file(), "axe-core is missing: run scripts/web-assets.sh (make install does)"
    base = demo["url"]
    cid, name = _a_street_camera(base)
    paths = [
        "/",  # its camera search
        "/cameras",
        "/cameras?" + urllib.parse.urlencode({"q": name.split()[0]}),
        f"/cameras/{cid}",
        "/log/entries",
        "/log/entries?type=fleet.heard",
        "/log/entries/0",
        "/log/entries/3",
    ]
    problems: list[str] = []
    pg = browser.new_context().new_page()
    for path in paths:
        for width in (1366, 390, 360):
            pg.set_viewport_size({"width": width, "height": 900})
            pg.goto(base + path)
            pg.wait_for_load_state("networkidle")
            if path == "/":
                pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
            found = _axe(pg, base) if width == 1366 else _too_wide(pg)
            problems += [f"{path} at {width}px: {p}" for p in found]
    pg.context.close()
    assert problems == [], "\n".join(problems)


def test_from_the_map_to_a_camera_its_entry_and_the_proof(
    demo: dict[str, Any], browser: Any
) -> None:
    base = demo["url"]
    cid, name = _a_street_camera(base)
    pg = browser.new_context(viewport={"width": 390, "height": 900}).new_page()
    pg.goto(base + "/")
    pg.get_by_label("Find a camera by address or id").fill(name)
    pg.get_by_role("button", name="Find").click()
    pg.wait_for_url(re.compile(r".*/cameras\?q=.*"))
    assert pg.get_by_label("Address or camera id").input_value() == name  # kept in the URL
    pg.get_by_role("link", name=cid, exact=True).click()
    pg.wait_for_url(base + f"/cameras/{cid}")
    assert pg.get_by_role("heading", name=f"Camera {cid}").is_visible()
    # The demo's fleet heard its cameras: the recording timeline has heard-from bars.
    summary = pg.locator("#timeline-summary").inner_text()
    assert re.search(r"heard from in [1-9][\d,]* of", summary), summary
    assert pg.locator("#timeline-words li").first.inner_text().startswith("heard from")
    # Its registration, linked to the entry, whose page explains the proof.
    pg.locator("#history a", has_text="its inclusion proof").first.click()
    pg.wait_for_url(re.compile(r".*/log/entries/\d+#proof"))
    assert "This entry is in the log." in pg.locator("#proof-verdict").inner_text()
    assert cid in pg.locator("#entry-json").inner_text()
    steps = pg.locator("#proof-steps li")
    assert steps.count() >= 2
    # A map link that names the camera opens its record there, with a link back to its page.
    pg.goto(base + f"/?camera={cid}")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    popup = pg.locator(".leaflet-popup-content")
    popup.wait_for(timeout=10_000)
    assert cid in popup.inner_text()
    assert popup.get_by_role("link", name="Its page: history, recording, outages").is_visible()
    pg.context.close()


def test_the_maps_filters_are_kept_in_the_url(demo: dict[str, Any], browser: Any) -> None:
    base = demo["url"]
    pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    pg.goto(base + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    pg.get_by_role("checkbox", name="retired").uncheck()
    pg.get_by_label("Show").select_option("ptz")
    assert "status=recording%2Csilent%2Cunknown" in pg.url and "capability=ptz" in pg.url
    # The link opens the same filtered map.
    pg.goto(pg.url)
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    assert not pg.get_by_role("checkbox", name="retired").is_checked()
    assert pg.get_by_label("Show").input_value() == "ptz"
    pg.context.close()


def test_entry_pages_show_people_only_as_the_log_has_them(demo: dict[str, Any]) -> None:
    """The staff's names never appear: the log (and so its pages) holds pseudonyms."""
    base = demo["url"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    logins = json.loads((demo["data"] / "demo" / "logins.json").read_text())
    roles = {"admin", "operator", "investigator", "approver", "judge", "auditor"}
    names = {u["name"] for u in logins} - roles
    assert names
    checked = 0
    for kind in ("user.added", "access.requested", "access.approved", "access.details_read"):
        try:
            listing = opener.open(f"{base}/log/entries?type={kind}", timeout=30).read().decode()
        except urllib.error.HTTPError as err:
            assert err.code == 400  # no entry of that kind in this small city
            continue
        for index in re.findall(r'href="/log/entries/(\d+)"', listing)[:5]:
            page = opener.open(f"{base}/log/entries/{index}", timeout=30).read().decode()
            words = set(re.findall(r"[a-z]+", re.sub(r"<[^>]+>", " ", page.lower())))
            assert not names & words, (kind, index, names & words)
            checked += 1
    assert checked >= 5
