"""Agents' heartbeats and segment digests over HTTP, as a running server takes them."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from custodes.tlog import MemoryTree, Verifier, check_inclusion, leaf_hash, open_checkpoint
from tests.conftest import run_cli
from tests.fleet.conftest import Server, get_json, post


def _t(delta_s: float = 0) -> str:
    t = datetime.now(UTC) + timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _correlated_entries(data: Path) -> int:
    """How many outage.correlated entries fleet.db has taken in from the log."""
    import sqlite3

    with sqlite3.connect(f"file:{data / 'fleet.db'}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT COUNT(DISTINCT log_index) FROM events WHERE kind = 'correlated'"
        ).fetchone()
    return int(row[0])


def get_status(url: str) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _seg(camera: str, start: str, n: int = 0) -> dict[str, Any]:
    return {
        "camera": camera,
        "start": start,
        "duration": 60,
        "bytes": 1000 + n,
        "sha256": hashlib.sha256(f"{camera}{start}{n}".encode()).hexdigest(),
    }


def test_bad_items_are_refused_one_by_one_and_good_ones_kept(
    fleet_server: tuple[Server, str],
) -> None:
    srv, token = fleet_server
    good = [_seg("MSK-0001", _t(-120)), _seg("MSK-0002", _t(-60))]
    bad = [
        _seg("NO-SUCH-CAMERA", _t(-60)),
        _seg("MSK-0001", _t(3600)),
        _seg("MSK-0001", _t(-30 * 86400)),
        {**_seg("MSK-0002", _t(-240)), "sha256": "abc"},
        {**_seg("MSK-0002", _t(-300)), "bytes": -1},
        "not an object",
    ]
    status, body = post(srv.url + "/fleet/segments", {"segments": good + bad}, token)
    assert status == 200
    assert body["accepted"] == 2
    reasons = {r["item"]: r["reason"] for r in body["refused"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "camera NO-SUCH-CAMERA is not in the registry" == reasons[2]
    assert "in the future" in reasons[3]
    assert "older than" in reasons[4]
    assert "sha256 must be 64 lowercase hex digits" == reasons[5]
    assert "bytes must be a positive integer" == reasons[6]
    # Sending the same good segments again changes nothing.
    status, again = post(srv.url + "/fleet/segments", {"segments": good}, token)
    assert status == 200 and again["accepted"] == 0 and again["duplicates"] == 2
    assert again["batch"] is None
    # A different digest for a segment already logged is refused.
    forged = {**good[0], "sha256": "0" * 64}
    _, body = post(srv.url + "/fleet/segments", {"segments": [forged]}, token)
    assert "already has a different segment logged" in body["refused"][0]["reason"]


def test_oversized_batches_and_missing_tokens_are_refused_whole(
    fleet_server: tuple[Server, str],
) -> None:
    srv, token = fleet_server
    many = [_seg("MSK-0001", _t(-600 + i)) for i in range(51)]  # max_batch is 50
    status, body = post(srv.url + "/fleet/segments", {"segments": many}, token)
    assert status == 413 and "at most 50" in body["error"]
    status, _ = post(srv.url + "/fleet/segments", {"segments": many[:1]}, None)
    assert status == 401
    status, _ = post(srv.url + "/fleet/segments", {"segments": many[:1]}, token[:-2] + "xx")
    assert status == 401
    status, body = post(srv.url + "/fleet/heartbeats", {"beats": []}, token)
    assert status == 400 and "heartbeats" in body["error"]


def test_a_segment_is_proved_through_its_batch_root_and_the_log(
    fleet_server: tuple[Server, str],
    instance: tuple[Path, str],
) -> None:
    srv, token = fleet_server
    _, vkey = instance
    segs = [_seg("MSK-0001", _t(-600 + 60 * i), i) for i in range(5)]
    status, body = post(srv.url + "/fleet/segments", {"segments": segs}, token)
    assert status == 200 and body["accepted"] == 5
    time.sleep(0.5)  # one integration interval
    rep = get_json(f"{srv.url}/fleet/status?camera=MSK-0001&from={_t(-900)}&to={_t(60)}")
    assert [s["sha256"] for s in rep["segments"]] == [s["sha256"] for s in segs]
    seg = rep["segments"][2]
    assert seg["verified"]
    # Check it ourselves, from the signed checkpoint down to the one segment.
    cp = open_checkpoint(rep["checkpoint"].encode(), Verifier.from_key(vkey)).checkpoint
    with __import__("urllib.request").request.urlopen(
        f"{srv.url}/log/entry/{seg['log']['index']}"
    ) as r:
        entry = r.read()
    check_inclusion(
        [base64.b64decode(p) for p in seg["log"]["proof"]],
        index=seg["log"]["index"],
        size=cp.size,
        leaf=leaf_hash(entry),
        root=cp.root_hash,
    )
    batch_root = bytes.fromhex(json.loads(entry)["root"])
    check_inclusion(
        [bytes.fromhex(p) for p in seg["batch"]["proof"]],
        index=seg["batch"]["index"],
        size=seg["batch"]["size"],
        leaf=leaf_hash(seg["record"].encode()),
        root=batch_root,
    )
    assert json.loads(seg["record"])["sha256"] == segs[2]["sha256"]
    tree = MemoryTree(leaf_hash(r.encode()) for r in [seg["record"]])
    assert tree.size == 1


def test_silence_is_detected_and_logged_and_so_is_coming_back(
    fleet_server: tuple[Server, str],
) -> None:
    srv, token = fleet_server
    beat = {
        "heartbeats": [
            {"camera": "MSK-0001", "time": _t()},
            {"camera": "MSK-0002", "time": _t()},
            {"camera": "MSK-0001", "time": _t(-3600)},
            {"camera": "NOPE", "time": _t()},
        ]
    }
    status, body = post(srv.url + "/fleet/heartbeats", beat, token)
    assert status == 200 and body["accepted"] == 2
    assert [r["item"] for r in body["refused"]] == [2, 3]
    assert "already logged" in body["refused"][0]["reason"]

    def statuses() -> dict[str, str]:
        return {c["id"]: c["status"] for c in get_json(srv.url + "/fleet/cameras")}

    # MSK-0002 keeps sending; MSK-0001 falls silent: detected within silent_after (2) intervals.
    deadline = time.monotonic() + 12
    while statuses()["MSK-0001"] != "silent":
        assert time.monotonic() < deadline, "silence was not detected"
        post(
            srv.url + "/fleet/heartbeats",
            {"heartbeats": [{"camera": "MSK-0002", "time": _t()}]},
            token,
        )
        time.sleep(0.3)
    assert statuses()["MSK-0002"] == "up"
    assert statuses()["MSK-0004"] == "unknown"  # never heard: not declared silent
    post(
        srv.url + "/fleet/heartbeats", {"heartbeats": [{"camera": "MSK-0001", "time": _t()}]}, token
    )
    deadline = time.monotonic() + 8
    while statuses()["MSK-0001"] != "up":
        assert time.monotonic() < deadline, "coming back was not logged"
        time.sleep(0.3)
    time.sleep(0.3)
    rep = get_json(f"{srv.url}/fleet/status?camera=MSK-0001&from={_t(-60)}&to={_t(5)}")
    kinds = [e["kind"] for e in rep["events"]]
    assert "silent" in kinds and "back" in kinds
    assert rep["intervals_heard"] >= 2 and rep["not_heard"]


def test_a_second_writer_is_told_the_server_holds_the_directory(
    fleet_server: tuple[Server, str],
    instance: tuple[Path, str],
) -> None:
    data, _ = instance
    out = run_cli("agents", "add", "other", data=data, check=False)
    assert out.returncode == 1
    assert b"only one process may write" in out.stderr and b"Traceback" not in out.stderr
    assert b"--server URL" in out.stderr
    # Readers still work while the server runs.
    listed = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert len(listed) == 8  # the fixture's seven cameras and its ALPR camera (issue 15, item 17)


def test_operators_change_a_running_server_with_server_url(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    data, recorder = fleet
    out = run_cli("agents", "add", "duty-operator", "--role", "operator", data=data)
    operator = out.stdout.decode().splitlines()[-1]
    srv = Server(data)
    srv.start()
    try:
        geo = tmp_path / "new.geojson"
        feature = {
            "type": "Feature",
            "id": "NEW-1",
            "geometry": {"type": "Point", "coordinates": [37.6, 55.7]},
            "properties": {"type": "fixed", "legal_basis": "decree 410"},
        }
        geo.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        denied = run_cli(
            "cameras", "import", str(geo), "--server", srv.url, "--token", recorder,
            data=data, check=False,
        )  # fmt: skip
        assert denied.returncode == 1 and b"needs an operator token" in denied.stderr
        rep = run_cli(
            "cameras", "import", str(geo), "--json", "--server", srv.url, "--token", operator,
            data=data,
        )  # fmt: skip
        assert json.loads(rep.stdout)["registered"] == ["NEW-1"]
        listed = run_cli("cameras", "list", "--json", "--server", srv.url, data=data)
        assert "NEW-1" in {c["id"] for c in json.loads(listed.stdout)}
        entry = run_cli(
            "fleet", "declare", "outage", "--camera", "NEW-1", "--from", _t(-7200),
            "--to", _t(-3600), "--reason", "vandalism", "--json", "--server", srv.url,
            "--token", operator, data=data,
        )  # fmt: skip
        assert json.loads(entry.stdout)["late"] is True
        time.sleep(0.4)
        status = run_cli(
            "fleet", "status", "--camera", "NEW-1", "--from", _t(-9000), "--to", _t(0),
            "--json", "--server", srv.url, data=data,
        )  # fmt: skip
        kinds = [e["kind"] for e in json.loads(status.stdout)["events"]]
        assert kinds == ["registered", "outage"]
    finally:
        srv.stop()


def test_cameras_near_each_other_going_silent_together_are_flagged(
    fleet: tuple[Path, str],
) -> None:
    data, recorder = fleet
    out = run_cli("agents", "add", "duty-operator", "--role", "operator", data=data)
    operator = out.stdout.decode().splitlines()[-1]
    srv = Server(data)
    srv.start()
    try:
        group = ["MSK-0001", "MSK-0004", "osm-node-6011223347", "METRO-12"]
        start = _t(-1)
        for _ in range(3):  # all heard, up
            beats = [{"camera": c, "time": _t()} for c in [*group, "MSK-0002"]]
            post(srv.url + "/fleet/heartbeats", {"heartbeats": beats}, recorder)
            time.sleep(0.5)
        deadline = time.monotonic() + 12
        while True:  # the group stops; MSK-0002 goes on
            post(
                srv.url + "/fleet/heartbeats",
                {"heartbeats": [{"camera": "MSK-0002", "time": _t()}]},
                recorder,
            )
            cams = {c["id"]: c["status"] for c in get_json(srv.url + "/fleet/cameras")}
            if all(cams[c] == "silent" for c in group):
                break
            assert time.monotonic() < deadline, f"not all silent: {cams}"
            time.sleep(0.3)
        run_cli(
            "fleet", "declare", "outage", "--camera", "MSK-0001", "--from", start,
            "--to", _t(60), "--reason", "planned works", "--server", srv.url,
            "--token", operator, data=data,
        )  # fmt: skip
        time.sleep(0.4)
        rep = json.loads(
            run_cli(
                "fleet", "incident", "--at", "55.7558,37.6173", "--radius", "300m",
                "--from", start, "--to", _t(1), "--json", "--server", srv.url, data=data,
            ).stdout
        )  # fmt: skip
        ids = [c["camera"]["id"] for c in rep["cameras"]]
        assert ids[0] == "MSK-0001" and set(group) <= set(ids) and "MSK-0002" not in ids
        [corr] = rep["flags"]["correlated"]
        assert sorted(corr["cameras"]) == sorted(group)
        assert any(set(group) <= set(g["cameras"]) for g in rep["flags"]["silent_together"])
        [late] = rep["flags"]["declared_late"]
        assert late["camera"] == "MSK-0001" and late["late"] is True
        # A query only reads: many GETs add nothing to the log (issue 10, item 4).
        assert "logged" not in rep["flags"]
        before = _correlated_entries(data)
        q = f"at=55.7558,37.6173&radius=300m&from={start}&to={_t(1)}".replace("+", "%2B")
        for _ in range(30):
            get_json(srv.url + "/fleet/incident?" + q)
        assert _correlated_entries(data) == before
        # Too large a public query is refused with a sentence.
        for bad in (
            f"at=55.7558,37.6173&radius=50km&from={start}&to={_t(1)}",
            f"at=55.7558,37.6173&radius=300m&from={_t(-40 * 86400)}&to={_t(1)}",
        ):
            code, body = get_status(srv.url + "/fleet/incident?" + bad.replace("+", "%2B"))
            assert code == 400 and body["error"].startswith("the ")
        # An operator registers another recorder through the running server.
        out = run_cli(
            "agents", "add", "recorder-east-2", "--district", "east", "--server", srv.url,
            "--token", operator,
            data=data,
        )  # fmt: skip
        assert out.stdout.decode().splitlines()[-1].startswith("cus_")
        refused = run_cli(
            "agents", "add", "rogue", "--server", srv.url, "--token", recorder, data=data,
            check=False,
        )  # fmt: skip
        assert refused.returncode == 1 and b"Traceback" not in refused.stderr
        # The registry exports through the server too, the same as from the directory.
        geo = data.parent / "registry.geojson"
        run_cli("cameras", "export", str(geo), "--server", srv.url, data=data)
        features = json.loads(geo.read_text())["features"]
        assert len(features) == len(get_json(srv.url + "/fleet/cameras"))
        text = run_cli(
            "fleet", "incident", "--at", "55.7558,37.6173", "--from", start, "--to", _t(1),
            "--server", srv.url, data=data,
        ).stdout.decode()  # fmt: skip
        assert "FLAG correlated outage" in text and "FLAG declared late" in text
    finally:
        srv.stop()
