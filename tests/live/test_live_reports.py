"""A transparency report counts live viewing (grants, minutes, segments viewed, emergency
reviews late or missing), and `custodes audit` recomputes those figures from the log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custodes.fleet.model import format_time, parse_time
from tests.access.gateway_kit import AppCity, app_city
from tests.conftest import run_cli
from tests.live.kit import approve, live, record_after


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def test_a_report_counts_live_grants_and_its_audit_recomputes_them(
    a: AppCity, tmp_path: Path
) -> None:
    rid = live(a, minutes=5)["request"]
    approve(a, rid)
    g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
    (name,) = record_after(a, parse_time(g["start"], "start") + 100, 1)
    assert a.client.get(f"/access/live/{rid}/{name}.ts", headers=a.auth("ivan")).status_code == 200
    r = a.client.post(f"/access/live/{rid}/revoke", json={"reason": "Done."},
                      headers=a.auth("boris"))  # fmt: skip
    assert r.status_code == 200
    live(a, emergency=True, minutes=10)
    # The report covers what the published checkpoint covers.
    want = a.app.state.ledger.read(lambda lg: lg.store.next_index())
    deadline = time.monotonic() + 30
    while int(a.client.get("/log/checkpoint").text.split("\n")[1]) < want:
        assert time.monotonic() < deadline, "the checkpoint did not catch up"
        time.sleep(0.05)
    month = format_time(parse_time(g["start"], "start"))[:7]
    out = tmp_path / "r.json"
    run_cli("report", "--period", month, "--out", str(out), data=a.data)
    fig = json.loads(out.read_text())["figures"]
    assert fig["live.grants"] == 2 and fig["live.emergency"] == 1
    assert fig["live.minutes_granted"] == 15 and fig["live.segments_viewed"] == 1
    assert fig["live.minutes_live"] <= 1  # revoked within the minute; the emergency one runs
    vkey = (a.data / "keys" / "log.vkey").read_text().strip()
    proc = run_cli("audit", str(out), "--source", str(a.data), "--vkey", vkey, check=False)
    assert proc.returncode == 0, proc.stderr
    bad = json.loads(out.read_text())
    bad["figures"]["live.segments_viewed"] = 0
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    proc = run_cli("audit", str(tmp_path / "bad.json"), "--source", str(a.data), "--vkey", vkey,
                   check=False)  # fmt: skip
    assert proc.returncode == 1 and b"live.segments_viewed" in proc.stderr
