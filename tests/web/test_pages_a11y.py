"""Every public and staff page of the demo city, as people with keyboards, phones and screen
readers use them (issue 15, items 8, 9, 12 and 13).

One small demo city (``custodes demo``'s builder: 40 cameras, one day, its staff),
one ``custodes serve``, one Chromium.  On every page: axe-core finds no serious or
critical violation, and at 360 and 390 px nothing is wider than the screen.  Then
the map by keyboard and by touch, and the outage page of the theatre's night.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import REPO
from tests.geo import city as test_city
from tests.shared_city import private_copy

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
AXE = REPO / "src" / "custodes" / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"
SHOTS = REPO / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Chromium at /usr/bin/chromium"
    ),
    pytest.mark.heavy,
]

ONE_MANY = re.compile(
    r"\b1 (?:cameras|requests|flags|declarations|outage declarations|events|intervals|districts"
    r"|places|entries|footage requests|anomaly flags|active cameras)\b"
)
PUBLIC = ["/", "/coverage", "/outages", "/statistics", "/looked", "/verify", "/login"]
FOUND = ["/cameras", "/cameras/{camera}", "/log/entries", "/log/entries/{entry}", "/reports"]
STAFF = {
    # who: the pages their role has
    "admin": ["/app", "/app/users", "/app/users/{user}/revoke"],
    "oksana": ["/app", "/app/registry", "/app/registry/{camera}", "/app/registry/new", "/app/geo"],
    "ivan": [
        "/app",
        "/app/requests",
        "/app/requests/new",
        "/app/requests/{request}",
        "/app/live/new",
    ],  # fmt: skip
    "anna": ["/app", "/app/queue"],
    "audrey": ["/app", "/app/audit"],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from custodes.demo.build import DemoConfig, build_city

    pytest.importorskip("argon2", reason="the demo's staff need the server extra")
    folder = tmp_path_factory.mktemp("demo")
    data = folder / "city"
    cfg = DemoConfig(cameras=40, days=1, requests=12, clips=False)
    facts = build_city(data, cfg)
    logins = {u["name"]: u["password"] for u in json.loads((data / "demo/logins.json").read_text())}
    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.delenv("CUSTODES_TILE_URL", raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        with test_city.serving(data) as url:
            yield {"url": url, "data": data, "facts": facts, "logins": logins}


@pytest.fixture(scope="module")
def plain_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A city that is not the demo (no invented streets), made once; tests copy it."""
    data, _ = test_city.make_instance(tmp_path_factory.mktemp("plain"))
    return data


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def _get_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _axe(pg: Any, base: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page, with where they are."""
    pg.add_script_tag(url=base + "/static/vendor/axe-core/axe.min.js")
    found = pg.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ["violations"]});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 4).map(n => n.target.join(" "))}));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def _too_wide(pg: Any) -> list[str]:
    """What sticks out past the right edge of the screen (empty when nothing does)."""
    result: list[str] = pg.evaluate(
        """() => {
          const w = window.innerWidth;
          if (document.documentElement.scrollWidth <= w) return [];
          const out = [];
          for (const el of document.querySelectorAll("body *")) {
            const r = el.getBoundingClientRect();
            if (r.right > w + 1 && r.width > 0) {
              const c = el.className;
              const cls = typeof c === "string" && c ? "." + c : "";
              out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + cls +
                       " " + Math.round(r.right) + "px");
            }
          }
          const wide = document.documentElement.scrollWidth;
          return ["page is " + wide + "px wide", ...out.slice(0, 8)];
        }"""
    )
    return result


def _settle(pg: Any, path: str) -> None:
    pg.wait_for_load_state("networkidle")
    if path in ("/", "/coverage"):
        pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)


def _login(browser: Any, base: str, name: str, password: str, **ctx: Any) -> Any:
    context = browser.new_context(**ctx)
    pg = context.new_page()
    pg.goto(base + "/login?next=/app")
    pg.get_by_label("Name").fill(name)
    pg.get_by_label("Password").fill(password)
    pg.get_by_role("button", name="Log in").click()
    pg.wait_for_url(base + "/app")
    return pg


def _incident_query(demo: dict[str, Any]) -> str:
    """The theatre's night: the place and the hours its cameras were dark."""
    state = _get_json(demo["url"] + "/public/places.geojson")
    [theatre] = [f for f in state["features"] if f["id"] == "theatre-opera"]
    lon, lat = theatre["geometry"]["coordinates"]
    f, u = demo["facts"]["theatre_outage"]
    return urlencode({"lat": lat, "lon": lon, "radius": 300, "from": f, "to": u})


def _pages(demo: dict[str, Any]) -> dict[str, list[str]]:
    """Every page, by who opens it (None: the public)."""
    cams = _get_json(demo["url"] + "/public/cameras.geojson")["features"]
    stats = _get_json(demo["url"] + "/public/outages.json")
    assert cams and stats["outages"]
    from custodes.ledger.instance import Instance

    store = Instance.load(demo["data"]).reader().store
    try:
        entries = [json.loads(e) for e in store.read_entries(0, store.next_index())]
    finally:
        store.close()
    rid = next(e["request"] for e in entries if e["type"] == "access.requested")
    fill = {"camera": cams[0]["id"], "request": rid, "entry": str(len(entries) // 2),
            "user": "ivan"}  # fmt: skip
    pages: dict[str, list[str]] = {
        "": [*PUBLIC, *(p.format(**fill) for p in FOUND),
             "/outages?" + _incident_query(demo), "/looked?" + _incident_query(demo)]
    }  # fmt: skip
    for who, paths in STAFF.items():
        pages[who] = [p.format(**fill) for p in paths]
    return pages


def test_every_page_passes_axe_and_fits_a_phone(demo: dict[str, Any], browser: Any) -> None:
    assert AXE.is_file(), "axe-core is missing: run scripts/web-assets.sh (make install does)"
    base = demo["url"]
    problems: list[str] = []
    seen = 0
    for who, paths in _pages(demo).items():
        if who:
            pg = _login(browser, base, who, demo["logins"][who])
        else:
            pg = browser.new_context().new_page()
        for path in paths:
            for width in (1366, 390, 360):
                pg.set_viewport_size({"width": width, "height": 900})
                pg.goto(base + path)
                assert pg.url.startswith(base + path.split("?")[0]), (who, path, pg.url)
                _settle(pg, path)
                if width == 1366:
                    wrong = ONE_MANY.findall(pg.locator("main").inner_text())
                    if wrong:
                        problems.append(f"{who or 'public'} {path}: says {wrong}")
                    for v in _axe(pg, base):
                        problems.append(f"{who or 'public'} {path}: axe {v['impact']} {v['id']}"
                                        f" ({v['help']}) at {v['nodes']}")  # fmt: skip
                else:
                    for what in _too_wide(pg):
                        problems.append(f"{who or 'public'} {path} at {width}px: {what}")
                seen += 1
        pg.context.close()
    assert seen >= 3 * 20
    assert problems == [], "\n".join(problems)


def test_wide_tables_scroll_inside_their_own_frame(demo: dict[str, Any], browser: Any) -> None:
    pg = _login(browser, demo["url"], "oksana", demo["logins"]["oksana"],
                viewport={"width": 360, "height": 800})  # fmt: skip
    pg.goto(demo["url"] + "/app/registry")
    frame = pg.locator(".table-wrap").first
    sizes = frame.evaluate("w => [w.scrollWidth, w.clientWidth, window.innerWidth]")
    assert sizes[0] > sizes[1] and sizes[1] <= sizes[2]  # the table is wider; its frame is not
    # The frame scrolls, and a keyboard can reach it to scroll it.
    assert frame.get_attribute("tabindex") == "0" and frame.get_attribute("role") == "region"
    frame.focus()
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowRight")
    # The scroll may be animated: wait for it (up to 5 s) rather than read it at once.
    frame.evaluate(
        "w => new Promise((ok, no) => { const t0 = performance.now(); (function look() {"
        " if (w.scrollLeft > 0) ok(); else if (performance.now() - t0 > 5000) no('not scrolled');"
        " else requestAnimationFrame(look); })(); })"
    )
    assert frame.evaluate("w => w.scrollLeft") > 0
    pg.context.close()


def _marker_labels(pg: Any) -> list[str]:
    return pg.eval_on_selector_all(
        "path.cam-marker", "els => els.map(e => e.getAttribute('aria-label'))"
    )


def test_the_map_is_one_tab_stop_with_arrows_and_escape(demo: dict[str, Any], browser: Any) -> None:
    pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    pg.goto(demo["url"] + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    assert len(_marker_labels(pg)) >= 40
    # Tab from the top of the page to the table under the map: the cameras are one stop.
    visited: list[str] = []
    for _ in range(80):
        pg.keyboard.press("Tab")
        what = pg.evaluate(
            "() => { const a = document.activeElement;"
            " return (a.classList && a.classList.contains('cam-marker') ? 'camera ' : '') +"
            " (a.getAttribute('aria-label') || a.textContent.trim().slice(0, 40)); }"
        )
        visited.append(what)
        if "The same cameras as a table" in what:
            break
    assert "The same cameras as a table" in visited[-1], "\n".join(visited)
    assert sum(v.startswith("camera ") for v in visited) == 1, visited
    assert len(visited) < 40, visited  # it was 312 presses before
    # The skip link passes the map altogether.
    pg.goto(demo["url"] + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    pg.get_by_role("link", name="Skip the map").focus()
    pg.keyboard.press("Enter")
    pg.keyboard.press("Tab")
    assert "The same cameras as a table" in pg.evaluate("document.activeElement.textContent")

    # The arrow keys move from camera to camera; Enter opens one, Escape closes it and
    # the keyboard is back on that camera.
    first = pg.locator("path.cam-marker[tabindex='0']")
    assert first.count() == 1
    first.focus()
    start = pg.evaluate("document.activeElement.getAttribute('aria-label')")
    moved = set()
    for key in ("ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp", "End", "Home"):
        pg.keyboard.press(key)
        moved.add(pg.evaluate("document.activeElement.getAttribute('aria-label')"))
    assert len(moved - {start}) >= 2, moved
    assert pg.locator("path.cam-marker[tabindex='0']").count() == 1  # still one stop
    pg.keyboard.press("End")
    here = pg.evaluate("document.activeElement.getAttribute('aria-label')")
    pg.keyboard.press("Enter")
    popup = pg.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5_000)
    cam = here.split(",")[0].removeprefix("Camera ")
    assert cam in popup.inner_text()
    pg.keyboard.press("Escape")
    popup.wait_for(state="detached", timeout=5_000)
    assert pg.evaluate("document.activeElement.getAttribute('aria-label')") == here
    pg.context.close()


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _hex(css: str) -> str:
    nums = [int(n) for n in re.findall(r"\d+", css)[:3]]
    return "#" + "".join(f"{n:02x}" for n in nums)


def test_status_is_shape_and_word_as_well_as_colour(demo: dict[str, Any], browser: Any) -> None:
    pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    pg.goto(demo["url"] + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    marks = pg.eval_on_selector_all(
        "path.cam-marker",
        "els => els.map(e => [e.getAttribute('class'), e.getAttribute('d'),"
        " getComputedStyle(e).fill, e.getAttribute('aria-label')])",
    )
    shapes: dict[str, set[str]] = {}
    fills: dict[str, str] = {}
    for cls, d, fill, label in marks:
        status = re.search(r"cam-(recording|silent|unknown|retired)", cls).group(1)
        # The shape: a circle has arcs, a triangle three corners, a diamond four, a square h/v.
        shape = "circle" if "a" in d else "square" if "h" in d else f"{d.count('L') + 1} corners"
        shapes.setdefault(status, set()).add(shape)
        fills[status] = _hex(fill)
        word = {"unknown": "not heard yet"}.get(status, status)
        assert label.endswith(", " + word), label
    assert {"recording", "silent"} <= set(shapes), shapes
    assert all(len(s) == 1 for s in shapes.values()), shapes  # one shape per status
    assert len({next(iter(s)) for s in shapes.values()}) == len(shapes)  # and all different
    # Each symbol stands out from the map under it: the plain map and the demo's blocks.
    ground = _hex(pg.locator("#map").evaluate("e => getComputedStyle(e).backgroundColor"))
    for status, fill in fills.items():
        for under in (ground, "#e4e0d8", "#cfe5c6"):
            assert _contrast(fill, under) >= 3, (status, fill, under)
    # The key beside the filters shows the same shapes, named.
    for value, word in (("recording", "recording"), ("silent", "silent"),
                        ("unknown", "not heard yet"), ("retired", "retired")):  # fmt: skip
        label = pg.locator(f"#filters label:has(input[value={value}])")
        assert label.locator(f"svg.shape.status-{value}").count() == 1
        assert label.inner_text().strip() == word
    pg.context.close()


def test_markers_are_big_enough_to_tap(demo: dict[str, Any], browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True,
                              is_mobile=True, device_scale_factor=2)  # fmt: skip
    pg = ctx.new_page()
    pg.goto(demo["url"] + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    boxes = pg.eval_on_selector_all(
        "path.cam-marker", "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [r.width, r.height]; })"
    )  # fmt: skip
    assert boxes and min(min(w, h) for w, h in boxes) >= 23.9, boxes[:5]
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    ctx.close()


def test_the_demo_city_draws_its_own_streets(demo: dict[str, Any], browser: Any) -> None:
    doc = _get_json(demo["url"] + "/public/basemap.geojson")
    kinds = [f["properties"]["kind"] for f in doc["features"]]
    assert kinds.count("avenue") >= 12 and kinds.count("street") > 100
    assert kinds.count("block") > 300 and kinds.count("park") > 10
    pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(demo["url"] + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    drawn = pg.locator(".leaflet-basemap-pane path").count()
    assert drawn == len(doc["features"])
    # ... and they can be seen: the layer spans the map (a zero-width layer drew nothing).
    layer = pg.locator(".leaflet-basemap-pane svg").bounding_box()
    assert layer and layer["width"] > 600 and layer["height"] > 400
    block = pg.locator(".leaflet-basemap-pane path").first.bounding_box()
    assert block and block["width"] >= 4
    assert "Streets: synthetic" in pg.locator(".leaflet-control-attribution").inner_text()
    assert all(u.startswith(demo["url"]) for u in requests if not u.startswith("data:"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / "a11y-demo-map.png"))
    pg.context.close()


def test_outage_page_counts_declarations_and_keeps_to_the_incident(
    demo: dict[str, Any], browser: Any
) -> None:
    pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    pg.goto(demo["url"] + "/outages")
    everything = pg.locator("#timeline li.event").count()
    # The form's times are date pickers, filled in as a person would.
    assert pg.locator("#from").get_attribute("type") == "datetime-local"
    assert pg.locator("#to").get_attribute("type") == "datetime-local"
    f, u = demo["facts"]["theatre_outage"]
    pg.select_option("#place", label="Opera Theatre (theatre)")
    pg.fill("#radius", "300")
    pg.fill("#from", f[:16])
    pg.fill("#to", u[:16])
    pg.get_by_role("button", name="Ask the log").click()
    pg.wait_for_selector("#incident")
    flags = pg.locator("#incident-flags").inner_text()
    # One declaration covered the theatre's cameras: it is one declaration.
    theatre = pg.locator("#incident tbody tr").count()
    assert theatre >= 5
    assert flags.startswith("1 outage declaration made after the window began"), flags
    assert re.search(r"\b1 outage declarations\b|\b\d+ declaration\b", flags) is None
    heading = pg.locator("#answer-h").inner_text()
    assert heading.startswith(f"{theatre} cameras within 300 m")
    # The timeline below is the incident's cameras only, and says so.
    cams = set(pg.locator("#incident tbody th").all_inner_texts())
    events = pg.locator("#timeline li.event")
    assert 0 < events.count() < everything
    for text in events.all_inner_texts():
        assert cams & set(re.findall(r"[A-Z]+-\d+", text)), text
    rows = set(pg.locator("#outage-chart .chart-label").all_inner_texts()) - {""}
    assert rows and rows <= cams
    assert "Only the" in pg.locator("#timeline-scope").inner_text()
    # A legend in words, at a readable size and contrast.
    legend = pg.locator("#chart-legend")
    assert legend.inner_text().count("\n") >= 3 and "declared late" in legend.inner_text()
    size = legend.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    colour = _hex(legend.evaluate("e => getComputedStyle(e).color"))
    assert size >= 14 and _contrast(colour, "#ffffff") >= 7
    pg.context.close()


def test_root_hashes_and_names_are_the_same_everywhere(demo: dict[str, Any], browser: Any) -> None:
    import subprocess
    import sys

    vkey = (demo["data"] / "keys" / "log.vkey").read_text().strip()
    out = subprocess.run(
        [sys.executable, "-m", "custodes", "verify", "--vkey", vkey, "--source",
         demo["url"] + "/log"],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    printed = re.search(r"root ([0-9a-f]{64})", out.stdout.decode() + out.stderr.decode())
    assert printed, out
    pg = browser.new_context().new_page()
    for path in ("/", "/coverage", "/outages", "/statistics", "/looked", "/verify"):
        pg.goto(demo["url"] + path)
        roots = pg.locator("code.root").all_inner_texts()
        assert roots and set(roots) == {printed.group(1)}, (path, roots)
        # The nav names each page as the page is titled.
        current = pg.locator("header nav a[aria-current=page]").inner_text()
        assert pg.title() == f"{current} · custodes", (path, current, pg.title())
    # One word per status: the map, its table, and the staff registry say the same.
    pg.goto(demo["url"] + "/")
    pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    words = {label.split(", ")[-1] for label in _marker_labels(pg)}
    pg.context.close()
    staff = _login(browser, demo["url"], "oksana", demo["logins"]["oksana"])
    staff.goto(demo["url"] + "/app/registry")
    status = [h.strip() for h in staff.locator("table thead th").all_inner_texts()].index("Status")
    column = set(staff.locator(f"table tbody tr td:nth-child({status + 1})").all_inner_texts())
    staff.context.close()
    allowed = {"recording", "silent", "not heard yet", "retired"}
    assert words <= allowed and column <= allowed, (words, column)
    assert words & column


def _tile_server(folder: Path) -> tuple[Any, list[str]]:
    """A tile server on loopback that answers every /z/x/y.png with one small PNG."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
    )
    seen: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            seen.append(self.path)
            ok = re.fullmatch(r"/\d+/\d+/\d+\.png", self.path) is not None
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png) if ok else 0))
            self.end_headers()
            if ok:
                self.wfile.write(png)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


def test_serve_tiles_draws_a_base_map_from_the_tile_server(
    tmp_path: Path, browser: Any, plain_city: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from tests.conftest import free_port, wait_http

    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "CUSTODES_TILE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    data = private_copy(plain_city, tmp_path / "data")
    tiles, seen = _tile_server(tmp_path)
    tile_url = f"http://127.0.0.1:{tiles.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    port = free_port()
    cmd = [sys.executable, "-m", "custodes", "--data", str(data), "serve", "--port", str(port),
           "--tiles", tile_url, "--tiles-attribution", "Tiles © Test Tile Server"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.goto(base + "/")
        pg.wait_for_selector("#map[data-ready=true]", timeout=20_000)
        pg.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded').length > 3")
        assert len(seen) > 3 and all(re.fullmatch(r"/\d+/\d+/\d+\.png", p) for p in seen)
        credit = pg.locator(".leaflet-control-attribution").inner_text()
        assert "Tiles © Test Tile Server" in credit and "synthetic" not in credit
        assert errors == []  # the content policy let the tiles in
        pg.context.close()
        # Not the demo city: no invented streets.
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/public/basemap.geojson", timeout=10)
        assert err.value.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tiles.shutdown()
        tiles.server_close()


def test_the_config_file_sets_the_tiles_and_serve_refuses_a_bad_url(
    tmp_path: Path, plain_city: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from custodes.web.routes.dashboard import tile_settings
    from tests.conftest import run_cli

    monkeypatch.delenv("CUSTODES_TILE_URL", raising=False)
    monkeypatch.delenv("CUSTODES_TILE_ATTRIBUTION", raising=False)
    data = private_copy(plain_city, tmp_path / "data")
    cfg = json.loads((data / "custodes.json").read_text())
    cfg["tile_url"] = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    (data / "custodes.json").write_text(json.dumps(cfg))
    assert tile_settings(data) == {
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "attribution": "© OpenStreetMap contributors",  # the credit OSM's policy asks for
    }
    bad = run_cli("serve", "--tiles", "tile.example.org/{z}/{x}/{y}.png", data=data, check=False)
    assert bad.returncode != 0
    assert b"must start with http:// or https://" in bad.stderr
    bad = run_cli("serve", "--tiles", "https://tile.example.org/{z}/{x}.png", data=data,
                  check=False)  # fmt: skip
    assert bad.returncode != 0 and b"lacks {y}" in bad.stderr
