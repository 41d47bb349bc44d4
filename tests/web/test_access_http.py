"""The access gateway's HTTP API, end to end over a real loopback server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from custodes.access.sealing import check_commitment
from tests.access.gateway_kit import AppCity, app_city


def entries(a: AppCity) -> list[dict[str, Any]]:
    led = a.app.state.ledger
    raw = led.read(lambda log: log.store.read_entries(0, log.store.next_index()))
    return [json.loads(e) for e in raw]


def test_request_approve_release_reveal_over_http(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        c = a.client
        r = c.post("/access/requests", json=a.body(), headers=a.auth("ivan"))
        assert r.status_code == 201
        rid = r.json()["request"]

        mine = c.get(f"/access/requests/{rid}", headers=a.auth("ivan")).json()
        assert mine["state"] == "pending" and mine["details"]["case"] == "CASE-2026-0001"
        assert mine["requester"] == a.users["ivan"].pseudonym
        queue = c.get("/access/queue", headers=a.auth("anna")).json()["requests"]
        assert [q["request"] for q in queue] == [rid]

        r = c.post(f"/access/requests/{rid}/approve", json={}, headers=a.auth("ivan"))
        assert r.status_code == 403
        r = c.post(f"/access/requests/{rid}/approve", json={"reason": "ok"}, headers=a.auth("anna"))
        assert r.status_code == 200 and r.json()["state"] == "approved"

        r = c.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        digest = hashlib.sha256(r.content).hexdigest()
        assert r.headers["x-custodes-sha256"] == digest
        log = entries(a)
        entry = log[int(r.headers["x-custodes-index"])]
        assert entry["type"] == "access.released" and entry["output"]["sha256"] == digest
        assert entry["output"]["bytes"] == len(r.content)

        again = c.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert again.status_code == 409 and "already released" in again.json()["error"]
        state = c.get(f"/access/requests/{rid}", headers=a.auth("audrey")).json()
        assert state["state"] == "released"

        r = c.post(
            f"/access/requests/{rid}/reveal", json={"reason": "closed"}, headers=a.auth("audrey")
        )
        assert r.status_code == 200
        requested = next(e for e in entries(a) if e["type"] == "access.requested")
        revealed = entries(a)[r.json()["index"]]
        assert check_commitment(requested["commitment"], revealed["salt"], revealed["details"])


def test_refusals_are_one_sentence_with_the_right_status(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        c = a.client
        bad_time = a.body(**{"from": "yesterday"})
        r = c.post("/access/requests", json=bad_time, headers=a.auth("ivan"))
        assert r.status_code == 400 and "RFC 3339" in r.json()["error"]
        r = c.post("/access/requests", json=a.body(case="nope"), headers=a.auth("ivan"))
        assert r.status_code == 400 and "case reference" in r.json()["error"]
        r = c.post("/access/requests", json=a.body(cameras=["ghost"]), headers=a.auth("ivan"))
        assert r.status_code == 404
        both = a.body(area={"lat": 55.76, "lon": 37.61, "radius_m": 100})
        r = c.post("/access/requests", json=both, headers=a.auth("ivan"))
        assert r.status_code == 400 and "exactly one" in r.json()["error"]
        r = c.post("/access/requests/r-0123456789abcdef/approve", json={}, headers=a.auth("anna"))
        assert r.status_code == 404
        r = c.post("/access/requests", content=b"{", headers=a.auth("ivan"))
        assert r.status_code == 422


def test_policy_changes_are_logged_and_versioned(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        c = a.client
        assert c.get("/access/policy").json()["version"] == 1
        doc = {"max_cameras": 3, "purposes": ["investigation", "court-order"]}
        r = c.put("/access/policy", json=doc, headers=a.auth("adam"))
        assert r.status_code == 200 and r.json()["version"] == 2
        now = c.get("/access/policy").json()
        assert now["version"] == 2 and now["policy"]["max_cameras"] == 3
        changed = [e for e in entries(a) if e["type"] == "policy.changed"]
        assert [e["version"] for e in changed] == [1, 2]
        assert changed[-1]["policy"] == now["policy"]
        r = c.put("/access/policy", json={"max_cameras": -1}, headers=a.auth("adam"))
        assert r.status_code == 400 and c.get("/access/policy").json()["version"] == 2
        r = c.post(
            "/access/requests", json=a.body(purpose="missing-person"), headers=a.auth("ivan")
        )
        assert r.status_code == 400 and "purpose" in r.json()["error"]


def test_footage_uploaded_by_a_recorder_is_what_is_released(tmp_path: Path) -> None:
    """The whole path: a recorder logs and uploads a segment; it is requested and released."""
    from custodes.fleet.model import format_time
    from custodes.fleet.ops import add_agent
    from tests.access.gateway_kit import segment_bytes

    with app_city(tmp_path) as a:
        c = a.client
        st = a.app.state
        _, token = st.ledger.write(
            lambda log: add_agent(log, st.fleet.db, "rec-1", cameras=["cam-s1"])
        )
        rec = {"Authorization": f"Bearer {token}"}
        start = a.end_ms + 10_000  # a new minute of camera cam-s1, after the kit's footage
        body = segment_bytes(99)
        digest = hashlib.sha256(body).hexdigest()
        seg = {"camera": "cam-s1", "start": format_time(start), "duration": 10,
               "bytes": len(body), "sha256": digest}  # fmt: skip
        r = c.post("/fleet/segments", json={"segments": [seg]}, headers=rec)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        r = c.put(
            "/fleet/archive",
            params={"camera": "cam-s1", "start": format_time(start)},
            content=body,
            headers=rec,
        )
        assert r.status_code == 200, r.text
        window = {"from": format_time(start + 2_000), "to": format_time(start + 8_000)}
        r = c.post(
            "/access/requests", json=a.body(cameras=["cam-s1"], **window), headers=a.auth("ivan")
        )
        rid = r.json()["request"]
        c.post(f"/access/requests/{rid}/approve", json={}, headers=a.auth("anna"))
        r = c.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 200
        entry = entries(a)[int(r.headers["x-custodes-index"])]
        assert entry["segments"] == [digest]
