"""`custodes simulate`: a synthetic city through the real HTTP ingest path."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_simulate_reports_its_measurements_and_leaves_a_checkable_log(tmp_path: Path) -> None:
    data = tmp_path / "city"
    out = run_cli("simulate", "--cameras", "300", "--minutes", "4", "--json", data=data)
    rep = json.loads(out.stdout.decode().strip().splitlines()[-1])
    for key in (
        "cameras", "simulated_seconds", "wall_seconds", "realtime_factor", "heartbeats",
        "segments", "checkpoint_lag_s_max", "peak_rss_mb",
    ):  # fmt: skip
        assert key in rep
    assert rep["cameras"] == 300 and rep["simulated_seconds"] == 240
    assert rep["heartbeats"] > 300 * 20 and rep["segments"] > 300 * 3
    cams = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert {c["status"] for c in cams} <= {"up", "silent", "unknown"}
    assert sum(c["status"] == "up" for c in cams) > 250
    vkey = (data / "keys" / "log.vkey").read_text().strip()
    run_cli("log", "export", str(tmp_path / "tiles"), data=data)
    verified = run_cli("verify", "--vkey", vkey, "--source", str(tmp_path / "tiles"), "--json")
    assert json.loads(verified.stdout)["size"] > 300
