"""A monitor recomputes the operator's published statistics from the log it follows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custodes.ledger.instance import Instance
from custodes.records.canonical import canonicalize
from tests.conftest import run_cli
from tests.reports.conftest import build_log


def _monitor(tiles: Path, vkey: str, state: Path, *stats: Path) -> tuple[int, list[dict[str, Any]]]:
    args = ["monitor", "--source", str(tiles), "--vkey", vkey, "--state", str(state), "--once"]
    for s in stats:
        args += ["--statistics", str(s)]
    proc = run_cli(*args, check=False)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line]


def test_published_statistics_are_recomputed_and_a_false_figure_alerts(tmp_path: Path) -> None:
    inst = build_log(tmp_path / "data")
    data, vkey = inst.path, inst.verifier_key
    report = tmp_path / "report.json"
    run_cli("report", "--period", "2026-11", "--out", str(report), data=data)
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=data)
    state = tmp_path / "seen.json"
    # The true report: no alert, and it is not audited again while unchanged.
    assert _monitor(tiles, vkey, state, report) == (0, [])
    # The operator publishes a report with one figure made smaller.
    doc = json.loads(report.read_text())
    name = next(k for k, v in sorted(doc["figures"].items()) if isinstance(v, int) and v > 0)
    doc["figures"][name] -= 1
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps(doc))
    code, alerts = _monitor(tiles, vkey, state, report, lying)
    assert code == 1 and [a["alert"] for a in alerts] == ["statistics"]
    assert name in alerts[0]["message"]
    assert alerts[0]["evidence"]["differences"][0]["figure"] == name
    assert alerts[0]["evidence"]["checkpoint"] == doc["checkpoint"]["note"]
    # Raised once, not every round.
    assert _monitor(tiles, vkey, state, report, lying) == (0, [])


def test_a_report_ahead_of_the_published_tiles_waits(tmp_path: Path) -> None:
    inst = build_log(tmp_path / "data")
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=inst.path)
    with Instance.load(inst.path).open_log() as log:
        log.append([canonicalize({"type": "sample", "v": 1, "i": i}) for i in range(300)])
        log.integrate()
    report = tmp_path / "report.json"
    run_cli("report", "--period", "2026-11", "--out", str(report), data=inst.path)
    state = tmp_path / "seen.json"
    assert _monitor(tiles, inst.verifier_key, state, report) == (0, [])
    run_cli("log", "export", str(tiles), data=inst.path)
    assert _monitor(tiles, inst.verifier_key, state, report) == (0, [])


def test_statistics_that_cannot_be_read_or_checked_alert(tmp_path: Path) -> None:
    inst = build_log(tmp_path / "data")
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=inst.path)
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    code, alerts = _monitor(tiles, inst.verifier_key, tmp_path / "s.json", junk,
                            tmp_path / "missing.json")  # fmt: skip
    assert code == 1
    assert sorted(a["alert"] for a in alerts) == ["statistics", "unreachable"]
