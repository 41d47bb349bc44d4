"""Insider patterns driven through the real gateway end as ``anomaly.flagged`` entries in the log.

The gateway (:class:`custodes.access.service.AccessService`) runs over a real
log, fleet index and identity store (``gateway_kit``); the clock is simulated
through ``now_ms``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from custodes.access.anomaly import cell_of
from custodes.errors import FormatError
from tests.access import gateway_kit
from tests.access.gateway_kit import City

city = gateway_kit.city

SECOND = 1000
HOUR = 3_600_000
DAY = 24 * HOUR


def _flagged(c: City) -> list[dict[str, Any]]:
    return [e for e in c.entries() if e["type"] == "anomaly.flagged"]


def test_a_night_time_stalker_and_a_rubber_stamp_are_flagged_once(city: City) -> None:
    c = city
    ivan, olga, anna = c.users["ivan"], c.users["olga"], c.users["anna"]
    midnight = (c.end_ms // DAY + 2) * DAY
    # (1) ivan asks for the same doorway at 02:00 on four nights, under four cases.
    night = []
    for k in range(4):
        at = midnight + k * DAY + 2 * HOUR
        rid = c.access.request(ivan, c.inp(case=f"CASE-2026-000{k + 1}"), now_ms=at)
        c.access.approve(anna, rid, now_ms=at + 5 * SECOND)
        night.append(rid)
    # (2) olga works one case by day; anna waves everything through in seconds.
    day = []
    for i in range(16):
        at = midnight + 4 * DAY + 10 * HOUR + i * 10 * 60 * SECOND
        rid = c.access.request(olga, c.inp(case="CASE-2026-0100"), now_ms=at)
        c.access.approve(anna, rid, now_ms=at + 4 * SECOND)
        day.append(rid)
    now = midnight + 5 * DAY
    new = c.access.run_anomaly_rules(now_ms=now)

    found = {e["rule"]: e for e in _flagged(c)}
    assert sorted(found) == ["odd-hours", "repeated-place", "rubber-stamp"]
    assert sorted(new) == sorted(str(e["flag"]) for e in found.values())
    assert found["odd-hours"]["subject"] == ivan.pseudonym
    assert found["odd-hours"]["requests"] == sorted(night)
    # The place is not published at all, neither as coordinates nor as an id: it may be
    # someone's home, and an id would be tied to it by the requests' later disclosure.
    cell = cell_of(55.7600, 37.6100)
    assert found["repeated-place"]["subject"] == "place"
    assert str(found["repeated-place"]["reason"]).startswith("One place was requested")
    assert cell.removeprefix("cell:").split(",")[0] not in json.dumps(found)
    assert found["repeated-place"]["requests"] == sorted(night + day)
    assert "5 different cases" in str(found["repeated-place"]["reason"])
    assert found["rubber-stamp"]["subject"] == anna.pseudonym
    assert found["rubber-stamp"]["requests"] == sorted(night + day)
    # Pseudonyms only: no account name, no case reference.
    text = json.dumps(list(found.values()))
    for secret in ("ivan", "olga", "anna", "CASE-"):
        assert secret not in text

    # The same findings are not flagged again, now or a few hours on.
    assert c.access.run_anomaly_rules(now_ms=now) == []
    assert c.access.run_anomaly_rules(now_ms=now + 3 * HOUR) == []
    assert len(_flagged(c)) == 3
    queue = c.access.flags(c.users["audrey"])
    assert sorted(f["flag"] for f in queue) == sorted(new)


def test_dragnet_thresholds_come_from_the_logged_policy(city: City) -> None:
    c = city
    with pytest.raises(FormatError):
        c.access.set_policy(c.users["adam"], {"anomaly": {"dragnet_cameras": 2}})
    c.access.set_policy(c.users["adam"], {"anomaly": {"dragnet_max_cameras": 2}})
    small = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    wide = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2", "cam-s1")))
    assert len(c.access.run_anomaly_rules()) == 1
    [entry] = _flagged(c)
    assert entry["rule"] == "dragnet" and entry["requests"] == [wide] != [small]
    assert entry["subject"] == c.users["ivan"].pseudonym
    assert "3 cameras (more than 2)" in str(entry["reason"])
