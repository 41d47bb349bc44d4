"""What the public sees of live viewing, from the log alone: grants per month, how long
they lasted, segments viewed, and emergency reviews late or missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.access.live_stats import live_figures
from custodes.fleet.model import format_time, parse_time
from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live, record_after, set_clock


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def entries(a: AppCity) -> list[tuple[int, dict[str, Any]]]:
    log = a.app.state.ledger
    raw = log.read(lambda lg: list(lg.store.read_entries(0, lg.store.next_index())))
    return [(i, json.loads(e)) for i, e in enumerate(raw)]


def test_live_figures_count_grants_durations_views_and_late_or_missing_reviews(
    a: AppCity,
) -> None:
    # One live grant, approved, one segment of it watched.
    rid = live(a, minutes=5)["request"]
    approve(a, rid)
    start = parse_time(a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["start"],
                       "start")  # fmt: skip
    (name,) = record_after(a, start + 100, 1)
    assert a.client.get(f"/access/live/{rid}/{name}.ts", headers=a.auth("ivan")).status_code == 200
    # One never approved; two emergency grants: one reviewed late, one never.
    live(a, minutes=3)
    late = live(a, emergency=True, minutes=10)["request"]
    last = live(a, who="olga", emergency=True, minutes=10)
    t0 = parse_time(last["start"], "start")  # the latest start: every deadline is from it on
    set_clock(a, t0 + 4 * 3600_000 + 60_000)
    approve(a, late)
    figures = live_figures(entries(a), t0 + 5 * 3600_000)
    month = format_time(t0)[:7]
    assert figures["pending"] == 1
    assert figures["live"] == 3 and figures["emergency"] == 2
    assert figures["minutes_granted"] == 25
    assert figures["minutes_live"] == 25  # all ran to their end by then
    assert figures["segments_viewed"] == 1
    assert figures["reviews_late"] == 1 and figures["reviews_missing"] == 1
    assert figures["months"][month]["live"] == 3
    # Before the deadline nothing is late or missing yet.
    early = live_figures([e for e in entries(a) if e[1]["type"] != "access.approved"
                          or e[1]["request"] != late], t0 + 60_000)  # fmt: skip
    assert early["reviews_missing"] == 0 and early["reviews_late"] == 0


def test_the_replayed_public_state_gives_the_same_live_figures(a: AppCity) -> None:
    from custodes.access.live_stats import live_from_state
    from custodes.reports.replay import replay

    rid = live(a, minutes=5)["request"]
    approve(a, rid)
    live(a, minutes=3)
    g = live(a, emergency=True, minutes=10)
    now = parse_time(g["start"], "start") + 5 * 3600_000
    log = a.app.state.ledger
    raw = log.read(lambda lg: list(lg.store.read_entries(0, lg.store.next_index())))
    state = replay((i, bytes(e)) for i, e in enumerate(raw))
    got, want = live_from_state(state, now), live_figures(entries(a), now)
    assert got == want
    assert got["live"] == 2 and got["emergency"] == 1 and got["pending"] == 1
    assert got["reviews_missing"] == 1
    # A report's period: live.* figures of the grants that started in it; none, none shown.
    from custodes.access.live_stats import live_period

    start = parse_time(g["start"], "start")
    fig = live_period(state, start - 3600_000, start + 3600_000)
    assert fig["live.grants"] == 2 and fig["live.emergency"] == 1 and fig["live.pending"] == 1
    assert fig["live.minutes_granted"] == 15
    assert live_period(state, start - 7200_000, start - 3600_000) == {}


def test_anyone_reads_the_live_figures_at_the_published_checkpoint(a: AppCity) -> None:
    import time

    rid = live(a, minutes=5)["request"]
    approve(a, rid)
    live(a, emergency=True, minutes=10)
    want = a.app.state.ledger.read(lambda lg: lg.store.next_index())
    deadline = time.monotonic() + 30
    while True:
        r = a.client.get("/public/live.json")  # no token, no session
        assert r.status_code == 200, r.text
        got = r.json()
        if got["checkpoint"] and got["checkpoint"]["size"] >= want:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    assert got["live"] == 2 and got["emergency"] == 1 and got["minutes_granted"] == 15
    assert list(got["months"].values())[0]["live"] == 2


def test_the_statistics_page_shows_live_and_emergency_grants(a: AppCity) -> None:
    import re
    import time

    rid = live(a, minutes=5)["request"]
    approve(a, rid)
    live(a, emergency=True, minutes=10)
    want = a.app.state.ledger.read(lambda lg: lg.store.next_index())
    deadline = time.monotonic() + 30
    while (a.client.get("/public/statistics.json").json().get("live") or {}).get("live") != 2:
        assert time.monotonic() < deadline, "the statistics never caught up"
        time.sleep(0.1)
    assert int(a.client.get("/log/checkpoint").text.split("\n")[1]) >= want
    page = a.client.get("/statistics").text
    assert "Live viewing" in page
    assert "2 live grants started, 1 of them emergency grants" in " ".join(page.split())
    row = re.search(r'<table id="live-by-month">.*?</table>', page, re.S)
    assert row is not None and '<td class="num">2</td><td class="num">1</td>' in row.group(0)
