"""Live grants through the gateway (no custody): a real log, a real server over HTTP, real
ffmpeg segments.  The window starts at the approval, each segment is logged as viewed before
a byte of it leaves, and nothing is shown outside the grant."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.fleet.model import parse_time
from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live, record_after, set_clock


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def entries(a: AppCity) -> list[dict[str, Any]]:
    log = a.app.state.ledger
    raw = log.read(lambda lg: list(lg.store.read_entries(0, lg.store.next_index())))
    return [json.loads(e) for e in raw]


def frames(ts: bytes) -> int:
    import av

    with av.open(io.BytesIO(ts), "r", format="mpegts") as f:
        return sum(1 for _ in f.decode(video=0))


def test_a_live_grant_starts_at_its_approval_and_each_segment_is_logged_before_it_is_served(
    a: AppCity,
) -> None:
    g = live(a)
    rid = g["request"]
    assert g["state"] == "pending" and g["start"] is None and g["minutes"] == 5
    req = [e for e in entries(a) if e["type"] == "access.requested" and e["request"] == rid]
    assert req[0]["live"] == {"minutes": 5, "emergency": False} and req[0]["window_s"] == 300
    # Before approval: no playlist, no segment.
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
    assert r.status_code == 403 and "pending" in r.json()["error"]

    done = approve(a, rid)
    assert done["complete"]
    g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
    approval = [e for e in entries(a) if e["type"] == "access.approved"][-1]
    assert g["state"] == "live" and g["start"] == approval["time"]  # the log fixes the window
    start = parse_time(g["start"], "start")
    assert parse_time(g["end"], "end") == start + 5 * 60_000

    names = record_after(a, start + 500, 2)
    set_clock(a, start + 21_000)  # both have been recorded by then
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apple.mpegurl"
    listed = [ln[:-3] for ln in r.text.splitlines() if ln.endswith(".ts")]
    assert listed == names  # the footage from before the approval is not listed

    before = len(entries(a))
    r = a.client.get(f"/access/live/{rid}/{names[0]}.ts", headers=a.auth("ivan"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp2t" and r.content[0] == 0x47  # TS sync byte
    assert frames(r.content) >= 50  # ten seconds at 10 fps, faces blurred, re-encoded
    log = entries(a)
    index = int(r.headers["x-custodes-index"])
    assert index >= before
    viewed = log[index]
    assert viewed["type"] == "access.viewed" and viewed["request"] == rid
    # It names the segment asked for, and the next one listed, about to be asked for.
    first = r.headers["x-custodes-sha256"]
    assert viewed["segments"][0] == first and len(viewed["segments"]) == 2
    assert viewed["by"] == req[0]["requester"] and viewed["redaction"]["faces"] is True

    # Nobody else's token or session: another investigator, an approver.
    for who in ("olga", "anna"):
        r = a.client.get(f"/access/live/{rid}/{names[1]}.ts", headers=a.auth(who))
        assert r.status_code == 403 and b"\x47" not in r.content[:1]
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("olga"))
    assert r.status_code == 403
    assert not [e for e in entries(a)[len(log) :] if e["type"] == "access.viewed"]
    # The requester's next segment goes out on that same entry, which named it.
    r = a.client.get(f"/access/live/{rid}/{names[1]}.ts", headers=a.auth("ivan"))
    assert r.status_code == 200 and int(r.headers["x-custodes-index"]) == index
    assert r.headers["x-custodes-sha256"] == viewed["segments"][1] != first
    assert len(entries(a)) == len(log)


def test_outside_the_grant_a_segment_is_403_with_no_bytes_and_nothing_logged(
    a: AppCity,
) -> None:
    rid = live(a, minutes=1)["request"]
    approve(a, rid)
    start = parse_time(a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["start"],
                       "start")  # fmt: skip
    (inside,) = record_after(a, start + 100, 1)
    (other_cam,) = record_after(a, start + 100, 1, camera="cam-n2", first=200)
    old = f"cam-n1_{a.start_ms}"  # recorded before the grant: never live footage
    n = len(entries(a))
    for name in (old, other_cam, "cam-n1_x", f"cam-n1_{start + 61_000}"):
        r = a.client.get(f"/access/live/{rid}/{name}.ts", headers=a.auth("ivan"))
        assert r.status_code in (403, 404), (name, r.status_code)
        assert r.headers["content-type"].startswith("application/json"), name
        assert r.status_code == 403 or name == "cam-n1_x"
    assert len(entries(a)) == n  # a refusal logs no view
    # At the grant's end the stream stops: the next segment and the playlist are refused.
    set_clock(a, start + 60_000)
    r = a.client.get(f"/access/live/{rid}/{inside}.ts", headers=a.auth("ivan"))
    assert r.status_code == 403 and "ended" in r.json()["error"]
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
    assert r.status_code == 403
    set_clock(a, start + 59_000)
    r = a.client.get(f"/access/live/{rid}/{inside}.ts", headers=a.auth("ivan"))
    assert r.status_code == 200


def test_a_revoked_grant_stops_at_the_next_segment_and_the_revocation_is_logged(
    a: AppCity,
) -> None:
    rid = live(a)["request"]
    approve(a, rid)
    start = parse_time(a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["start"],
                       "start")  # fmt: skip
    names = record_after(a, start + 100, 2)
    assert (
        a.client.get(f"/access/live/{rid}/{names[0]}.ts", headers=a.auth("ivan")).status_code == 200
    )
    r = a.client.post(f"/access/live/{rid}/revoke", json={"reason": "x"}, headers=a.auth("ivan"))
    assert r.status_code == 403  # an investigator may not revoke
    r = a.client.post(f"/access/live/{rid}/revoke", json={"reason": "The march has passed."},
                      headers=a.auth("boris"))  # fmt: skip
    assert r.status_code == 200, r.text
    e = entries(a)[r.json()["index"]]
    assert e["type"] == "access.revoked" and e["request"] == rid and e["role"] == "approver"
    r = a.client.get(f"/access/live/{rid}/{names[1]}.ts", headers=a.auth("ivan"))
    assert r.status_code == 403 and "revoked" in r.json()["error"]
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
    assert r.status_code == 403


def test_with_the_log_unwritable_the_next_segment_is_refused_fail_closed(a: AppCity) -> None:
    rid = live(a)["request"]
    approve(a, rid)
    start = parse_time(a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["start"],
                       "start")  # fmt: skip
    names = record_after(a, start + 100, 2)
    store = a.app.state.ledger.log.store
    real = store.append

    def broken(batch: Any) -> tuple[int, int]:
        raise sqlite3.OperationalError("database or disk is full")

    store.append = broken
    try:
        r = a.client.get(f"/access/live/{rid}/{names[0]}.ts", headers=a.auth("ivan"))
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/json")
        assert b"\x47@" not in r.content
    finally:
        store.append = real
    r = a.client.get(f"/access/live/{rid}/{names[0]}.ts", headers=a.auth("ivan"))
    assert r.status_code == 200 and r.content[0] == 0x47


def test_a_grant_longer_than_the_policy_allows_is_refused_in_one_sentence(a: AppCity) -> None:
    r = a.client.post("/access/live", json={**_live(), "minutes": 61}, headers=a.auth("ivan"))
    assert r.status_code == 400 and "at most 60 minutes" in r.json()["error"]
    r = a.client.post("/access/live", json={**_live(), "minutes": 31, "emergency": True},
                      headers=a.auth("ivan"))  # fmt: skip
    assert r.status_code == 400 and "emergency grant may last at most 30" in r.json()["error"]
    r = a.client.post("/access/live", json=_live(), headers=a.auth("anna"))
    assert r.status_code == 403


def _live() -> dict[str, Any]:
    from tests.live.kit import LIVE

    return dict(LIVE)


def test_an_emergency_grant_starts_at_once_flagged_and_a_late_review_blocks_the_next(
    a: AppCity,
) -> None:
    g = live(a, emergency=True, minutes=10)
    rid = g["request"]
    assert g["state"] == "live" and g["emergency"] and g["review_due"] is not None
    log = entries(a)
    (flag,) = [e for e in log if e["type"] == "anomaly.flagged" and e["requests"] == [rid]]
    assert flag["rule"] == "emergency-grant"
    req = next(e for e in log if e["type"] == "access.requested" and e["request"] == rid)
    assert log.index(flag) == log.index(req) + 1  # flagged in the same durable append
    (name,) = record_after(a, parse_time(g["start"], "start") + 100, 1)
    r = a.client.get(f"/access/live/{rid}/{name}.ts", headers=a.auth("ivan"))
    assert r.status_code == 200  # before any approval
    # Four hours later, not reviewed: no further emergency grant for this requester.
    set_clock(a, parse_time(g["start"], "start") + 4 * 3600_000 + 1000)
    r = a.client.post("/access/live", json={**_live(), "emergency": True}, headers=a.auth("ivan"))
    assert r.status_code == 403 and rid in r.json()["error"]
    # Another investigator may; and once an approver reviews it, so may ivan again.
    assert a.client.post("/access/live", json={**_live(), "emergency": True},
                         headers=a.auth("olga")).status_code == 201  # fmt: skip
    approve(a, rid)
    r = a.client.post("/access/live", json={**_live(), "emergency": True}, headers=a.auth("ivan"))
    assert r.status_code == 201, r.text


def test_the_segments_of_a_grants_cameras_share_one_access_viewed(a: AppCity) -> None:
    """Two players, one grant: the first segment asked for is logged at once, and its entry
    names the other camera's segment, listed to the other player, which then waits for no
    entry of its own."""
    rid = live(a, cameras=["cam-n1", "cam-n2"])["request"]
    approve(a, rid)
    start = parse_time(a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["start"],
                       "start")  # fmt: skip
    names = [*record_after(a, start + 100, 1),
             *record_after(a, start + 100, 1, camera="cam-n2", first=200)]  # fmt: skip
    set_clock(a, start + 11_000)  # both recorded by then
    r = a.client.get(f"/access/live/{rid}/index.m3u8?camera=cam-n2", headers=a.auth("ivan"))
    assert r.status_code == 200 and names[1] in r.text and names[0] not in r.text
    before = len(entries(a))
    got = [a.client.get(f"/access/live/{rid}/{name}.ts", headers=a.auth("ivan")) for name in names]
    assert [g.status_code for g in got] == [200, 200]
    indexes = {int(g.headers["x-custodes-index"]) for g in got}
    assert len(indexes) == 1 and len(entries(a)) == before + 1  # one entry names both
    viewed = entries(a)[indexes.pop()]
    assert viewed["segments"] == [g.headers["x-custodes-sha256"] for g in got]


def test_a_segment_logged_but_not_yet_archived_is_not_listed(a: AppCity) -> None:
    """An agent logs a segment, then uploads it: a player offered it before would stop."""
    from custodes.access.release import segment_path

    rid = live(a)["request"]
    approve(a, rid)
    start = parse_time(a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["start"],
                       "start")  # fmt: skip
    names = record_after(a, start + 100, 2)
    set_clock(a, start + 21_000)
    path = segment_path(a.data, "cam-n1", int(names[1].rsplit("_", 1)[1]))
    assert path is not None
    body = path.read_bytes()
    path.unlink()  # logged, not archived yet
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
    assert [ln[:-3] for ln in r.text.splitlines() if ln.endswith(".ts")] == names[:1]
    path.write_bytes(body)  # the upload lands
    r = a.client.get(f"/access/live/{rid}/index.m3u8", headers=a.auth("ivan"))
    assert [ln[:-3] for ln in r.text.splitlines() if ln.endswith(".ts")] == names


def test_a_recorder_hears_of_a_revocation_at_its_very_next_heartbeat(a: AppCity) -> None:
    from custodes.fleet.model import format_time, now_ms
    from custodes.fleet.ops import add_agent

    st = a.app.state
    _agent, token = st.ledger.write(
        lambda log: add_agent(log, st.fleet.db, "rec-hb", "recorder", cameras=["cam-n1"])
    )

    def beat() -> list[str]:
        body = {"heartbeats": [{"camera": "cam-n1", "time": format_time(now_ms())}]}
        r = a.client.post("/fleet/heartbeats", json=body,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 200, r.text
        got: list[str] = r.json()["live"]
        return got

    rid = live(a)["request"]
    approve(a, rid)
    assert beat() == ["cam-n1"]  # short segments while the grant lasts
    r = a.client.post(f"/access/live/{rid}/revoke", json={"reason": "The march has passed."},
                      headers=a.auth("boris"))  # fmt: skip
    assert r.status_code == 200, r.text
    assert beat() == []  # not a second later, from an answer worked out before the revocation
