"""The staff page of a live grant says what it is and links the requester to the player;
it offers no clip release."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def test_a_live_grants_page_links_its_requester_to_the_player_and_offers_no_release(
    a: AppCity,
) -> None:
    rid = live(a, minutes=5)["request"]
    approve(a, rid)
    page = a.client.get(f"/app/requests/{rid}", headers=a.auth("ivan"))
    assert page.status_code == 200, page.text
    text = " ".join(page.text.split())
    assert "A live grant of 5 minutes from the approval" in text
    assert f'href="/access/live/{rid}/watch"' in page.text
    assert 'id="release"' not in page.text  # a live grant is never a clip
    watch = a.client.get(f"/access/live/{rid}/watch", headers=a.auth("ivan"))
    assert watch.status_code == 200 and 'id="live-video"' in watch.text
    assert "/static/vendor/hls/hls.min.js" in watch.text
    # The approver sees what it is, without the player's link.
    page = a.client.get(f"/app/requests/{rid}", headers=a.auth("boris"))
    assert page.status_code == 200 and "A live grant of 5 minutes" in " ".join(page.text.split())
    assert "/watch" not in page.text


def test_the_staff_form_asks_for_a_live_grant_and_refuses_one_too_long(a: AppCity) -> None:
    base = str(a.client.base_url)
    headers = {**a.auth("ivan"), "Origin": base}
    page = a.client.get("/app/requests/new", headers=a.auth("ivan"))
    assert 'href="/app/live/new"' in page.text
    form = {"cameras": "cam-n1", "minutes": "5", "purpose": "public-safety",
            "case": "CASE-2026-0077", "justification": "A march passes the metro."}  # fmt: skip
    r = a.client.post("/app/live/new", data={**form, "minutes": "61"}, headers=headers)
    assert r.status_code == 400 and "at most 60 minutes" in r.text and 'id="form-error"' in r.text
    r = a.client.post("/app/live/new", data={**form, "emergency": "1"}, headers=headers)
    assert r.status_code == 303, r.text
    rid = r.headers["location"].split("/")[-1].split("?")[0]
    g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
    assert g["emergency"] and g["state"] == "live" and g["minutes"] == 5
