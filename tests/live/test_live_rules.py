"""The public live rules, from the log alone: a real gateway's log passes them, and each
forged entry breaks the rule that names it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from custodes.access.rules_live import check_log_live
from custodes.fleet.model import format_time, now_ms, parse_time
from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live, record_after, set_clock


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with app_city(tmp_path_factory.mktemp("rules")) as a:
        yield _history(a)


def _entries(a: AppCity) -> list[dict[str, Any]]:
    led = a.app.state.ledger
    raw = led.read(lambda lg: list(lg.store.read_entries(0, lg.store.next_index())))
    return [json.loads(e) for e in raw]


def _history(a: AppCity) -> dict[str, Any]:
    t0 = now_ms()
    rid = live(a)["request"]
    approve(a, rid)
    g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
    (name,) = record_after(a, parse_time(g["start"], "start") + 100, 1)
    assert a.client.get(f"/access/live/{rid}/{name}.ts", headers=a.auth("ivan")).status_code == 200
    gone = live(a)["request"]
    approve(a, gone)
    r = a.client.post(f"/access/live/{gone}/revoke", json={"reason": "Done."},
                      headers=a.auth("boris"))  # fmt: skip
    assert r.status_code == 200
    emergency = live(a, emergency=True, minutes=10)["request"]
    set_clock(a, t0 + 60_000)
    return {"entries": _entries(a), "live": rid, "revoked": gone, "emergency": emergency,
            "t0": t0}  # fmt: skip


def _of(entries: list[dict[str, Any]], kind: str, rid: str) -> dict[str, Any]:
    return next(e for e in entries if e["type"] == kind and e.get("request") == rid)


def _check(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    rep = check_log_live(list(enumerate(entries)))
    return [(v.rule, v.request) for v in rep.violations]


def test_the_gateways_own_log_passes_every_live_rule(log: dict[str, Any]) -> None:
    rep = check_log_live(list(enumerate(log["entries"])))
    assert rep.violations == [], [v.to_json() for v in rep.violations]
    for rule in ("live-minutes", "emergency-reviewed", "viewed-live-grant", "viewed-in-window",
                 "revoker-role", "enough-approvals"):  # fmt: skip
        assert rep.passed[rule] >= 1, rule


def test_a_view_outside_the_window_after_revocation_or_of_no_live_grant_breaks_a_rule(
    log: dict[str, Any],
) -> None:
    entries = log["entries"]
    seen = _of(entries, "access.viewed", log["live"])
    approved = _of(entries, "access.approved", log["live"])
    late = {**seen, "time": format_time(parse_time(approved["time"], "t") + 5 * 60_000 + 1)}
    assert ("viewed-in-window", log["live"]) in _check([*entries, late])
    early = {**seen, "request": log["revoked"]}
    assert ("viewed-in-window", log["revoked"]) in _check([*entries, early])
    plain = next(e for e in entries if e["type"] == "user.added")  # any non-request
    nobody = {**seen, "request": "r-0000000000000000"}
    assert ("viewed-live-grant", "r-0000000000000000") in _check([*entries, nobody])
    assert plain  # the log has its users


def test_a_grant_over_the_policys_minutes_or_an_emergency_while_one_is_overdue_breaks_a_rule(
    log: dict[str, Any],
) -> None:
    entries = log["entries"]
    req = _of(entries, "access.requested", log["live"])
    long = {**req, "request": "r-1111111111111111", "live": {"minutes": 61, "emergency": False}}
    assert ("live-minutes", "r-1111111111111111") in _check([*entries, long])
    first = _of(entries, "access.requested", log["emergency"])
    due = parse_time(first["time"], "t") + 4 * 3600_000
    again = {**first, "request": "r-2222222222222222", "time": format_time(due + 1000)}
    assert ("emergency-reviewed", "r-2222222222222222") in _check([*entries, again])
    before = {**again, "time": format_time(due - 1000)}
    assert _check([*entries, before]) == []  # not yet overdue


def test_a_revocation_by_the_requester_breaks_revoker_role(log: dict[str, Any]) -> None:
    entries = log["entries"]
    rev = _of(entries, "access.revoked", log["revoked"])
    req = _of(entries, "access.requested", log["revoked"])
    forged = {**rev, "request": log["live"], "by": req["requester"]}
    assert ("revoker-role", log["live"]) in _check([*entries, forged])


def test_the_custodians_copy_of_the_rules_refuses_a_view_outside_its_grant(
    log: dict[str, Any],
) -> None:
    from custodes.access.public_rules import check_log
    from custodes.custody.daemon.service import public_rules_violations

    entries = log["entries"]
    seen = _of(entries, "access.viewed", log["live"])
    after = {**seen, "request": log["revoked"]}  # the grant was revoked before this
    assert check_log(list(enumerate(entries))).violations == []  # the checker runs them now
    found = public_rules_violations(list(enumerate([*entries, after])))
    assert list(found) == [len(entries)]
    assert "viewed-in-window" in found[len(entries)]
