"""The public rules, checked from the log alone (issue 11, item 4).

A real gateway writes the honest entries; the forged ones are appended to its
log raw, the way an insider with a shell would, bypassing every check the
gateway makes.  Each forgery must be named by its rule, with the indexes of
the entries that prove it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from custodes.access import entries as E
from custodes.access.public_rules import Report, Violation, check_log
from custodes.fleet.model import format_time, now_ms
from custodes.records.canonical import canonicalize
from tests.access.gateway_kit import City, city  # noqa: F401  (the fixture)

ZONE = {"name": "Clinic 7", "kind": "clinic", "lat": 55.7600, "lon": 37.6100, "radius_m": 50}
DAY_MS = 86_400_000


def forge(c: City, obj: dict[str, Any]) -> int:
    """Append ``obj`` to the log raw, as an insider would; its index."""
    first, count = c.ledger.write(lambda log: log.append([canonicalize(obj)]))
    assert count == 1
    return int(first)


def pseud(c: City, name: str) -> str:
    return c.users[name].pseudonym


def index_of(c: City, kind: str, request: str | None = None, nth: int = 0) -> int:
    found = [
        i
        for i, e in enumerate(c.entries())
        if e["type"] == kind and (request is None or e.get("request") == request)
    ]
    return found[nth]


def forged_release(c: City, rid: str, when: int | None = None, **v2: Any) -> int:
    t = now_ms() if when is None else when
    entry = E.access_released(rid, pseud(c, "ivan"), ["00" * 32], {"method": "blur"}, "11" * 32,
                              1000, t)  # fmt: skip
    entry.update(v2)
    return forge(c, entry)


def forged_approval(c: City, rid: str, who: str, role: str = "approver", **kw: Any) -> int:
    t = kw.pop("now_ms", now_ms())
    entry = E.access_approved(
        rid, pseud(c, who), role, expires_ms=kw.pop("expires_ms", t + DAY_MS), unredacted=False,
        complete=True, reason="approved", now_ms=t,
    )  # fmt: skip
    return forge(c, entry)


def report(c: City) -> Report:
    return check_log(c.entries())


def broken(rep: Report, rule: str) -> Violation:
    """The one violation of ``rule`` in the report (fails, listing all, if there is none)."""
    found = [v for v in rep.violations if v.rule == rule]
    assert found, f"no {rule!r} violation; found {[(v.rule, v.reason) for v in rep.violations]}"
    return found[0]


def indexes(v: Violation) -> list[int]:
    return [i for i, _ in v.evidence]


# -- honest logs pass ---------------------------------------------------------------------


def test_an_honest_gateway_log_passes_every_rule(city: City, tmp_path: Path) -> None:  # noqa: F811
    c = city
    # a plain release with real footage
    r1 = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], r1)
    c.access.release(c.users["ivan"], r1, tmp_path / "clip.mp4")
    # a denial
    r2 = c.access.request(c.users["olga"], c.inp())
    c.access.deny(c.users["boris"], r2, "no legal basis given")
    # two approvers, one of them scoped to the district
    c.access.set_policy(c.users["adam"], {"max_cameras": 1})
    r3 = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    c.access.approve(c.users["nina"], r3)
    c.access.approve(c.users["anna"], r3)
    c.access.release(c.users["ivan"], r3, tmp_path / "two.mp4")
    # a sensitive zone with its judge
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    r4 = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["jude"], r4)
    c.access.release(c.users["ivan"], r4, tmp_path / "judged.mp4")
    # an approval that lapses unused, then the sweep logs its expiry and the disclosures
    r5 = c.access.request(c.users["olga"], c.inp(cameras=("cam-s1",)))
    c.access.approve(c.users["boris"], r5)
    swept = c.access.sweep(now_ms() + 100 * DAY_MS)
    assert swept["expired"] >= 1 and swept["disclosed"] >= 1

    rep = report(c)
    assert rep.ok, [(v.rule, v.reason) for v in rep.violations]
    assert (rep.releases, rep.denials, rep.expiries) == (3, 1, 1)
    assert rep.disclosures == 5
    for rule in ("approvals-logged", "approver-role", "approver-scope", "judge-present",
                 "enough-approvals", "not-already-released", "approvals-unexpired"):  # fmt: skip
        assert rep.passed[rule] == rep.checked[rule] == 3, rule
    assert rep.passed["denier-role"] == 1 and rep.passed["expired-request-logged"] == 1
    # the gateway writes v2 releases: each names its request, its approvals and the policy
    assert rep.passed["release-link"] == rep.passed["policy-in-force"] == 3
    # what the log cannot settle (segment digests are not tied to cameras in v1) is
    # "cannot check", never a pass
    assert {v.rule for v in rep.cannot_check} <= {"disclosed-segments"}
    assert rep.passed["disclosed-segments"] == 0


# -- the forgeries of the "Done when" ----------------------------------------------


def test_a_release_without_approvals(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    rel = forged_release(c, rid)
    v = broken(report(c), "approvals-logged")
    assert indexes(v) == [index_of(c, "access.requested", rid), rel]
    assert broken(report(c), "enough-approvals").index == rel


def test_a_sensitive_request_without_its_judge(city: City) -> None:  # noqa: F811
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    rid = c.access.request(c.users["ivan"], c.inp())
    req = c.entries()[index_of(c, "access.requested", rid)]
    assert req["needs"]["judge"] is True
    ok = forged_approval(c, rid, "anna")
    rel = forged_release(c, rid)
    rep = report(c)
    v = broken(rep, "judge-present")
    assert indexes(v) == [index_of(c, "access.requested", rid), ok, rel]
    assert "judge" in v.reason
    assert {x.rule for x in rep.violations} == {"judge-present"}


def test_a_judge_missing_even_when_the_request_understates_its_needs(
    city: City,  # noqa: F811
) -> None:
    """A forged request that says no judge, yet is marked sensitive, still needs one."""
    c = city
    pol = c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    req = E.access_requested(
        "r-forged", "00" * 32, pseud(c, "ivan"), "investigation", cameras=1, districts=["north"],
        window_s=20, sensitive=True, approvals=1, judge=False,
        policy_version=int(pol["version"]), now_ms=now_ms(),
    )  # fmt: skip
    rq = forge(c, req)
    ok = forged_approval(c, "r-forged", "anna")
    rel = forged_release(c, "r-forged")
    assert indexes(broken(report(c), "judge-present")) == [rq, ok, rel]


def test_an_approver_revoked_before_approving(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.revoke("anna")
    revoked = index_of(c, "user.revoked")
    ok = forged_approval(c, rid, "anna")
    rel = forged_release(c, rid)
    rep = report(c)
    v = broken(rep, "approver-role")
    assert indexes(v) == [index_of(c, "access.requested", rid), ok, revoked, rel]
    assert broken(rep, "enough-approvals").index == rel


def test_an_approver_revoked_after_approving_is_not_a_violation(
    city: City,  # noqa: F811
) -> None:
    """The rule is the role at decision time; the gateway's own re-check covers the rest."""
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    c.revoke("anna")
    forged_release(c, rid)
    assert report(c).ok


def test_an_approval_used_after_it_expired(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    ok = index_of(c, "access.approved", rid)
    rel = forged_release(c, rid, when=now_ms() + 2 * DAY_MS)
    rep = report(c)
    v = broken(rep, "approvals-unexpired")
    assert indexes(v) == [index_of(c, "access.requested", rid), ok, rel]
    assert {x.rule for x in rep.violations} == {"approvals-unexpired"}


def test_a_second_release_of_one_request(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    plan = c.access.check_release(c.users["ivan"], rid)
    c.access.commit_release(c.users["ivan"], plan, ["00" * 32], {"method": "blur"}, "22" * 32, 9)
    first = index_of(c, "access.released", rid)
    assert report(c).ok
    second = forged_release(c, rid)
    rep = report(c)
    v = broken(rep, "not-already-released")
    assert indexes(v) == [index_of(c, "access.requested", rid), first, second]
    assert {x.rule for x in rep.violations} == {"not-already-released"}


# -- the other rules ------------------------------------------------------------------------


def test_a_self_approval(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    ok = forged_approval(c, rid, "ivan")
    rel = forged_release(c, rid)
    rep = report(c)
    assert indexes(broken(rep, "not-self-approved")) == [
        index_of(c, "access.requested", rid), ok, rel,
    ]  # fmt: skip
    assert broken(rep, "enough-approvals").index == rel


def test_the_same_approver_twice(city: City) -> None:  # noqa: F811
    c = city
    c.access.set_policy(c.users["adam"], {"max_cameras": 1})
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    c.access.approve(c.users["anna"], rid)
    first = index_of(c, "access.approved", rid)
    again = forged_approval(c, rid, "anna")
    rel = forged_release(c, rid)
    rep = report(c)
    rq = index_of(c, "access.requested", rid)
    assert indexes(broken(rep, "distinct-approvers")) == [rq, first, again, rel]
    v = broken(rep, "enough-approvals")
    assert "needs 2 approvals and has 1 valid" in v.reason


def test_two_approvals_demanded_by_the_logged_policy_even_if_needs_says_one(
    city: City,  # noqa: F811
) -> None:
    c = city
    pol = c.access.set_policy(c.users["adam"], {"max_cameras": 1})
    version = int(pol["version"])
    rq = forge(c, E.access_requested(
        "r-two", "00" * 32, pseud(c, "ivan"), "investigation", cameras=3, districts=["north"],
        window_s=20, sensitive=False, approvals=1, judge=False, policy_version=version,
        now_ms=now_ms(),
    ))  # fmt: skip
    ok = forged_approval(c, "r-two", "anna")
    rel = forged_release(c, "r-two")
    v = broken(report(c), "enough-approvals")
    assert indexes(v) == [rq, ok, rel] and "needs 2" in v.reason


def test_an_approver_out_of_scope(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-s1",)))
    ok = forged_approval(c, rid, "nina")  # nina decides for district north only
    rel = forged_release(c, rid)
    nina_added = [
        i for i, e in enumerate(c.entries())
        if e["type"] == "user.added" and e["user"] == pseud(c, "nina")
    ][0]  # fmt: skip
    rep = report(c)
    v = broken(rep, "approver-scope")
    assert indexes(v) == [index_of(c, "access.requested", rid), ok, nina_added, rel]
    assert broken(rep, "enough-approvals").index == rel


def test_denied_then_released(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.deny(c.users["boris"], rid, "no legal basis given")
    denied = index_of(c, "access.denied", rid)
    ok = forged_approval(c, rid, "anna")
    rel = forged_release(c, rid)
    rep = report(c)
    assert indexes(broken(rep, "not-denied")) == [index_of(c, "access.requested", rid), denied, rel]
    assert {x.rule for x in rep.violations} == {"not-denied"}
    assert ok < rel


def test_expired_then_released(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    c.access.sweep(now_ms() + 2 * DAY_MS)
    expired = index_of(c, "access.expired", rid)
    rel = forged_release(c, rid)  # at the present time: the approval is still in date
    rep = report(c)
    v = broken(rep, "not-expired")
    assert indexes(v) == [index_of(c, "access.requested", rid), expired, rel]
    assert {x.rule for x in rep.violations} == {"not-expired"}


def test_a_release_of_a_request_never_made(city: City) -> None:  # noqa: F811
    c = city
    rel = forged_release(c, "r-0000000000000000")
    v = broken(report(c), "requested-first")
    assert indexes(v) == [rel]


def test_a_denial_by_someone_who_may_not_decide(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    d = forge(c, E.access_denied(rid, pseud(c, "olga"), "approver", "no", now_ms()))
    self_d = forge(c, E.access_denied(rid, pseud(c, "ivan"), "approver", "no", now_ms()))
    x = forge(c, E.access_expired("r-never", now_ms()))
    nobody = forge(c, E.access_denied("r-never", pseud(c, "anna"), "approver", "no", now_ms()))
    rep = report(c)
    assert indexes(broken(rep, "denied-request-logged")) == [nobody]
    roles = [v for v in rep.violations if v.rule == "denier-role"]
    assert [v.index for v in roles] == [d, self_d]
    assert broken(rep, "denier-not-requester").index == self_d
    assert indexes(broken(rep, "expired-request-logged")) == [x]
    assert rep.denials == 3 and rep.expiries == 1


def test_the_period_limits_what_is_judged(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    later = now_ms() + 10 * DAY_MS
    forged_release(c, rid, when=later)
    assert not check_log(c.entries()).ok
    inside = check_log(c.entries(), since_ms=later - DAY_MS, until_ms=later + DAY_MS)
    before = check_log(c.entries(), until_ms=later - DAY_MS)
    assert not inside.ok and inside.releases == 1
    assert before.ok and before.releases == 0


def test_a_malformed_release_is_cannot_check_not_a_pass(city: City) -> None:  # noqa: F811
    c = city
    bad = forge(c, {"type": "access.released", "v": 1, "time": format_time(now_ms())})
    rep = report(c)
    assert [(v.rule, v.index) for v in rep.cannot_check] == [("well-formed", bad)]
    assert rep.passed["well-formed"] == 0
