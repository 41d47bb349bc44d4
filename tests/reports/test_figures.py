"""Each published figure, recomputed by hand from what the log says."""

from __future__ import annotations

from pathlib import Path

import pytest

from custodes.access import entries as A
from custodes.errors import UsageError
from custodes.fleet import entries as F
from custodes.fleet.model import Camera
from custodes.ledger.instance import Instance
from custodes.reports.figures import (
    compute,
    coverage,
    parse_period,
    place_categories,
    who_looked,
)
from custodes.reports.replay import PublicState, entries_from_log, replay
from tests.reports.conftest import build_log, t

NOV = parse_period("2026-11")


@pytest.fixture(scope="module")
def city(city_log: Instance) -> PublicState:
    reader = city_log.reader()
    try:
        return replay(entries_from_log(reader))
    finally:
        reader.store.close()


def test_periods_are_calendar_months_and_years_in_utc() -> None:
    assert NOV == (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"))
    assert parse_period("2026-12")[1] == t("2027-01-01T00:00:00Z")
    assert parse_period("2026") == (t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
    for bad in ("2026-13", "2026-1", "26", "2026-11-01", "november"):
        with pytest.raises(UsageError):
            parse_period(bad)


def test_the_month_of_november_in_figures(city: PublicState) -> None:
    fig = compute(city, *NOV)
    expected = {
        # Deployment at the end of November: N-2 retired, S-3 added.
        "deployment.cameras": 4,
        "deployment.added": 1,
        "deployment.retired": 1,
        "deployment.cameras.by_district.north": 1,
        "deployment.cameras.by_district.south": 3,
        "deployment.capability.face_recognition_capable": 2,
        "deployment.per_km2.south": 0.75,
        "deployment.per_1000.north": 0.05,
        "deployment.places.worship.watched": 1,
        "deployment.places.school.watched": 0,
        # Use: r1..r4 (r0 is October's, r5 December's).
        "access.requests": 4,
        "access.requests.by_purpose.investigation": 2,
        "access.requests.by_district.south": 3,
        "access.requests.outcome.released": 2,
        "access.requests.outcome.denied": 1,
        "access.requests.outcome.expired": 1,
        "access.approvals": 3,
        "access.denials": 1,
        "access.expired": 1,
        "access.requesters": 2,
        "access.approval_hours.median": 0.5,
        "sharing.releases.redacted": 1,
        "sharing.releases.unredacted": 1,
        "sharing.bytes": 2000,
        "flags.raised.by_rule.odd-hours": 1,
        "flags.resolved": 1,
        "flags.open_at_end": 1,
        # S-1 silent 8 h; S-2 from 9 Nov 22:00 to the period's end (no camera.back).
        "outages.silent_hours": 514.0,
        "outages.correlated.undeclared": 0,
        "outages.declared_late": 1,
        "segments.recorded": 120,
        "retention.actions": 0,
        "policy.version_at_end": 2,
        "policy.in_force.1": 1,
        "policy.in_force.2": 1,
        "violations.self_approval": 0,
    }
    assert {k: fig.get(k) for k in expected} == expected
    assert list(fig) == sorted(fig)
    october = compute(city, *parse_period("2026-10"))
    assert october["access.requests"] == 1 and "policy.in_force.2" not in october
    assert october["deployment.cameras"] == 4 and october["segments.recorded"] == 80


def test_breaches_of_the_two_person_rule_are_counted(tmp_path: Path) -> None:
    me, other = "u-" + "a" * 16, "u-" + "b" * 16
    when = t("2026-11-02T10:00:00Z")

    def req(rid: str) -> dict[str, object]:
        return A.access_requested(rid, "00" * 32, me, "investigation", cameras=1,
                                  districts=["north"], window_s=60, sensitive=False,
                                  approvals=1, judge=False, policy_version=1,
                                  now_ms=when)  # fmt: skip

    def approve(rid: str, who: str, expires: int) -> dict[str, object]:
        return A.access_approved(rid, who, "approver", expires_ms=expires, unredacted=False,
                                 complete=True, reason="ok", now_ms=when + 1000)  # fmt: skip

    def release(rid: str, at: int) -> dict[str, object]:
        return A.access_released(rid, me, [], {"method": "none"}, "00" * 32, 1, at)

    entries = [
        req("self"), approve("self", me, when + 86_400_000), release("self", when + 5000),
        req("none"), release("none", when + 5000),
        req("late"), approve("late", other, when + 2000), release("late", when + 7_200_000),
        F.correlated(["C-1", "C-2"], 55.7, 37.6, 200.0, when, when + 60_000),
        {"type": "retention.deleted", "v": 1, "time": "2026-11-03T00:00:00Z", "segments": 4},
    ]  # fmt: skip
    inst = build_log(tmp_path / "data", entries)
    with inst.open_log() as log:
        fig = compute(replay(entries_from_log(log)), *NOV)
    assert fig["violations.self_approval"] == 1
    assert fig["violations.release_without_approval"] == 1
    assert fig["violations.release_after_expiry"] == 1
    assert fig["outages.correlated.undeclared"] == 1
    assert fig["retention.actions"] == 1 and fig["retention.actions.by_type.deleted"] == 1


def test_coverage_and_places_per_district_and_category(city: PublicState) -> None:
    rows = {r["district"]: r for r in coverage(city)}
    assert rows["north"] == {
        "district": "north", "name": "North", "cameras": 1, "area_km2": 2,
        "per_km2": 0.5, "population": 20000, "per_1000": 0.05,
    }  # fmt: skip
    assert rows["south"]["cameras"] == 3
    cats = {r["category"]: r for r in place_categories(city)}
    assert cats["protest-site"] == {
        "category": "protest-site", "places": 1, "watched": 1, "share": 1.0, "cameras": 1,
    }  # fmt: skip
    assert cats["school"]["watched"] == 0
    assert {r["category"]: r["watched"] for r in place_categories(city, radius_m=10)} == {
        "protest-site": 0, "school": 0, "worship": 1,
    }  # fmt: skip


def test_a_camera_without_a_district_is_placed_by_the_district_polygons(city: PublicState) -> None:
    state = PublicState(districts=city.districts)
    state.apply(
        0, F.camera_registered(Camera(id="X", lat=55.81, lon=37.61), 0, t("2026-11-01T00:00:00Z"))
    )
    state.apply(
        1, F.camera_registered(Camera(id="Y", lat=10.0, lon=10.0), 1, t("2026-11-01T00:00:00Z"))
    )
    rows = {r["district"]: r["cameras"] for r in coverage(state)}
    assert rows == {"north": 1, "south": 0, "outside": 1}


def test_who_looked_answers_from_disclosures_and_hides_small_counts(city: PublicState) -> None:
    args = (55.801, 37.601, 200, t("2026-11-01T00:00:00Z"), t("2026-11-02T00:00:00Z"))
    now = t("2026-11-27T00:00:00Z")
    open_answer = who_looked(city, *args, now, 86_400, 1)
    assert open_answer["cameras"] == ["N-1"] and open_answer["requests"] == 1
    assert open_answer["by_purpose"] == {"investigation": 1} and open_answer["complete"] is True
    hidden = who_looked(city, *args, now, 86_400, 3)
    assert hidden["requests"] is None and hidden["shown"] == "fewer than 3"
    assert hidden["by_purpose"] == {}
    elsewhere = who_looked(city, 55.75, 37.70, 100, *args[3:], now, 86_400, 3)
    assert elsewhere["requests"] == 0 and elsewhere["shown"] == "0"
    recent = who_looked(city, *args[:3], args[3], t("2026-11-27T00:00:00Z"), now, 86_400, 1)
    assert recent["complete"] is False
    with pytest.raises(UsageError):
        who_looked(city, *args[:3], args[4], args[3], now, 0, 1)
