"""A monitor following the log raises an alert when an emergency live grant is not reviewed
by its deadline, once, from the public log alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custodes.client.source import HttpSource
from custodes.fleet.model import parse_time
from custodes.monitor import Monitor
from custodes.tlog import Verifier
from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live, set_clock


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def _published(a: AppCity) -> None:
    """Wait until the log's published checkpoint covers every entry."""
    log = a.app.state.ledger
    want = log.read(lambda lg: lg.store.next_index())
    deadline = time.monotonic() + 30
    while int(a.client.get("/log/checkpoint").text.split("\n")[1]) < want:
        assert time.monotonic() < deadline, "the checkpoint did not catch up"
        time.sleep(0.05)


def test_an_emergency_grant_not_reviewed_in_time_raises_one_alert_naming_it(
    a: AppCity, tmp_path: Path
) -> None:
    vkey = (a.data / "keys" / "log.vkey").read_text().strip()
    source = HttpSource(str(a.client.base_url) + "/log", timeout=10)
    try:
        _follow(a, source, vkey, tmp_path)
    finally:
        source.close()


def _follow(a: AppCity, source: HttpSource, vkey: str, tmp_path: Path) -> None:
    mon = Monitor(
        source=source,
        verifier=Verifier.from_key(vkey),
        state_path=tmp_path / "monitor.json",
    )
    g = live(a, emergency=True, minutes=10)
    rid = g["request"]
    _published(a)
    assert not [x for x in mon.round() if x.kind == "emergency-review"]  # not due yet
    # Past the deadline (four hours by the default policy): the log moves on, no review.
    set_clock(a, parse_time(g["start"], "start") + 4 * 3600_000 + 1000)
    live(a, who="olga", minutes=5)
    _published(a)
    alerts = [x for x in mon.round() if x.kind == "emergency-review"]
    assert len(alerts) == 1
    assert alerts[0].evidence["request"] == rid
    assert rid in alerts[0].message and "not reviewed" in alerts[0].message
    # Raised once: the next round, with more entries, does not repeat it.
    live(a, who="olga", minutes=5)
    _published(a)
    assert not [x for x in mon.round() if x.kind == "emergency-review"]
    # Reviewed late: no new alert for it; a new overdue grant gets its own.
    approve(a, rid)
    _published(a)
    assert not [x for x in mon.round() if x.kind == "emergency-review"]
