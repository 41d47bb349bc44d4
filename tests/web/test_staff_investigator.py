"""The investigator's and the approver's pages as they use them (issue 15, items 14 and 15).

Against a real server with a recorded, archived 4-second segment on MSK-0001
(the ``city`` of test_internal_pages): the investigator asks whether footage
exists before requesting (nothing logged), gives the window as a length in
hours and minutes, sees the case in the list, and sees the release at work
without being able to send it twice; the approver sees, beside each queued
request, whether its footage exists, the requester's recent requests and
decisions, and open flags.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from html import unescape
from typing import Any

from tests.web import test_internal_pages as kit

city = kit.city  # the fixtures: a served city with a recorded segment, and Chromium
browser = kit.browser
_entries, _login = kit._entries, kit._login


@contextmanager
def _session(base: str, name: str) -> Iterator[Any]:
    client = kit._session(base, name)
    try:
        yield client
    finally:
        client.close()


T = "%Y-%m-%dT%H:%M:%S"


def _form(city: dict[str, Any], **extra: str) -> dict[str, str]:
    start = city["start"]
    form = {
        "scope": "cameras",
        "cameras": "MSK-0001, MSK-0002",
        "from": (start - timedelta(seconds=30)).strftime(T),
        "to": (start + timedelta(seconds=30)).strftime(T),
        "purpose": "investigation",
        "case": "CASE-2026-0077",
        "justification": "A theft at the kiosk.",
    }
    form.update(extra)
    return form


def _text(html: str, marker: str) -> str:
    m = re.search(marker + r"[^>]*>(.*?)</", html, re.S)
    assert m is not None, marker
    return " ".join(unescape(m.group(1)).split())


def test_footage_is_checked_before_asking_and_nothing_is_logged(city: dict[str, Any]) -> None:
    base = city["server"].url
    with _session(base, "ivan") as ivan:
        before = [e for e in _entries(city["data"]) if e["type"].startswith("access.")]
        page = ivan.post("/app/requests/new", data=_form(city, action="check"))
        assert page.status_code == 200
        summary = _text(page.text, 'id="footage-summary"')
        assert summary.startswith(
            "1 of 2 cameras recorded footage in this window: 4 s of 2 min (3%)."
        )
        assert "Nothing was logged" in summary
        assert 'value="CASE-2026-0077"' in page.text  # the form keeps what was typed
        later = city["start"] + timedelta(hours=1)
        none = ivan.post(
            "/app/requests/new",
            data=_form(city, action="check", cameras="MSK-0001", **{
                "from": later.strftime(T), "to": (later + timedelta(minutes=5)).strftime(T)}),
        )  # fmt: skip
        assert _text(none.text, 'id="footage-summary"').startswith(
            "No recorded footage on this camera in this window."
        )
        bad = ivan.post("/app/requests/new", data=_form(city, action="check", cameras="NOPE-1"))
        assert bad.status_code == 404 and "camera NOPE-1 is not in the registry" in unescape(
            bad.text
        )
        after = [e for e in _entries(city["data"]) if e["type"].startswith("access.")]
        assert after == before  # a read of the segment index only


def test_window_in_hours_and_minutes_and_the_case_column(city: dict[str, Any]) -> None:
    base = city["server"].url
    with _session(base, "ivan") as ivan:
        start = (city["start"] - timedelta(hours=1, minutes=31)).strftime(T)
        form = _form(city, to="", hours="1", minutes="30", action="send", **{"from": start})
        sent = ivan.post("/app/requests/new", data=form, follow_redirects=False)
        assert sent.status_code == 303, _text(sent.text, 'id="form-error"')
        rid = sent.headers["location"].split("/")[-1].split("?")[0]
        page = ivan.get(f"/app/requests/{rid}").text
        assert "<dt>Window</dt><dd>1 h 30 min</dd>" in page
        [logged] = [e for e in _entries(city["data"]) if e["type"] == "access.requested"]
        assert logged["window_s"] == 5400
        listing = ivan.get("/app/requests").text
        assert '<th scope="col">Case</th>' in listing
        assert '<td class="case">CASE-2026-0077</td>' in listing
        assert "<td>1 h 30 min</td>" in listing
        neither = ivan.post("/app/requests/new", data=_form(city, to="", action="send"))
        assert neither.status_code == 400
        assert "give the end of the window, or its length in hours and minutes" in neither.text


def test_the_approver_sees_footage_history_and_flags_beside_each_request(
    city: dict[str, Any],
) -> None:
    base = city["server"].url
    with _session(base, "ivan") as ivan, _session(base, "anna") as anna:
        first = ivan.post("/app/requests/new", data=_form(city, case="CASE-2026-0001"),
                          follow_redirects=False)  # fmt: skip
        rid1 = first.headers["location"].split("/")[-1].split("?")[0]
        denied = anna.post(f"/app/requests/{rid1}/deny", data={"reason": "no grounds given"})
        assert denied.status_code in (200, 303)
        second = ivan.post("/app/requests/new", data=_form(city, case="CASE-2026-0002"),
                           follow_redirects=False)  # fmt: skip
        rid2 = second.headers["location"].split("/")[-1].split("?")[0]
        html = anna.get("/app/queue").text
        section = html.split(f'aria-labelledby="q-{rid2}"')[1].split("</section>")[0]
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", section)).split())
        assert "1 of 2 cameras recorded footage in this window: 4 s of 2 min (3%)." in text
        assert "made 1 other request: 1 denied." in text
        assert f"{rid1}" in text and "denied, 1 denial: no grounds given" in text
        assert "No open flag concerns this request or its requester." in text
        assert rid1 not in html.split('class="queued"')[0]  # the denied one is not queued


def test_release_shows_it_is_working_and_cannot_be_sent_twice(
    city: dict[str, Any], browser: Any
) -> None:
    from tests.web.test_pages_a11y import _axe, _too_wide

    base = city["server"].url
    with _session(base, "ivan") as ivan, _session(base, "anna") as anna:
        sent = ivan.post("/app/requests/new", data=_form(city, cameras="MSK-0001"),
                         follow_redirects=False)  # fmt: skip
        rid = sent.headers["location"].split("/")[-1].split("?")[0]
        assert anna.post(f"/app/requests/{rid}/approve", data={"reason": "ok"}).status_code in (
            200,
            303,
        )
    page = _login(browser, base, "ivan", f"/app/requests/{rid}")
    page.set_viewport_size({"width": 360, "height": 800})
    problems: list[str] = []
    for path in (f"/app/requests/{rid}", "/app/requests/new", "/app/requests"):
        page.goto(base + path)
        problems += [f"{path} {v['id']}" for v in _axe(page, base)] + _too_wide(page)
    assert problems == []
    page.goto(f"{base}/app/requests/{rid}")
    # What the page shows while the clip is cut, caught just after the press.
    page.evaluate(
        """() => document.querySelector("form[data-working]").addEventListener("submit", () =>
             setTimeout(() => { window.seen = {
               text: document.getElementById("release-working").textContent,
               shown: !document.getElementById("release-working").hidden,
               disabled: document.getElementById("release").disabled}; }, 50))"""
    )
    with page.expect_download(timeout=240_000) as info:
        page.get_by_role("button", name="Release and download the footage").click()
    assert info.value.suggested_filename == f"{rid}.mp4"
    seen = page.evaluate("window.seen")
    assert seen["shown"] and seen["disabled"]
    assert seen["text"].startswith("Working: the clip is being cut and redacted")
    # A second press (the form sent again) goes nowhere: one release, one download.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.evaluate("document.querySelector('form[data-working]').requestSubmit()")
    page.wait_for_timeout(1500)
    assert posts == []
    released = [e for e in _entries(city["data"]) if e["type"] == "access.released"]
    assert [e["request"] for e in released] == [rid]


def test_cameras_are_picked_on_the_map(city: dict[str, Any], browser: Any) -> None:
    from tests.web.test_pages_a11y import _axe, _too_wide

    base = city["server"].url
    page = _login(browser, base, "ivan", "/app/requests/new")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.reload()
    try:
        page.wait_for_selector("#pick-map[data-ready=true]", timeout=20_000)
    except Exception:
        raise AssertionError(errors) from None
    markers = page.locator("#pick-map path.leaflet-interactive")
    assert markers.count() == 8  # every registered camera of the city
    markers.first.dispatch_event("click")
    picked = page.get_by_label("Camera ids").input_value()
    assert picked and "," not in picked
    assert page.locator("#picked").inner_text() == f"Added {picked}. Cameras: {picked}"
    markers.nth(1).dispatch_event("click")
    assert page.get_by_label("Camera ids").input_value().startswith(picked + ", ")
    markers.first.dispatch_event("click")  # a second click takes it out again
    assert picked not in page.get_by_label("Camera ids").input_value().split(", ")
    page.set_viewport_size({"width": 360, "height": 800})
    assert [v["id"] for v in _axe(page, base)] + _too_wide(page) == []
