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
    assert rep["checkpoint_interval_s"] == 0.5  # the simulated server's default cadence
    assert rep["heartbeats"] > 300 * 20 and rep["segments"] > 300 * 3
    cams = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert {c["status"] for c in cams} <= {"up", "silent", "unknown"}
    assert sum(c["status"] == "up" for c in cams) > 250
    vkey = (data / "keys" / "log.vkey").read_text().strip()
    run_cli("log", "export", str(tmp_path / "tiles"), data=data)
    verified = run_cli("verify", "--vkey", vkey, "--source", str(tmp_path / "tiles"), "--json")
    assert json.loads(verified.stdout)["size"] > 300


def test_simulate_with_custody_records_every_segment_under_a_custodian_made_key(
    tmp_path: Path,
) -> None:
    """Three real custodians make the epoch keys through the log; every segment the
    simulated agents record carries the custody fields; the custodians are gone after."""
    import subprocess

    from custodes.fleet.model import now_ms
    from custodes.fleet.registry import FleetDB

    data = tmp_path / "city"
    out = run_cli(
        "simulate", "--cameras", "200", "--minutes", "1", "--custody", "2/3", "--json", data=data
    )
    rep = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert rep["custody"] == "2/3" and rep["segments"] > 150
    status = json.loads(run_cli("custody", "status", "--json", data=data).stdout)
    assert len(status["set"]["custodians"]) == 3 and status["set"]["threshold"] == 2
    ready = {e["epoch"] for e in status["epochs"] if e["state"] == "ready"}
    db = FleetDB.for_instance(data)
    try:
        rows = [
            s
            for cam in ("SIM-000000", "SIM-000001", "SIM-000150")
            for s in db.segments_for(cam, 0, now_ms() + 86_400_000)
        ]
    finally:
        db.close()
    assert rows and all(r.encrypted and r.epoch in ready for r in rows)
    left = subprocess.run(["pgrep", "-f", str(data / "custodians")], capture_output=True)
    assert left.stdout == b"", "a custodian process outlived the simulation"


def test_simulate_refuses_a_custody_it_cannot_run(tmp_path: Path) -> None:
    for bad in ("3/2", "two", "0/3"):
        out = run_cli("simulate", "--custody", bad, data=tmp_path / "c", check=False)
        assert out.returncode != 0 and b"give T/N" in out.stderr and b"Traceback" not in out.stderr
    out = run_cli("simulate", "--custody", "2/3", "--shards", "2", data=tmp_path / "d", check=False)
    assert out.returncode != 0 and b"works with one log" in out.stderr


def test_simulate_refuses_a_checkpoint_interval_out_of_range(tmp_path: Path) -> None:
    for bad in ("0", "0.01", "x"):
        out = run_cli("simulate", "--checkpoint-interval", bad, data=tmp_path / "c", check=False)
        assert out.returncode != 0 and b"--checkpoint-interval" in out.stderr
        assert b"Traceback" not in out.stderr
