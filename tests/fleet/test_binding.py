"""Issue 10, item 2: an agent acts only for the cameras it is bound to (real server)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.fleet.conftest import Server, post


def _t(delta_s: float = 0) -> str:
    t = datetime.now(UTC) + timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _seg(camera: str, start: str, body: bytes) -> dict[str, Any]:
    return {"camera": camera, "start": start, "duration": 10.0, "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest()}  # fmt: skip


def _q(data: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{data / 'fleet.db'}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def _put(url: str, body: bytes, token: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=body, method="PUT", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _entry(url: str, index: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"{url}/log/entry/{index}", timeout=20) as r:
                got: dict[str, Any] = json.loads(r.read())
                return got
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def _add(data: Path, name: str, *args: str) -> str:
    out = run_cli("agents", "add", name, *args, data=data)
    return out.stdout.decode().splitlines()[-1]


def test_a_bound_agent_is_refused_for_other_cameras_and_nothing_is_kept(
    fleet: tuple[Path, str],
) -> None:
    data, everyone = fleet  # bound to every camera of the fixture
    north = _add(data, "recorder-nw", "--cameras", "MSK-0001")
    srv = Server(data)
    srv.start()
    try:
        mine, other = b"mine" * 100, b"other" * 100
        start = _t(-120)
        # The other camera's segment is logged by its own recorder.
        status, body = post(srv.url + "/fleet/segments",
                            {"segments": [_seg("MSK-0002", start, other)]}, everyone)  # fmt: skip
        assert status == 200 and body["accepted"] == 1
        batches = _q(data, "SELECT COUNT(*) FROM batches")
        # Heartbeats for a camera outside the binding: refused whole, nothing kept.
        beats = [{"camera": "MSK-0001", "time": _t()}, {"camera": "MSK-0002", "time": _t()}]
        status, body = post(srv.url + "/fleet/heartbeats", {"heartbeats": beats}, north)
        assert status == 403 and "not bound to camera MSK-0002" in body["error"]
        assert _q(data, "SELECT COUNT(*) FROM heard_agents") == [(0,)]
        # Segments likewise: no batch, no record.
        seg = _seg("MSK-0002", _t(-60), mine)
        status, body = post(srv.url + "/fleet/segments", {"segments": [seg]}, north)
        assert status == 403 and "MSK-0002" in body["error"]
        assert _q(data, "SELECT COUNT(*) FROM batches") == batches
        assert _q(data, "SELECT COUNT(*) FROM segments WHERE sha256 = ?", seg["sha256"]) == [(0,)]
        # Archive files: refused before the body is stored.
        q = f"camera=MSK-0002&start={start}"
        status, body = _put(srv.url + "/fleet/archive?" + q, other, north)
        assert status == 403 and "MSK-0002" in body["error"]
        assert not (data / "archive" / "MSK-0002").exists()
        # Its own camera is fine, and the entries name its pseudonym, not its name.
        status, body = post(srv.url + "/fleet/segments",
                            {"segments": [_seg("MSK-0001", start, mine)]}, north)  # fmt: skip
        assert status == 200 and body["accepted"] == 1
        batch = _entry(srv.url, body["index"])
        assert batch["type"] == "segments.batch" and batch["v"] == 2
        assert batch["agent"].startswith("agent-") and "recorder-nw" not in json.dumps(batch)
        status, body = _put(srv.url + "/fleet/archive?camera=MSK-0001&start=" + start, mine, north)
        assert status != 403, body  # (the archive checks the content on its own)
        status, _ = post(srv.url + "/fleet/heartbeats",
                         {"heartbeats": [{"camera": "MSK-0001", "time": _t()}]}, north)  # fmt: skip
        assert status == 200
        deadline = time.monotonic() + 10
        while not (rows := _q(data, "SELECT MAX(log_index) FROM heard_log")) or rows[0][0] is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        heard: list[dict[str, Any]] = []
        while not any(batch["agent"] in h.get("agents", []) for h in heard):
            assert time.monotonic() < deadline, heard
            time.sleep(0.3)
            idx = [i for (i,) in _q(data, "SELECT log_index FROM heard_log")]
            heard = [_entry(srv.url, i) for i in idx]
        assert all(h["v"] == 2 for h in heard)
    finally:
        srv.stop()


def test_only_an_operator_rebinds_and_revokes_and_each_is_logged(
    fleet: tuple[Path, str],
) -> None:
    data, _ = fleet
    operator = _add(data, "duty-operator", "--role", "operator")
    north = _add(data, "recorder-nw", "--cameras", "MSK-0001")
    listed = json.loads(run_cli("agents", "list", "--json", data=data).stdout)
    [agent] = [a["agent"] for a in listed if a["name"] == "recorder-nw"]
    srv = Server(data)
    srv.start()
    try:
        beat = {"heartbeats": [{"camera": "MSK-0002", "time": _t()}]}
        assert post(srv.url + "/fleet/heartbeats", beat, north)[0] == 403
        # A recorder cannot widen its own binding.
        status, body = post(srv.url + f"/fleet/agents/{agent}/bind",
                            {"cameras": ["MSK-0001", "MSK-0002"]}, north)  # fmt: skip
        assert status == 403 and "operator" in body["error"]
        assert post(srv.url + "/fleet/heartbeats", beat, north)[0] == 403
        # An operator can, and the change is an entry in the log.
        out = run_cli(
            "agents", "bind", agent, "--cameras", "MSK-0001,MSK-0002", "--json",
            "--server", srv.url, "--token", operator, data=data,
        )  # fmt: skip
        rep = json.loads(out.stdout)
        entry = _entry(srv.url, rep["index"])
        assert entry["type"] == "agent.bound" and entry["cameras"] == ["MSK-0001", "MSK-0002"]
        assert "recorder-nw" not in json.dumps(entry)
        assert post(srv.url + "/fleet/heartbeats", beat, north)[0] == 200
        listed = json.loads(run_cli("agents", "list", "--json", "--server", srv.url,
                                    "--token", operator, data=data).stdout)  # fmt: skip
        assert {"MSK-0002"} <= set(next(a for a in listed if a["agent"] == agent)["cameras"])
        # A recorder cannot revoke; an operator can, and the token stops working.
        status, _ = post(srv.url + f"/fleet/agents/{agent}/revoke", {"reason": "x"}, north)
        assert status == 403
        out = run_cli(
            "agents", "revoke", agent, "--reason", "recorder replaced", "--json",
            "--server", srv.url, "--token", operator, data=data,
        )  # fmt: skip
        assert _entry(srv.url, json.loads(out.stdout)["index"])["type"] == "agent.revoked"
        status, body = post(srv.url + "/fleet/heartbeats", beat, north)
        assert status == 401
    finally:
        srv.stop()


def test_a_recorder_must_be_bound_when_added(instance: tuple[Path, str]) -> None:
    data, _ = instance
    out = run_cli("agents", "add", "loose", data=data, check=False)
    assert out.returncode == 1 and b"must be bound" in out.stderr
    assert b"Traceback" not in out.stderr
