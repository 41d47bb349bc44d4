# ruff: noqa: F811  (the city fixture is imported)
"""The log is the only authority (issue 11, items 1-3): an insider who edits the gateway's
private files decides nothing.

Each attack is the one an insider with a shell on the operator's server would make:
a row inserted into ``access.db``, an account's role changed in the identity store,
``policy.json`` edited while the server is stopped, a camera moved out of a sensitive
zone for a request and back, an entry of the log changed in its store.  The gateway
must refuse each (nothing released, a clear sentence) and, where it is running, say so
in the log (``anomaly.flagged``, rule ``cache-disagrees``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from custodes.access.rebuild import rebuild, state_digest
from custodes.access.service import AccessService, Forbidden
from custodes.errors import CacheMismatchError, VerificationError
from custodes.fleet.ops import import_cameras
from tests.access.gateway_kit import CAMERAS, City, app_city, city  # noqa: F401

ZONE = {"name": "Cathedral", "kind": "worship", "lat": 55.7600, "lon": 37.6100, "radius_m": 60}


def _released(c: City) -> int:
    return sum(1 for e in c.entries() if e["type"] == "access.released")


def _alerts(c: City) -> list[dict[str, object]]:
    return [
        e for e in c.entries()
        if e["type"] == "anomaly.flagged" and e["rule"] == "cache-disagrees"
    ]  # fmt: skip


def _sql(c: City, sql: str, *args: object) -> None:
    with sqlite3.connect(c.data / "access.db") as db:
        db.execute(sql, args)


def _reopen(c: City) -> None:
    c.access.close()
    c.access = AccessService(c.ledger, c.fleet, c.ids, c.data)


# -- 1. a forged approval ------------------------------------------------------------------


def test_a_forged_approval_row_releases_nothing_and_raises_an_alert(
    city: City, tmp_path: Path
) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    anna = c.users["anna"]
    _sql(
        c,
        "INSERT INTO req_decisions VALUES (?, ?, ?, 'approver', 1, 1, 'ok', ?, ?, 999999)",
        rid, anna.name, anna.pseudonym, c.end_ms, c.end_ms + 86_400_000,
    )  # fmt: skip
    with pytest.raises(CacheMismatchError, match="the log says pending"):
        c.access.release(c.users["ivan"], rid, tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").exists()
    assert _released(c) == 0
    alerts = _alerts(c)
    assert len(alerts) == 1 and alerts[0]["subject"] == "gateway"
    assert alerts[0]["requests"] == [rid]
    # the same after a restart: the view comes from the log, not from access.db
    _reopen(c)
    with pytest.raises(CacheMismatchError):
        c.access.check_release(c.users["ivan"], rid)
    assert _released(c) == 0


def test_a_forged_approval_is_refused_over_http(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        r = a.client.post("/access/requests", json=a.body(), headers=a.auth("ivan"))
        rid = r.json()["request"]
        anna = a.users["anna"]
        with sqlite3.connect(a.data / "access.db") as db:
            db.execute(
                "INSERT INTO req_decisions VALUES (?, ?, ?, 'approver', 1, 1, 'ok', ?, ?, 9999)",
                (rid, anna.name, anna.pseudonym, a.end_ms, a.end_ms + 86_400_000),
            )
        r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 409, r.text
        assert "the log is the authority" in r.text
        assert r.headers["content-type"].startswith("application/json")


def test_a_decision_row_deleted_from_access_db_is_noticed(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.deny(c.users["anna"], rid, "No case for this camera.")
    _sql(c, "DELETE FROM req_decisions WHERE request = ?", rid)
    with pytest.raises(CacheMismatchError, match="the log says denied"):
        c.access.approve(c.users["boris"], rid)


def test_a_request_row_given_more_cameras_is_refused(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1",)))
    c.access.approve(c.users["anna"], rid)
    _sql(
        c, "UPDATE req_requests SET cameras = ? WHERE id = ?", json.dumps(["cam-n1", "cam-s1"]), rid
    )
    with pytest.raises(CacheMismatchError, match="other cameras"):
        c.access.check_release(c.users["ivan"], rid, cameras=("cam-s1",))
    assert _alerts(c)


# -- 2. an identity store edited -----------------------------------------------------------


def test_an_investigator_made_an_approver_in_the_store_cannot_approve(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    _sql(c, "UPDATE users SET role = 'approver' WHERE name = 'olga'")
    olga = c.ids.get("olga")
    assert olga is not None and olga.role == "approver"
    with pytest.raises(CacheMismatchError, match="the log says an active investigator"):
        c.access.approve(olga, rid)
    assert not [e for e in c.entries() if e["type"] == "access.approved"]
    assert _alerts(c)


def test_a_logged_role_change_is_honoured(city: City) -> None:
    from custodes.access.users import change_user

    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    olga = c.ledger.write(lambda log: change_user(log, c.ids, "olga", "approver"))
    assert c.access.approve(olga, rid)["complete"]
    changed = [e for e in c.entries() if e["type"] == "user.changed"]
    assert changed[-1]["user"] == olga.pseudonym and changed[-1]["role"] == "approver"


# -- 3. the policy file ----------------------------------------------------------------------


def test_an_edited_policy_file_stops_the_gateway_and_says_what_differs(city: City) -> None:
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    c.access.close()
    path = c.data / "policy.json"
    doc = json.loads(path.read_text())
    doc["policy"]["sensitive_zones"] = []
    doc["policy"]["approval_ttl_s"] = 365 * 86_400
    path.write_text(json.dumps(doc))
    with pytest.raises(CacheMismatchError, match="approval_ttl_s, sensitive_zones") as err:
        AccessService(c.ledger, c.fleet, c.ids, c.data)
    assert "version 2" in str(err.value)
    path.unlink()  # a missing cache is rewritten from the log
    c.access = AccessService(c.ledger, c.fleet, c.ids, c.data)
    assert c.access.policy().zones[0].name == "Cathedral"
    assert json.loads(path.read_text())["policy"]["sensitive_zones"][0]["name"] == "Cathedral"


# -- 4. where the camera was -------------------------------------------------------------------


def _move(c: City, camera: str, lat: float, lon: float) -> None:
    cams = [replace(x, lat=lat, lon=lon) if x.id == camera else x for x in CAMERAS]
    c.ledger.write(lambda log: import_cameras(log, c.fleet, cams))


def test_a_camera_moved_out_of_its_zone_still_needs_a_judge(city: City) -> None:
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    _move(c, "cam-n1", 55.7700, 37.6300)  # far from the cathedral, after it recorded
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1",)))
    entry = [e for e in c.entries() if e["type"] == "access.requested"][-1]
    assert entry["sensitive"] and entry["needs"]["judge"]
    with pytest.raises(Forbidden, match="a judge must approve"):
        c.access.approve(c.users["anna"], rid)
    _move(c, "cam-n1", 55.7600, 37.6100)  # and back
    flags = c.access.run_anomaly_rules()
    moved = [e for e in c.entries() if e["type"] == "anomaly.flagged"
             and e["rule"] == "camera-moved-zone"]  # fmt: skip
    assert len(moved) == 2 and len(flags) >= 2
    assert "out of the sensitive zone Cathedral" in str(moved[0]["reason"])
    assert "into the sensitive zone Cathedral" in str(moved[1]["reason"])
    assert c.access.run_anomaly_rules() == []  # each move is flagged once


def test_a_camera_moved_into_a_zone_later_changes_nothing_already_recorded(city: City) -> None:
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    _move(c, "cam-s1", 55.7600, 37.6100)  # into the zone, after its footage was recorded
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-s1",)))
    entry = [e for e in c.entries() if e["type"] == "access.requested"][-1]
    assert not entry["sensitive"]
    assert c.access.approve(c.users["anna"], rid)["complete"]


# -- rebuild ---------------------------------------------------------------------------------


def _activity(c: City) -> None:
    a = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], a, unredacted=True)
    c.access.release(c.users["ivan"], a, c.data.parent / "a.mp4")
    b = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n2",)))
    c.access.deny(c.users["boris"], b, "Not enough grounds given.")
    c.access.request(c.users["olga"], c.inp(cameras=("cam-s1",)))


def test_rebuild_from_the_log_gives_the_state_of_a_server_that_never_stopped(
    city: City,
) -> None:
    c = city
    _activity(c)
    before = state_digest(c.access.db)
    c.close()
    _sql(c, "DELETE FROM req_releases")
    _sql(c, "INSERT INTO req_decisions SELECT id, 'x', 'u-0', 'approver', 1, 1, 'x',"
            " 0, 0, 1 FROM req_requests")  # fmt: skip
    _sql(c, "UPDATE users SET role = 'judge' WHERE name = 'olga'")
    (c.data / "policy.json").write_text('{"version": 9, "policy": {}}')
    out = rebuild(c.data)
    assert out["state_sha256"] == before
    assert out["accounts_fixed"] == 1 and out["policy"] == 1
    from custodes.access.identity import Identities

    with Identities(c.data) as ids:
        olga = ids.get("olga")
        assert olga is not None and olga.role == "investigator"


def test_rebuild_refuses_a_log_whose_entries_were_changed(city: City) -> None:
    c = city
    _activity(c)
    c.ledger.integrate_now()
    c.close()
    with sqlite3.connect(c.data / "log.db") as db:
        idx, data = db.execute(
            "SELECT idx, data FROM entries WHERE CAST(data AS TEXT) LIKE '%access.denied%'"
        ).fetchone()
        db.execute("UPDATE entries SET data = ? WHERE idx = ?",
                   (data.replace(b"access.denied", b"access.expired"), idx))  # fmt: skip
    with pytest.raises(VerificationError, match="do not hash to the root"):
        rebuild(c.data)


def test_access_rebuild_command(city: City) -> None:
    from custodes.cli.main import cli

    c = city
    _activity(c)
    c.close()
    res = CliRunner().invoke(cli, ["--data", str(c.data), "access", "rebuild", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["requests"] == 3 and out["verified"] > 0


def test_a_request_row_moved_into_an_approvers_scope_is_still_outside_it(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-s1",)))  # in the south
    _sql(c, "UPDATE req_requests SET places = ? WHERE id = ?", json.dumps([["north", []]]), rid)
    with pytest.raises(Forbidden, match="outside your scope"):
        c.access.approve(c.users["nina"], rid)  # nina decides for the north only
    assert not [e for e in c.entries() if e["type"] == "access.approved"]


def test_the_server_does_not_start_on_an_edited_policy_file(city: City) -> None:
    import subprocess
    import sys

    from tests.conftest import free_port

    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    c.close()
    path = c.data / "policy.json"
    doc = json.loads(path.read_text())
    doc["policy"]["sensitive_zones"] = []
    path.write_text(json.dumps(doc))
    proc = subprocess.run(
        [sys.executable, "-m", "custodes", "--data", str(c.data), "serve",
         "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "policy.json differs from the logged policy version 2 in sensitive_zones" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_policy_logged_before_a_key_existed_still_starts_the_gateway(city: City) -> None:
    """An instance whose logged policy (and its policy.json) predates a policy key, as after
    an upgrade that added the live-view keys, starts: the missing key means its default.
    An edited value is still refused."""
    from custodes.access import entries as E
    from custodes.access.policy import DEFAULT_POLICY
    from custodes.records.canonical import canonicalize

    c = city
    old = {k: v for k, v in DEFAULT_POLICY.items() if k != "live_max_minutes"}
    version = (c.access.view.policy() or (0, {}))[0] + 1
    entry = E.policy_changed(version, old, c.end_ms)
    c.ledger.write(lambda log: log.append([canonicalize(entry)]))
    (c.data / "policy.json").write_text(json.dumps({"version": version, "policy": old}))
    _reopen(c)  # starts, and decides on the logged policy
    assert c.access.policy()["live_max_minutes"] == DEFAULT_POLICY["live_max_minutes"]
    (c.data / "policy.json").write_text(
        json.dumps({"version": version, "policy": {**old, "live_max_minutes": 600}})
    )
    with pytest.raises(CacheMismatchError, match="live_max_minutes"):
        _reopen(c)
