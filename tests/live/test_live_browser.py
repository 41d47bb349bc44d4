"""Chromium (Debian's, through Playwright) plays a live grant's playlist on the watch page:
frames advance while the grant lasts (faces blurred: the single-pass redaction's MPEG-TS
plays), and the player stops once the grant is revoked."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.fleet.model import parse_time
from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live, record_after

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
HLS = Path(__file__).parents[2] / "src/custodes/web/static/vendor/hls/hls.min.js"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None or not HLS.exists(),
    reason="needs Chromium, ffmpeg and hls.js (scripts/web-assets.sh)",
)


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def _entries(a: AppCity) -> list[dict[str, Any]]:
    log = a.app.state.ledger
    raw = log.read(lambda lg: list(lg.store.read_entries(0, lg.store.next_index())))
    return [json.loads(e) for e in raw]


def _time(page: Any) -> float:
    return float(page.evaluate("document.getElementById('live-video').currentTime"))


def _until(page: Any, script: str, timeout: float = 30) -> None:
    """Poll ``script`` from outside the page (its CSP allows no eval, rightly)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            status = page.locator("#live-status").inner_text()
            raise AssertionError(f"{script} never held; the page says {status!r}")
        time.sleep(0.1)


def test_chromium_plays_the_grant_and_stops_when_it_is_revoked(a: AppCity) -> None:
    rid = live(a)["request"]
    approve(a, rid)
    g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
    record_after(a, parse_time(g["start"], "start") + 100, 1)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            ctx = browser.new_context(extra_http_headers=a.auth("ivan"))
            page = ctx.new_page()
            seen: list[tuple[int, str, dict[str, str]]] = []
            page.on("response", lambda r: seen.append((r.status, r.url, r.headers)))
            page.goto(f"{a.client.base_url}/access/live/{rid}/watch")
            assert "live" in page.locator("#live-state").inner_text()
            _until(page, "document.getElementById('live-video').currentTime > 1")
            t1 = _time(page)
            time.sleep(1.5)
            assert _time(page) > t1  # frames advance
            r = a.client.post(f"/access/live/{rid}/revoke", json={"reason": "Enough."},
                              headers=a.auth("boris"))  # fmt: skip
            assert r.status_code == 200
            # The next playlist refresh is refused, and the player says so.
            _until(page, "document.getElementById('live-video').dataset.stopped === '1'")
            assert "revoked" in page.locator("#live-status").inner_text()
            # Every segment it played was fetched through the gateway, each named (faces
            # blurred) in a logged access.viewed of this grant.
            got = [h for st, u, h in seen if st == 200 and u.endswith(".ts")]
            log = _entries(a)
            assert got
            for h in got:
                viewed = log[int(h["x-custodes-index"])]
                assert viewed["type"] == "access.viewed" and viewed["request"] == rid
                assert h["x-custodes-sha256"] in viewed["segments"]
                assert viewed["redaction"]["faces"] is True
        finally:
            browser.close()
