"""The staff maps work from the keyboard, as the public map does (issue 15, item 8).

On the investigator's request form, a "Skip the map" link comes first; the cameras are
one Tab stop; the arrow keys move between them; Enter or Space picks a camera (into the
camera-id field, said in the status line) and picks it out again; a picked camera says
so in its name, not by colour alone.  Nothing here uses the mouse.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.web import test_internal_pages as kit

city = kit.city
browser = kit.browser
pytestmark = kit.pytestmark
T = "%Y-%m-%dT%H:%M:%S"


def _active(page: Any) -> dict[str, Any]:
    got: dict[str, Any] = page.evaluate(
        """() => { const e = document.activeElement;
                   return { id: e.id, cls: String(e.getAttribute('class') || ''),
                            label: e.getAttribute('aria-label'),
                            pressed: e.getAttribute('aria-pressed'),
                            text: e.textContent.trim() }; }"""
    )
    return got


def _is_marker(a: dict[str, Any]) -> bool:
    return "staff-marker" in a["cls"]


def test_a_camera_is_picked_on_the_request_form_by_keyboard_only(
    city: dict[str, Any], browser: Any
) -> None:
    page = kit._login(browser, city["server"].url, "ivan", "/app/requests/new")
    page.wait_for_selector("#pick-map[data-ready=true]", timeout=20_000)
    field = page.locator("#cameras")
    assert field.input_value() == ""

    # (1) From the camera field, Tab reaches "Skip the map"; Enter on it jumps past the map.
    page.focus("#cameras")
    page.keyboard.press("Tab")
    assert _active(page)["text"] == "Skip the map"
    page.keyboard.press("Enter")
    assert _active(page)["id"] == "picked"

    # (2) Into the map: a few Tab presses reach the cameras, which are one stop.
    page.focus("#cameras")
    for _ in range(8):
        page.keyboard.press("Tab")
        if _is_marker(_active(page)):
            break
    first = _active(page)
    assert _is_marker(first), first
    assert first["label"].endswith(", not picked") and first["pressed"] == "false"
    page.keyboard.press("Tab")
    assert not _is_marker(_active(page))  # one Tab leaves every camera behind
    page.keyboard.press("Shift+Tab")
    assert _active(page)["label"] == first["label"]  # and comes back to the same one

    # (3) Enter picks it: into the field, said in the status line and in its own name.
    one = first["label"].removeprefix("Camera ").removesuffix(", not picked")
    page.keyboard.press("Enter")
    assert field.input_value() == one
    assert _active(page)["label"] == f"Camera {one}, picked"
    assert _active(page)["pressed"] == "true"
    assert page.locator("#picked").inner_text() == f"Added {one}. Cameras: {one}"

    # (4) An arrow key moves to another camera; Space picks that one too.
    for key in ("ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp", "End", "Home"):
        page.keyboard.press(key)
        if _active(page)["label"] != f"Camera {one}, picked":
            break
    other = _active(page)
    assert _is_marker(other) and other["label"].endswith(", not picked"), other
    two = other["label"].removeprefix("Camera ").removesuffix(", not picked")
    page.keyboard.press(" ")
    assert field.input_value() == f"{one}, {two}"

    # (5) Enter again picks it out.
    page.keyboard.press("Enter")
    assert field.input_value() == one
    assert page.locator("#picked").inner_text().startswith(f"Took out {two}.")
    page.context.close()


def test_a_flagged_place_opens_and_closes_by_keyboard_on_the_auditors_map(
    city: dict[str, Any], browser: Any
) -> None:
    base, start = city["server"].url, city["start"]
    ivan, olga = kit._session(base, "ivan"), kit._session(base, "olga")
    try:
        for n in range(1, 5):  # the same camera under four cases: a repeated-place flag
            form = {
                "scope": "cameras", "cameras": "MSK-0001", "purpose": "investigation",
                "from": (start - timedelta(seconds=30)).strftime(T),
                "to": (start + timedelta(seconds=30)).strftime(T),
                "case": f"CASE-2026-010{n}", "justification": f"Incident number {n}.",
            }  # fmt: skip
            assert ivan.post("/app/requests/new", data=form).status_code == 303
        assert olga.post("/access/sweep").status_code == 200
    finally:
        ivan.close()
        olga.close()
    page = kit._login(browser, base, "olga", "/app/audit")
    page.wait_for_selector("#flag-map[data-ready=true]", timeout=20_000)
    page.locator("#flag-map").locator("xpath=preceding-sibling::p[1]/a").focus()
    assert _active(page)["text"] == "Skip the map"
    for _ in range(8):
        page.keyboard.press("Tab")
        if _is_marker(_active(page)):
            break
    place = _active(page)
    assert _is_marker(place) and place["label"].startswith("Place "), place
    page.keyboard.press("Enter")
    page.wait_for_selector(".leaflet-popup-content")
    assert "leaflet-popup-content" in _active(page)["cls"]  # the note has the focus
    assert place["label"].removeprefix("Place ") in page.inner_text(".leaflet-popup-content")
    page.keyboard.press("Escape")
    page.wait_for_selector(".leaflet-popup", state="detached")
    assert _active(page)["label"] == place["label"]  # back on the place it belongs to
    page.context.close()
