"""The public rules over schema v2 entries, mixed logs, and logs shuffled or garbled.

These logs are built by hand (no gateway), so that each test can place an
entry exactly where the rule under test needs it.  v2 adds ``user.changed``,
the request's camera ``groups``, the expiry's ``reason``, and the release's
``requested``, ``approvals`` and ``policy``; v1 entries stay valid.

Each rule of :mod:`custodes.access.public_rules` was broken on purpose, one at a
time, in a copy of the module put first on ``PYTHONPATH``; for every one, a
test here or in ``test_public_rules.py`` failed.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.access.public_rules import RULES, Report, Violation, check_log
from custodes.fleet.model import format_time

T0 = 1_780_000_000_000
DAY = 86_400_000
REQUESTER, ANNA, BORIS, JUDE, NORTH_ONLY, GROUP_ONLY = (
    "u-inv", "u-anna", "u-boris", "u-jude", "u-north", "u-group",
)  # fmt: skip


def at(ms: int) -> str:
    return format_time(T0 + ms)


def users() -> list[dict[str, Any]]:
    def add(u: str, role: str, scope: Any) -> dict[str, Any]:
        return {"type": "user.added", "v": 1, "time": at(0), "user": u, "role": role,
                "scope": scope}  # fmt: skip

    return [
        add(REQUESTER, "investigator", "all"),
        add(ANNA, "approver", "all"),
        add(BORIS, "approver", "all"),
        add(JUDE, "judge", "all"),
        add(NORTH_ONLY, "approver", {"districts": ["north"], "groups": []}),
        add(GROUP_ONLY, "approver", {"districts": [], "groups": ["metro"]}),
        {"type": "policy.changed", "v": 1, "time": at(1), "version": 1, "sha256": "00",
         "policy": {}},
    ]  # fmt: skip


def request(rid: str, t: int = 10, v: int = 1, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "type": "access.requested", "v": v, "time": at(t), "request": rid, "commitment": "00",
        "requester": REQUESTER, "purpose": "investigation", "cameras": 1,
        "districts": ["north"], "window_s": 60, "sensitive": False,
        "needs": {"approvals": 1, "judge": False}, "policy": 1,
    }  # fmt: skip
    if v >= 2:
        e["groups"] = []
    e.update(kw)
    return e


def approve(
    rid: str, who: str, t: int = 20, ttl: int = DAY, role: str = "approver"
) -> dict[str, Any]:
    return {"type": "access.approved", "v": 1, "time": at(t), "request": rid, "approver": who,
            "role": role, "expires": at(t + ttl), "unredacted": False, "complete": True,
            "reason": "ok"}  # fmt: skip


def release(rid: str, t: int = 30, **v2: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "type": "access.released", "v": 2 if v2 else 1, "time": at(t), "request": rid,
        "by": REQUESTER, "segments": [], "redaction": {"method": "blur"},
        "output": {"sha256": "00", "bytes": 1},
    }  # fmt: skip
    e.update(v2)
    return e


def changed(who: str, t: int, **kw: Any) -> dict[str, Any]:
    return {"type": "user.changed", "v": 2, "time": at(t), "user": who, **kw}


def only(rep: Report, rule: str) -> Violation:
    assert {v.rule for v in rep.violations} == {rule}, [(v.rule, v.reason) for v in rep.violations]
    return rep.violations[0]


def idx(v: Violation) -> list[int]:
    return [i for i, _ in v.evidence]


def honest() -> list[dict[str, Any]]:
    log = users()
    log += [request("r1"), approve("r1", ANNA), release("r1")]
    log += [request("r2", 40), {"type": "access.denied", "v": 1, "time": at(41), "request": "r2",
            "approver": BORIS, "role": "approver", "reason": "no"}]  # fmt: skip
    log += [request("r3", 50), approve("r3", BORIS, 51, ttl=10),
            {"type": "access.expired", "v": 2, "time": at(70), "request": "r3",
             "reason": "approval lapsed unused"}]  # fmt: skip
    return log


def test_the_hand_built_honest_log_passes() -> None:
    rep = check_log(honest())
    assert rep.ok and not rep.cannot_check
    assert (rep.releases, rep.denials, rep.expiries) == (1, 1, 1)


# -- user.changed -------------------------------------------------------------------------


def test_a_scope_narrowed_before_the_approval_puts_it_out_of_scope() -> None:
    log = users()
    log += [changed(ANNA, 5, role="approver", scope={"districts": ["south"], "groups": []})]
    log += [request("r1"), approve("r1", ANNA), release("r1")]
    v = [x for x in check_log(log).violations if x.rule == "approver-scope"][0]
    assert idx(v) == [8, 9, 7, 10]


def test_a_role_changed_before_the_approval_is_not_a_deciding_role() -> None:
    log = users() + [changed(ANNA, 5, role="auditor", scope="all")]
    log += [request("r1"), approve("r1", ANNA), release("r1")]
    assert idx([x for x in check_log(log).violations if x.rule == "approver-role"][0]) == [
        8, 9, 7, 10,
    ]  # fmt: skip


def test_a_scope_widened_before_the_approval_brings_it_in_scope() -> None:
    log = users() + [changed(NORTH_ONLY, 5, role="approver", scope="all")]
    log += [request("r1", districts=["south"]), approve("r1", NORTH_ONLY), release("r1")]
    assert check_log(log).ok


def test_a_change_after_the_approval_does_not_reach_back() -> None:
    log = users() + [request("r1"), approve("r1", ANNA)]
    log += [changed(ANNA, 25, role="auditor", scope="all"), release("r1")]
    assert check_log(log).ok


# -- v2 requests: camera groups ---------------------------------------------------------------


def test_a_group_scoped_approver_and_the_request_groups() -> None:
    out = users() + [request("r1", v=2, districts=["south"], groups=["river"]),
                     approve("r1", GROUP_ONLY), release("r1")]  # fmt: skip
    rep = check_log(out)
    assert {v.rule for v in rep.violations} == {"approver-scope", "enough-approvals"}
    assert rep.violations[0].index == 9
    unsure = users() + [request("r1", v=2, districts=["south"], groups=["metro"]),
                        approve("r1", GROUP_ONLY), release("r1")]  # fmt: skip
    rep = check_log(unsure)
    assert rep.ok and [v.rule for v in rep.cannot_check] == ["approver-scope"]
    v1 = users() + [request("r1", districts=["south"]), approve("r1", GROUP_ONLY), release("r1")]
    rep = check_log(v1)  # v1 logs no groups: it cannot be settled either way
    assert rep.ok and [v.rule for v in rep.cannot_check] == ["approver-scope"]


def test_v2_places_settle_a_group_scope_exactly() -> None:
    def log(places: list[Any]) -> Report:
        d = sorted({p[0] for p in places if p[0]})
        g = sorted({x for p in places for x in p[1]})
        req = request("r1", v=2, districts=d, groups=g, places=places)
        return check_log(users() + [req, approve("r1", GROUP_ONLY), release("r1")])

    rep = log([["south", ["metro"]], ["north", ["metro"]]])
    assert rep.ok and not rep.cannot_check and rep.passed["approver-scope"] == 1
    rep = log([["south", ["metro"]], ["south", []]])  # one camera outside every metro group
    assert "approver-scope" in {v.rule for v in rep.violations}
    out = users() + [request("r1", v=2, districts=["north", "south"], groups=[],
                             places=[["north", []], ["south", []]]),
                     approve("r1", NORTH_ONLY), release("r1")]  # fmt: skip
    assert "approver-scope" in {v.rule for v in check_log(out).violations}


# -- v2 releases: the link to the request, its approvals and the policy ------------------------


def test_a_v2_release_that_links_correctly_passes() -> None:
    log = users() + [request("r1"), approve("r1", ANNA)]
    log.append(release("r1", requested=7, approvals=[8], policy=1))
    rep = check_log(log)
    assert rep.ok and not rep.cannot_check and rep.passed["release-link"] == 1
    assert rep.passed["policy-in-force"] == 1


def test_a_v2_release_naming_another_request_or_approval() -> None:
    log = users() + [request("r1"), approve("r1", ANNA), request("r2", 21), approve("r2", BORIS)]
    log.append(release("r1", requested=9, approvals=[8], policy=1))
    assert only(check_log(log), "release-link").index == 11
    log[-1] = release("r1", requested=7, approvals=[10], policy=1)
    rep = check_log(log)
    v = [x for x in rep.violations if x.rule == "release-link"][0]
    assert idx(v) == [7, 10, 11] and "no approval of this request" in v.reason
    assert "approvals-logged" in {x.rule for x in rep.violations}
    log[-1] = release("r1", requested=7, approvals=[3], policy=1)  # not an approval at all
    assert "release-link" in {x.rule for x in check_log(log).violations}


def test_a_v2_release_is_judged_by_the_approvals_it_names() -> None:
    log = users() + [request("r1"), approve("r1", BORIS, 11, ttl=5), approve("r1", ANNA)]
    # v1: every approval logged counts, and one has lapsed
    assert only(check_log([*log, release("r1")]), "approvals-unexpired").index == 10
    # v2 names the one in date: it passes
    assert check_log([*log, release("r1", requested=7, approvals=[9], policy=1)]).ok
    # v2 naming the lapsed one: the evidence is that approval
    v = only(check_log([*log, release("r1", requested=7, approvals=[8], policy=1)]),
             "approvals-unexpired")  # fmt: skip
    assert idx(v) == [7, 8, 10]


def test_a_v2_release_under_a_policy_not_in_force() -> None:
    log = users() + [request("r1"), approve("r1", ANNA)]
    log.append({"type": "policy.changed", "v": 1, "time": at(25), "version": 2, "sha256": "00",
                "policy": {}})  # fmt: skip
    v = only(check_log([*log, release("r1", requested=7, approvals=[8], policy=1)]),
             "policy-in-force")  # fmt: skip
    assert idx(v) == [7, 9, 10]
    assert check_log([*log, release("r1", requested=7, approvals=[8], policy=2)]).ok


def test_a_request_under_a_policy_never_logged() -> None:
    log = users() + [request("r1", policy=7), approve("r1", ANNA), release("r1")]
    assert only(check_log(log), "policy-logged").index == 9


# -- shuffled, duplicated and garbled logs ----------------------------------------------------

FORGERIES: dict[str, list[dict[str, Any]]] = {
    "no approvals": [request("rx", 80), release("rx", 90)],
    "second release": [
        request("rx", 80),
        approve("rx", ANNA, 81),
        release("rx", 90),
        release("rx", 91),
    ],  # fmt: skip
    "self approval": [request("rx", 80), approve("rx", REQUESTER, 81), release("rx", 90)],
    "expired approval": [request("rx", 80), approve("rx", ANNA, 81, ttl=1), release("rx", 90)],
    "out of scope": [
        request("rx", 80, districts=["south"]),
        approve("rx", NORTH_ONLY, 81),
        release("rx", 90),
    ],  # fmt: skip
    "judge missing": [
        request("rx", 80, sensitive=True, needs={"approvals": 1, "judge": True}),
        approve("rx", ANNA, 81),
        release("rx", 90),
    ],  # fmt: skip
    "unknown approver": [request("rx", 80), approve("rx", "u-nobody", 81), release("rx", 90)],
}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(FORGERIES)),
    data=st.data(),
)
def test_a_forgery_shuffled_or_duplicated_never_passes(kind: str, data: st.DataObject) -> None:
    """Whatever order the entries come in, and however often, the forged release is caught."""
    log = honest() + FORGERIES[kind]
    dups = data.draw(st.lists(st.sampled_from(range(len(log))), max_size=6))
    mixed = data.draw(st.permutations([*log, *(log[i] for i in dups)]))
    rep = check_log(mixed)
    assert rep.violations or rep.cannot_check
    bad = {v.request for v in rep.violations + rep.cannot_check}
    assert "rx" in bad


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),  # fmt: skip
    max_leaves=8,
)
_kinds = st.sampled_from(["access.requested", "access.approved", "access.denied",
                          "access.expired", "access.released", "access.disclosed", "user.added",
                          "user.changed", "user.revoked", "policy.changed", "camera.registered",
                          "camera.changed", "segments.batch", "other"])  # fmt: skip
_field = st.sampled_from(["request", "approver", "user", "role", "scope", "time", "expires",
                          "requester", "needs", "policy", "districts", "groups", "approvals",
                          "requested", "version", "camera", "changes", "cameras", "from", "to",
                          "segments"])  # fmt: skip


@st.composite
def _garbled(draw: st.DrawFn) -> dict[str, Any]:
    """A real entry with some fields replaced by arbitrary JSON, or a random one."""
    base = dict(draw(st.sampled_from(honest() + [e for f in FORGERIES.values() for e in f])))
    if draw(st.booleans()):
        base["type"] = draw(_kinds)
    for name in draw(st.lists(_field, max_size=4)):
        if draw(st.booleans()):
            base[name] = draw(_json)
        else:
            base.pop(name, None)
    return base


@settings(max_examples=300, deadline=None)
@given(st.lists(_garbled() | _json, max_size=30))
def test_garbled_entries_never_crash_and_every_release_is_judged(log: list[Any]) -> None:
    log = json.loads(json.dumps(log))
    rep = check_log(log)
    assert rep.entries == len(log)
    judged = rep.checked["requested-first"] + sum(
        1
        for v in rep.cannot_check
        if v.rule == "well-formed" and v.evidence[-1][1].get("type") == "access.released"
    )
    assert judged >= rep.releases
    for v in rep.violations + rep.cannot_check:
        assert v.rule in RULES and v.evidence and isinstance(v.index, int)
        json.dumps(v.to_json())
    assert sum(rep.passed.values()) <= sum(rep.checked.values())


# -- disclosures ------------------------------------------------------------------------------

ZONE = {"name": "Clinic 7", "kind": "clinic", "lat": 55.76, "lon": 37.61, "radius_m": 50}


def camera(cam: str, lat: float, lon: float, t: int = 2) -> dict[str, Any]:
    return {"type": "camera.registered", "v": 1, "time": at(t),
            "camera": {"id": cam, "lat": lat, "lon": lon, "district": "north"}}  # fmt: skip


def disclosed(rid: str, cams: list[str], t: int = 100) -> dict[str, Any]:
    return {"type": "access.disclosed", "v": 1, "time": at(t), "request": rid, "cameras": cams,
            "from": at(-60_000), "to": at(-1_000)}  # fmt: skip


def test_a_disclosure_shows_a_sensitive_place_released_without_a_judge() -> None:
    log = users()
    log.append({"type": "policy.changed", "v": 1, "time": at(2), "version": 2, "sha256": "00",
                "policy": {"sensitive_zones": [ZONE]}})  # fmt: skip
    log.append(camera("cam-a", 55.76, 37.61, t=-100_000))
    log += [request("r1", policy=2), approve("r1", ANNA), release("r1"), disclosed("r1", ["cam-a"])]
    v = only(check_log(log), "disclosed-judge")
    assert idx(v) == [9, 10, 12]
    judged = log[:10] + [
        approve("r1", JUDE, role="judge"),
        release("r1"),
        disclosed("r1", ["cam-a"]),
    ]
    assert check_log(judged).ok
    # the camera was elsewhere when it recorded: moved into the zone only afterwards
    moved = log[:8] + [camera("cam-a", 55.0, 37.0, t=-100_000)] + log[9:]
    moved.insert(9, {"type": "camera.changed", "v": 1, "time": at(5), "camera": "cam-a",
                     "changes": {"lat": 55.76, "lon": 37.61}})  # fmt: skip
    assert check_log(moved).ok


def test_a_disclosure_shows_segments_released_outside_its_cameras() -> None:
    seg = {"camera": "cam-b", "start": at(-30_000), "duration": 10, "sha256": "aa" * 32}
    log = users() + [
        {"type": "segments.batch", "v": 3, "time": at(2), "segments": [seg]},
        request("r1"), approve("r1", ANNA),
    ]  # fmt: skip
    rel = release("r1")
    rel["segments"] = ["aa" * 32]
    log += [rel, disclosed("r1", ["cam-a"])]
    v = only(check_log(log), "disclosed-segments")
    assert idx(v) == [8, 10, 11]
    log[-1] = disclosed("r1", ["cam-b"])
    rep = check_log(log)
    assert rep.ok and rep.passed["disclosed-segments"] == 1
