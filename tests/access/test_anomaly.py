"""Each anomaly rule fires on a scripted pattern and stays quiet on a normal week."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.access.anomaly import (
    RULES,
    AnomalyConfig,
    DecisionFacts,
    Flag,
    RequestFacts,
    cell_of,
    evaluate,
)
from custodes.errors import FormatError
from tests.access import weeks
from tests.access.weeks import DAY, HOUR, MONDAY, Traffic, normal_traffic

CFG = AnomalyConfig()


def _run(t: Traffic, now_ms: int | None = None, cfg: AnomalyConfig = CFG) -> list[Flag]:
    return evaluate(t.requests, t.decisions, cfg, t.end_ms if now_ms is None else now_ms)


def _found(flags: list[Flag]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(f.rule, f.subject, f.requests) for f in flags]


# -- quiet -------------------------------------------------------------------------------


def test_a_normal_week_raises_no_flag_at_any_hour() -> None:
    t = normal_traffic(weeks=1)
    assert 250 <= len(t.requests) <= 400
    assert len({r.requester for r in t.requests}) == 20
    assert len({d.approver for d in t.decisions}) == 6
    for hour in range(6, 7 * 24 + 1, 6):
        assert _run(t, MONDAY + hour * HOUR) == [], f"flagged after {hour} hours"


def test_five_normal_weeks_raise_no_flag_on_any_day() -> None:
    t = normal_traffic(weeks=5)
    for day in range(1, 36):
        assert _run(t, MONDAY + day * DAY) == [], f"flagged on day {day}"


# -- each rule fires on its pattern, and nothing else fires --------------------------------


def test_volume_flags_the_investigator_who_bursts_against_their_own_past_and_peers() -> None:
    t = normal_traffic(weeks=5)
    who, ids = weeks.add_volume_burst(t)
    flags = _run(t)
    assert _found(flags) == [("volume", who, ids)]
    assert re.search(r"own weekly average of [\d.]+ over the previous 2[78] days", flags[0].reason)
    assert "median of 19 peers" in flags[0].reason


def test_volume_needs_history_before_it_judges() -> None:
    t = normal_traffic(weeks=1)
    weeks.add_volume_burst(t)
    # A week of log is not enough to know what is usual: not even peers count yet.
    assert _run(t, t.end_ms - DAY) == []


def test_volume_stays_quiet_for_a_busy_investigator_who_is_always_busy() -> None:
    t = normal_traffic(weeks=5)
    who = t.investigators[0]
    for week in range(5):
        for i in range(60):
            at = MONDAY + week * weeks.WEEK + (i % 5) * DAY + 9 * HOUR + i * 60_000
            t.request(who, at, t.case(), t.places[i % 12])
    # Far above peers, but no change against their own past: not this rule's finding.
    assert [f for f in _run(t) if f.rule == "volume"] == []


def test_repeated_place_flags_the_cell_requested_under_many_cases() -> None:
    t = normal_traffic(weeks=5)
    cell, ids = weeks.add_repeated_place(t)
    flags = _run(t)
    assert _found(flags) == [("repeated-place", cell, ids)]
    assert flags[0].subject.startswith("cell:")
    assert "under 5 different cases" in flags[0].reason


def test_repeated_place_counts_one_case_once() -> None:
    t = normal_traffic(weeks=1)
    home = (55.7301, 37.5903)
    case = t.case()
    for i in range(10):
        t.request(t.investigators[3], t.end_ms - (i + 1) * DAY + 10 * HOUR, case, home)
    assert _run(t) == []


def test_odd_hours_flags_the_investigator_asking_at_night() -> None:
    t = normal_traffic(weeks=1)
    who, ids = weeks.add_odd_hours(t)
    flags = _run(t)
    assert _found(flags) == [("odd-hours", who, ids)]
    assert "between 00:00 and 05:00 local time" in flags[0].reason


def test_odd_hours_follow_the_local_clock() -> None:
    t = normal_traffic(weeks=1)
    weeks.add_odd_hours(t)
    # Four hours ahead of UTC, the requests made at 01:00-03:00 UTC were made after 05:00.
    east = AnomalyConfig(utc_offset_min=240)
    assert _run(t, cfg=east) == []
    # A night that spans midnight: 22:00-05:00, two hours behind UTC.
    t = normal_traffic(weeks=1)
    who = t.investigators[9]
    late = [t.request(who, t.end_ms - i * DAY + 30 * 60_000, t.case(), t.places[i]) for i in (1, 2)]
    west = AnomalyConfig(
        utc_offset_min=-120, odd_from_hour=22, odd_to_hour=5, odd_min_requests=2, odd_min_share=0
    )
    flagged = [f for f in _run(t, cfg=west) if f.subject == who]
    assert [f.rule for f in flagged] == ["odd-hours"]
    assert set(flagged[0].requests) >= {r.request for r in late}


def test_sensitive_zone_flags_every_request_that_touches_one() -> None:
    t = normal_traffic(weeks=1)
    expected = weeks.add_sensitive(t)
    flags = _run(t)
    assert _found(flags) == [("sensitive-zone", who, ids) for who, ids in sorted(expected)]
    assert "a sensitive zone" in flags[0].reason + flags[1].reason
    assert "an assembly's place and time" in flags[0].reason + flags[1].reason


def test_dragnet_flags_too_many_cameras_too_long_a_window_and_crowds() -> None:
    t = normal_traffic(weeks=1)
    (who, a), (_, b), (_, c) = weeks.add_dragnet(t)
    flags = _run(t)
    assert _found([f for f in flags if f.rule == "dragnet"]) == [
        ("dragnet", who, a),
        ("dragnet", who, b),
        ("dragnet", who, c),
    ]
    reasons = [f.reason for f in flags if f.rule == "dragnet"]
    assert "80 cameras (more than 50)" in reasons[0]
    assert "a 72-hour window (more than 24)" in reasons[1]
    assert "8 cameras at an assembly's place and time" in reasons[2]
    # The crowd request also touches an assembly: that is the other rule's finding.
    assert _found([f for f in flags if f.rule != "dragnet"]) == [("sensitive-zone", who, c)]


def test_rubber_stamp_flags_the_approver_who_approves_everything_in_seconds() -> None:
    t = normal_traffic(weeks=1)
    stamper, ids = weeks.add_rubber_stamp(t)
    flags = _run(t)
    assert _found(flags) == [("rubber-stamp", stamper, ids)]
    assert "approved 30 of 30 requests" in flags[0].reason


def test_rubber_stamp_spares_a_fast_approver_who_also_says_no() -> None:
    t = normal_traffic(weeks=1)
    stamper, _ = weeks.add_rubber_stamp(t)
    mine = [d for d in t.decisions if d.approver == stamper]
    for d in mine[:5]:
        t.decisions.remove(d)
        t.decisions.append(replace(d, approved=False))
    assert _run(t) == []


def test_all_patterns_at_once_give_each_rule_its_own_finding() -> None:
    t = normal_traffic(weeks=5)
    weeks.add_volume_burst(t)
    weeks.add_repeated_place(t)
    weeks.add_odd_hours(t)
    weeks.add_sensitive(t)
    weeks.add_dragnet(t)
    weeks.add_rubber_stamp(t)
    flags = _run(t)
    assert {f.rule for f in flags} == set(RULES)
    assert [f.rule for f in flags] == sorted((f.rule for f in flags), key=RULES.index)


# -- what a flag says and how it is keyed --------------------------------------------------


def test_reasons_name_pseudonyms_and_cells_only() -> None:
    t = normal_traffic(weeks=5)
    weeks.add_volume_burst(t)
    weeks.add_repeated_place(t)
    weeks.add_odd_hours(t)
    weeks.add_sensitive(t)
    weeks.add_dragnet(t)
    weeks.add_rubber_stamp(t)
    people = set(t.investigators) | set(t.approvers)
    cases = {r.case_key for r in t.requests}
    for f in _run(t):
        assert f.reason.endswith(".") and f.reason.count(". ") == 0, f.reason
        assert set(re.findall(r"u-[0-9a-f]{16}", f.reason)) <= people
        assert not any(case in f.reason for case in cases)
        assert "cam-" not in f.reason
        # The only fine coordinates are those of a cell id.
        bare = re.sub(r"cell:-?[\d.]+,-?[\d.]+", "", f.reason)
        assert not re.search(r"\d+\.\d{2,}", bare), f.reason


def test_a_finding_keeps_its_key_while_it_lasts_and_a_new_episode_gets_a_new_one() -> None:
    t = normal_traffic(weeks=5)
    weeks.add_odd_hours(t)
    weeks.add_sensitive(t)
    weeks.add_rubber_stamp(t)
    first = _run(t)
    later = _run(t, t.end_ms + 3 * HOUR)
    assert [f.key for f in first] == [f.key for f in later]
    assert [f.id for f in first] == [f.id for f in later]
    assert len({f.key for f in first}) == len(first)
    assert all(re.fullmatch(r"f-[0-9a-f]{16}", f.id) for f in first)
    # The same night habit in a new month is a new episode: flagged again.
    who = next(f.subject for f in first if f.rule == "odd-hours")
    t.end_ms += 31 * DAY
    for i in range(6):
        t.request(who, t.end_ms - (i + 1) * DAY + 2 * HOUR, t.case(), t.places[600 + i])
    again = [f for f in _run(t) if f.rule == "odd-hours"]
    old = [f for f in first if f.rule == "odd-hours"]
    assert [f.subject for f in again] == [who]
    assert again[0].key != old[0].key


def test_facts_from_after_now_are_not_judged() -> None:
    t = normal_traffic(weeks=1)
    weeks.add_dragnet(t)
    assert _run(t, MONDAY) == []


# -- cells and settings ---------------------------------------------------------------------


def test_cells_are_about_100_metres() -> None:
    here = cell_of(55.75120, 37.61840)
    assert re.fullmatch(r"cell:55\.\d{5},37\.\d{5}", here)
    assert cell_of(55.75121, 37.61841) == here  # about a metre away
    north = {cell_of(55.7512 + k * 0.00025, 37.6184) for k in range(12)}  # 330 m of steps
    assert 3 <= len(north) <= 5
    east = {cell_of(55.7512, 37.6184 + k * 0.0004) for k in range(12)}  # 280 m of steps
    assert 2 <= len(east) <= 4
    assert cell_of(0, 180) == cell_of(0, -180)
    assert cell_of(55.7512, 37.6184, size_m=1000) != here


@pytest.mark.parametrize(
    ("lat", "lon", "size"),
    [(91.0, 0.0, 100), (0.0, 181.0, 100), (float("nan"), 0.0, 100), (0.0, 0.0, 0)],
)
def test_cells_refuse_impossible_places(lat: float, lon: float, size: float) -> None:
    with pytest.raises(FormatError):
        cell_of(lat, lon, size)


def test_settings_come_from_the_policy() -> None:
    cfg = AnomalyConfig.from_policy(
        {
            "odd_hours": {"from": 22, "to": 6, "utc_offset_min": 180},
            "anomaly": {"place_min_cases": 3, "dragnet_max_cameras": 20},
        }
    )
    assert (cfg.odd_from_hour, cfg.odd_to_hour, cfg.utc_offset_min) == (22, 6, 180)
    assert cfg.place_min_cases == 3 and cfg.dragnet_max_cameras == 20
    assert AnomalyConfig.from_policy({"odd_hours": [1, 4]}).odd_to_hour == 4
    assert AnomalyConfig.from_policy({}) == AnomalyConfig()


@pytest.mark.parametrize(
    "policy",
    [
        {"anomaly": {"no_such_rule": 1}},
        {"anomaly": {"place_min_cases": "four"}},
        {"anomaly": {"place_min_cases": 2.5}},
        {"anomaly": {"odd_min_share": 2}},
        {"anomaly": {"volume_min_requests": -1}},
        {"odd_hours": [0, 25]},
        {"odd_hours": "night"},
        {"odd_hours": {"from": 0, "until": 5}},
    ],
)
def test_bad_settings_are_refused_in_one_sentence(policy: dict[str, object]) -> None:
    with pytest.raises(FormatError) as err:
        AnomalyConfig.from_policy(policy)
    assert str(err.value).endswith(".") and str(err.value).count(". ") == 0


# -- determinism ---------------------------------------------------------------------------

_USERS = [f"u-{i:016x}" for i in range(6)]
_CELLS = [cell_of(55.70 + i * 0.002, 37.60) for i in range(4)]
_LOW = AnomalyConfig(
    volume_min_requests=2,
    volume_min_peers=1,
    volume_own_factor=1.5,
    volume_peer_factor=1.5,
    place_min_cases=2,
    odd_min_requests=1,
    odd_min_share=0.2,
    dragnet_max_cameras=3,
    dragnet_max_hours=5,
    dragnet_assembly_cameras=2,
    stamp_min_decisions=2,
    stamp_min_approval_rate=0.5,
    stamp_max_median_s=3600,
)


@st.composite
def _facts(draw: st.DrawFn) -> tuple[list[RequestFacts], list[DecisionFacts]]:
    n = draw(st.integers(0, 30))
    reqs = []
    for i in range(n):
        created = MONDAY + draw(st.integers(0, 40 * DAY))
        start = created - draw(st.integers(HOUR, 3 * DAY))
        reqs.append(
            RequestFacts(
                request=f"r-{i:04d}",
                requester=draw(st.sampled_from(_USERS)),
                created_ms=created,
                purpose="investigation",
                case_key=draw(st.sampled_from("abcdef")),
                cameras=tuple(f"cam-{k}" for k in range(draw(st.integers(1, 5)))),
                cells=tuple(draw(st.sets(st.sampled_from(_CELLS), min_size=1, max_size=2))),
                from_ms=start,
                to_ms=start + draw(st.integers(1, 10)) * HOUR,
                sensitive=draw(st.booleans()),
                assembly=draw(st.booleans()),
            )
        )
    decs = []
    for r in reqs:
        for approver in draw(st.sets(st.sampled_from(_USERS), max_size=2)):
            wait = draw(st.integers(1_000, 2 * HOUR))
            decs.append(
                DecisionFacts(
                    r.request, approver, r.created_ms, r.created_ms + wait, draw(st.booleans())
                )
            )
    return reqs, decs


@settings(max_examples=40, deadline=None)
@given(facts=_facts(), seed=st.randoms(use_true_random=False), day=st.integers(0, 45))
def test_evaluate_is_deterministic_and_ignores_input_order(
    facts: tuple[list[RequestFacts], list[DecisionFacts]], seed: random.Random, day: int
) -> None:
    reqs, decs = facts
    now = MONDAY + day * DAY
    first = evaluate(reqs, decs, _LOW, now)
    assert evaluate(reqs, decs, _LOW, now) == first
    shuffled_r, shuffled_d = list(reqs), list(decs)
    seed.shuffle(shuffled_r)
    seed.shuffle(shuffled_d)
    assert evaluate(iter(shuffled_r), iter(shuffled_d), _LOW, now) == first
    assert len({f.key for f in first}) == len(first)
    assert all(f.rule in RULES and f.requests == tuple(sorted(f.requests)) for f in first)
