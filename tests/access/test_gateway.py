"""The two-person rule and its bypass attempts, sealing and reveal, sweep, flags: the service.

Each test drives :class:`custodes.access.service.AccessService` over a real
log, fleet index and identity store (see ``gateway_kit``), and checks what
the public log ends up saying.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from custodes.access.identity import Scope
from custodes.access.sealing import check_commitment
from custodes.access.service import Forbidden
from custodes.access.users import add_user
from custodes.errors import ConflictError, FormatError, NotFoundError
from tests.access import gateway_kit
from tests.access.gateway_kit import City

city = gateway_kit.city

HOUR = 3_600_000
ZONE = {"name": "Clinic 7", "kind": "clinic", "lat": 55.7600, "lon": 37.6100, "radius_m": 50}


def types(c: City) -> list[str]:
    return [e["type"] for e in c.entries()]


def approved(c: City, **kw: object) -> str:
    rid = c.access.request(c.users["ivan"], c.inp(**kw))
    c.access.approve(c.users["anna"], rid)
    return rid


def test_request_entry_holds_only_safe_fields(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-s1")))
    entry = [e for e in c.entries() if e["type"] == "access.requested"][-1]
    raw = json.dumps(entry)
    assert "CASE-2026-0001" not in raw and "kiosk" not in raw and "ivan" not in raw
    assert entry["request"] == rid and entry["requester"] == c.users["ivan"].pseudonym
    assert entry["cameras"] == 2 and entry["districts"] == ["north", "south"]
    assert entry["window_s"] == 20 and entry["needs"] == {"approvals": 1, "judge": False}
    # The auditor's sealed copy opens to the details the commitment was made to.
    sealed = c.access.sealed(c.users["audrey"], rid, "complaint 12 about this request")
    assert sealed["details"]["case"] == "CASE-2026-0001"
    assert check_commitment(entry["commitment"], sealed["salt"], sealed["details"])
    # and the details are not in access.db in the clear
    assert b"kiosk" not in (c.data / "access.db").read_bytes()


def test_requester_never_approves_own_request(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    with pytest.raises(Forbidden):
        c.access.approve(c.users["ivan"], rid)  # an investigator does not decide
    # The same name re-created as an approver is a new person (a new
    # pseudonym), and still may not approve the request made under that name.
    c.revoke("ivan")
    again, _ = c.ledger.write(lambda log: add_user(log, c.ids, "ivan", "approver", Scope()))
    assert again.pseudonym != c.users["ivan"].pseudonym
    with pytest.raises(Forbidden, match="you made this request"):
        c.access.approve(again, rid)
    with pytest.raises(Forbidden, match="you made this request"):
        c.access.deny(again, rid, "no")
    assert rid not in [r["request"] for r in c.access.queue(again)]
    assert "access.approved" not in types(c) and "access.denied" not in types(c)


def test_approval_after_the_request_lapsed_is_refused(city: City) -> None:
    c = city
    now = c.end_ms + HOUR
    rid = c.access.request(c.users["ivan"], c.inp(), now_ms=now)
    ttl = c.access.policy()["request_ttl_s"] * 1000
    with pytest.raises(ConflictError, match="expired"):
        c.access.approve(c.users["anna"], rid, now_ms=now + ttl + 1)
    assert c.access.sweep(now + ttl + 1)["expired"] == 1
    assert "access.approved" not in types(c) and "access.expired" in types(c)


def test_release_after_the_approval_expired_is_refused(city: City, tmp_path: Path) -> None:
    c = city
    now = c.end_ms + HOUR
    rid = c.access.request(c.users["ivan"], c.inp(), now_ms=now)
    c.access.approve(c.users["anna"], rid, now_ms=now)
    later = now + c.access.policy()["approval_ttl_s"] * 1000
    with pytest.raises(Forbidden, match="expired"):
        c.access.release(c.users["ivan"], rid, tmp_path / "clip.mp4", now_ms=later)
    assert not (tmp_path / "clip.mp4").exists()
    assert c.access.sweep(later) == {"expired": 1, "disclosed": 0}
    assert c.access.get(c.users["ivan"], rid, now_ms=later)["state"] == "expired"
    assert "access.released" not in types(c)


def test_approver_revoked_since_voids_the_approval(city: City, tmp_path: Path) -> None:
    c = city
    rid = approved(c)
    c.revoke("anna")
    with pytest.raises(Forbidden, match="revoked"):
        c.access.release(c.users["ivan"], rid, tmp_path / "clip.mp4")
    # and a revoked approver cannot approve anything any more
    rid2 = c.access.request(c.users["ivan"], c.inp())
    with pytest.raises(Forbidden, match="revoked"):
        c.access.approve(c.users["anna"], rid2)
    assert "access.released" not in types(c)


def test_approval_outside_the_approvers_scope_is_refused(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-s1")))
    with pytest.raises(Forbidden, match="scope"):
        c.access.approve(c.users["nina"], rid)  # nina covers north only
    assert rid not in [r["request"] for r in c.access.queue(c.users["nina"])]
    rid_north = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    assert rid_north in [r["request"] for r in c.access.queue(c.users["nina"])]
    assert c.access.approve(c.users["nina"], rid_north)["complete"]


def test_investigator_outside_scope_cannot_request(city: City) -> None:
    c = city
    south, _ = c.ledger.write(
        lambda log: add_user(log, c.ids, "sam", "investigator", Scope.parse("district:south"))
    )
    with pytest.raises(Forbidden, match="outside your scope"):
        c.access.request(south, c.inp(cameras=("cam-n1",)))
    assert c.access.request(south, c.inp(cameras=("cam-s1",)))


def test_release_outside_the_approved_scope_or_window_is_refused(
    city: City, tmp_path: Path
) -> None:
    c = city
    rid = approved(c)
    out = tmp_path / "clip.mp4"
    with pytest.raises(Forbidden, match="outside the approved scope"):
        c.access.release(c.users["ivan"], rid, out, cameras=("cam-s1",))
    with pytest.raises(Forbidden, match="within the approved"):
        c.access.release(c.users["ivan"], rid, out, from_ms=c.start_ms, to_ms=c.start_ms + 9_000)
    with pytest.raises(Forbidden, match="within the approved"):
        c.access.release(
            c.users["ivan"], rid, out, from_ms=c.start_ms + 6_000, to_ms=c.start_ms + 40_000
        )
    # another investigator cannot take it either
    with pytest.raises(Forbidden, match="only the investigator"):
        c.access.release(c.users["olga"], rid, out)
    assert not out.exists() and "access.released" not in types(c)


def test_replayed_release_is_refused(city: City, tmp_path: Path) -> None:
    c = city
    rid = approved(c)
    info = c.access.release(c.users["ivan"], rid, tmp_path / "one.mp4")
    with pytest.raises(ConflictError, match="already released"):
        c.access.release(c.users["ivan"], rid, tmp_path / "two.mp4")
    assert not (tmp_path / "two.mp4").exists()
    released = [e for e in c.entries() if e["type"] == "access.released"]
    assert len(released) == 1 and released[0]["output"]["sha256"] == info["sha256"]
    # A fresh service over the same files (a restart) still refuses it.
    from custodes.access.service import AccessService

    c.access.close()
    c.access = AccessService(c.ledger, c.fleet, c.ids, c.data)
    with pytest.raises(ConflictError, match="already released"):
        c.access.release(c.users["ivan"], rid, tmp_path / "three.mp4")


def test_forged_or_altered_request_ids_are_refused(city: City, tmp_path: Path) -> None:
    c = city
    rid = approved(c)
    altered = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    before = len(c.entries())
    for bad in (altered, "r-0000000000000000", rid.upper(), rid + " ", "../" + rid, "x" * 500):
        with pytest.raises(NotFoundError):
            c.access.release(c.users["ivan"], bad, tmp_path / "clip.mp4")
        with pytest.raises(NotFoundError):
            c.access.approve(c.users["boris"], bad)
    assert len(c.entries()) == before
    assert not (tmp_path / "clip.mp4").exists()


def test_sensitive_zone_needs_a_judge(city: City) -> None:
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1",)))
    entry = [e for e in c.entries() if e["type"] == "access.requested"][-1]
    assert entry["sensitive"] and entry["needs"] == {"approvals": 1, "judge": True}
    assert entry["policy"] == 2
    with pytest.raises(Forbidden, match="judge"):
        c.access.approve(c.users["anna"], rid)
    assert rid not in [r["request"] for r in c.access.queue(c.users["anna"])]
    assert c.access.approve(c.users["jude"], rid)["complete"]
    # A zone sensitive only in a window elsewhere in time does not count.
    timed = {**ZONE, "windows": [["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"]]}
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [timed]})
    rid2 = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1",)))
    assert c.access.approve(c.users["anna"], rid2)["complete"]


def test_large_requests_need_two_approvers(city: City) -> None:
    c = city
    c.access.set_policy(c.users["adam"], {"max_cameras": 1})
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    first = c.access.approve(c.users["anna"], rid)
    assert not first["complete"] and first["state"] == "pending"
    with pytest.raises(ConflictError, match="already decided"):
        c.access.approve(c.users["anna"], rid)
    assert c.access.approve(c.users["boris"], rid)["complete"]
    assert c.access.get(c.users["ivan"], rid)["state"] == "approved"
    # over max_hours too
    c.access.set_policy(c.users["adam"], {"max_hours": 1})
    now = c.end_ms + 3 * HOUR
    rid2 = c.access.request(
        c.users["ivan"], c.inp(from_ms=c.start_ms, to_ms=c.start_ms + 2 * HOUR), now_ms=now
    )
    assert not c.access.approve(c.users["anna"], rid2, now_ms=now)["complete"]


def test_denial_carries_a_reason_and_ends_the_request(city: City, tmp_path: Path) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    with pytest.raises(FormatError):
        c.access.deny(c.users["anna"], rid, "  ")
    c.access.deny(c.users["anna"], rid, "The case file does not mention this place.")
    entry = [e for e in c.entries() if e["type"] == "access.denied"][-1]
    assert entry["reason"] == "The case file does not mention this place."
    assert entry["approver"] == c.users["anna"].pseudonym
    with pytest.raises(ConflictError, match="denied"):
        c.access.approve(c.users["boris"], rid)
    with pytest.raises(Forbidden, match="denied"):
        c.access.release(c.users["ivan"], rid, tmp_path / "clip.mp4")


def test_reveal_publishes_details_that_check_against_the_commitment(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    with pytest.raises(Forbidden):
        c.access.reveal(c.users["anna"], rid, "curious")
    out = c.access.reveal(c.users["audrey"], rid, "The case closed.")
    with pytest.raises(ConflictError):
        c.access.reveal(c.users["audrey"], rid, "again")
    log = c.entries()
    requested = [e for e in log if e["type"] == "access.requested"][-1]
    revealed = [e for e in log if e["type"] == "access.revealed"][-1]
    assert revealed["details"]["case"] == "CASE-2026-0001" and revealed["salt"] == out["salt"]
    assert check_commitment(requested["commitment"], revealed["salt"], revealed["details"])
    for key, value in (("case", "CASE-2026-0002"), ("justification", "other"), ("cameras", [])):
        altered = {**revealed["details"], key: value}
        assert not check_commitment(requested["commitment"], revealed["salt"], altered)
    other_salt = ("00" if revealed["salt"][:2] != "00" else "11") + revealed["salt"][2:]
    assert not check_commitment(requested["commitment"], other_salt, revealed["details"])


def test_sweep_discloses_place_and_window_after_the_delay(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    delay = c.access.policy()["disclosure_delay_s"] * 1000
    due = c.start_ms + 25_000 + delay
    assert c.access.sweep(due - 1)["disclosed"] == 0
    assert c.access.sweep(due)["disclosed"] == 1
    assert c.access.sweep(due + 1)["disclosed"] == 0
    entry = [e for e in c.entries() if e["type"] == "access.disclosed"][-1]
    assert entry["request"] == rid and entry["cameras"] == ["cam-n1", "cam-n2"]


def test_policy_refuses_bad_purpose_case_and_window(city: City) -> None:
    c = city
    ivan = c.users["ivan"]
    with pytest.raises(FormatError, match="purpose"):
        c.access.request(ivan, c.inp(purpose="curiosity"))
    with pytest.raises(FormatError, match="case reference"):
        c.access.request(ivan, c.inp(case="my neighbour"))
    with pytest.raises(FormatError, match="future"):
        c.access.request(ivan, c.inp(from_ms=c.end_ms + 10 * HOUR, to_ms=c.end_ms + 11 * HOUR))
    with pytest.raises(FormatError, match="end after"):
        c.access.request(ivan, c.inp(to_ms=c.start_ms))
    with pytest.raises(NotFoundError):
        c.access.request(ivan, c.inp(cameras=("no-such-cam",)))
    with pytest.raises(Forbidden):
        c.access.request(c.users["oscar"], c.inp())
    assert "access.requested" not in types(c)


def test_area_requests_resolve_to_the_cameras_inside(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=(), area=(55.7605, 37.6110, 300.0)))
    assert c.access.get(c.users["ivan"], rid)["details"]["cameras"] == ["cam-n1", "cam-n2"]
    square = ((55.69, 37.59), (55.69, 37.61), (55.71, 37.61), (55.71, 37.59))
    rid2 = c.access.request(c.users["ivan"], c.inp(cameras=(), polygon=square))
    assert c.access.get(c.users["ivan"], rid2)["details"]["cameras"] == ["cam-s1"]
    with pytest.raises(NotFoundError, match="no registered camera"):
        c.access.request(c.users["ivan"], c.inp(cameras=(), area=(10.0, 10.0, 100.0)))


def test_flags_are_logged_once_and_resolved_by_auditors(city: City) -> None:
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1",)))
    new = c.access.run_anomaly_rules()
    assert len(new) == 1 and c.access.run_anomaly_rules() == []
    entry = [e for e in c.entries() if e["type"] == "anomaly.flagged"][-1]
    assert entry["rule"] == "sensitive-zone" and entry["requests"] == [rid]
    assert "ivan" not in json.dumps(entry)
    with pytest.raises(Forbidden):
        c.access.flags(c.users["anna"])
    flags = c.access.flags(c.users["audrey"])
    assert [f["flag"] for f in flags] == new
    c.access.resolve_flag(c.users["audrey"], new[0], "A court order covers it.")
    assert c.access.flags(c.users["audrey"]) == []
    with pytest.raises(ConflictError):
        c.access.resolve_flag(c.users["audrey"], new[0], "again")
    assert types(c)[-1] == "anomaly.resolved"


def test_concurrent_releases_of_one_approval_log_exactly_one(city: City) -> None:
    c = city
    rid = approved(c)
    plans = [c.access.check_release(c.users["ivan"], rid) for _ in range(8)]
    results: list[str] = []

    def go(i: int) -> None:
        try:
            c.access.commit_release(
                c.users["ivan"], plans[i], ["00" * 32], {"method": "none"}, f"{i:064x}", 10
            )
            results.append("ok")
        except ConflictError:
            results.append("refused")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["refused"] * 7
    assert types(c).count("access.released") == 1


def test_a_release_logged_before_a_crash_is_never_repeated(city: City, tmp_path: Path) -> None:
    """The log holds the release but access.db lost it (a crash between the two commits)."""
    from custodes.access.service import AccessService

    c = city
    rid = approved(c)
    c.access.release(c.users["ivan"], rid, tmp_path / "one.mp4")
    c.access.close()
    con = sqlite3.connect(c.data / "access.db")
    with con:
        con.execute("DELETE FROM req_releases")
        con.execute("UPDATE req_meta SET value = 0 WHERE key = 'applied'")
    con.close()
    c.access = AccessService(c.ledger, c.fleet, c.ids, c.data)  # catches up from the log
    with pytest.raises(ConflictError, match="already released"):
        c.access.release(c.users["ivan"], rid, tmp_path / "two.mp4")
    assert types(c).count("access.released") == 1


def test_the_rules_run_over_the_gateways_own_records(city: City) -> None:
    c = city
    # The thresholds come from the policy (set here so the test does not lean on defaults).
    rules = {"odd_min_requests": 3, "odd_min_share": 0.25, "place_min_cases": 4}
    c.access.set_policy(c.users["adam"], {"odd_hours": [0, 5], "anomaly": rules})
    # Three requests between 01:00 and 01:20 UTC, the night after the footage.
    night = (c.end_ms // 86_400_000 + 1) * 86_400_000 + HOUR
    for k in range(3):
        c.access.request(c.users["ivan"], c.inp(case="CASE-2026-0100"), now_ms=night + k * 600_000)
    # A normal working-hours request by another investigator raises nothing.
    c.access.request(c.users["olga"], c.inp(), now_ms=night + 10 * HOUR)
    flagged = c.access.run_anomaly_rules(night + 11 * HOUR)
    entries = [e for e in c.entries() if e["type"] == "anomaly.flagged"]
    assert [e["flag"] for e in entries] == flagged
    assert [(e["rule"], e["subject"]) for e in entries] == [
        ("odd-hours", c.users["ivan"].pseudonym)
    ]
    # The same 100 m cell under two more unrelated cases: four cases in all.
    for k in range(2):
        c.access.request(c.users["olga"], c.inp(case=f"CASE-2026-020{k}"), now_ms=night + 12 * HOUR)
    again = c.access.run_anomaly_rules(night + 13 * HOUR)
    found = [e["rule"] for e in c.entries() if e["type"] == "anomaly.flagged"]
    assert len(again) == 1 and found == ["odd-hours", "repeated-place"]
