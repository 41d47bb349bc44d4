"""`custodes report` and `custodes audit`, run as a user runs them, against real logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custodes.access import entries as A
from custodes.ledger.instance import Instance
from custodes.records.canonical import canonicalize
from custodes.tlog import generate_key
from tests.conftest import run_cli
from tests.fleet.conftest import Server
from tests.reports.conftest import build_log, t


def _report(data: Path, out: Path, *args: str) -> dict[str, Any]:
    run_cli("report", "--period", "2026-11", "--out", str(out), *args, data=data)
    return json.loads(out.read_text()) if out.suffix == ".json" else {}


def _audit(report: Path, source: str | Path, vkey: str) -> tuple[int, str, str]:
    proc = run_cli("audit", str(report), "--source", str(source), "--vkey", vkey, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.fixture
def city(tmp_path: Path) -> tuple[Path, str]:
    inst = build_log(tmp_path / "data")
    return inst.path, inst.verifier_key


def test_a_report_passes_its_audit_and_one_altered_figure_is_caught(
    city: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = city
    report = _report(data, tmp_path / "r.json")
    assert report["format"] == "custodes-report/1" and report["period"] == "2026-11"
    cp = report["checkpoint"]
    assert cp["origin"] == "reports.custodes.example/log" and cp["size"] == 47
    assert cp["note"].startswith("reports.custodes.example/log\n47\n")
    assert report["figures"]["access.requests"] == 4
    rc, out, err = _audit(tmp_path / "r.json", data, vkey)
    assert rc == 0, err
    assert "match the log" in out

    altered = json.loads((tmp_path / "r.json").read_text())
    altered["figures"]["sharing.releases.unredacted"] = 0
    (tmp_path / "bad.json").write_text(json.dumps(altered))
    rc, _, err = _audit(tmp_path / "bad.json", data, vkey)
    assert rc == 1
    assert "figure sharing.releases.unredacted differs" in err
    assert "the report says 0" in err and "gives 1" in err

    dropped = json.loads((tmp_path / "r.json").read_text())
    del dropped["figures"]["outages.correlated"]
    (tmp_path / "dropped.json").write_text(json.dumps(dropped))
    rc, _, err = _audit(tmp_path / "dropped.json", data, vkey)
    assert rc == 1 and "figure outages.correlated differs: the report says nothing" in err

    proc = run_cli("audit", str(tmp_path / "bad.json"), "--source", str(data), "--vkey", vkey,
                   "--json", check=False)  # fmt: skip
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["differences"] == [
        {"figure": "sharing.releases.unredacted", "report": 0, "log": 1}
    ]


def test_audit_refuses_a_checkpoint_not_signed_by_the_key(
    city: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = city
    report = _report(data, tmp_path / "r.json")
    _, other = generate_key("reports.custodes.example/log")
    rc, _, err = _audit(tmp_path / "r.json", data, other)
    assert rc == 1 and "not signed by the log key" in err
    # A report that claims a bigger log than its signed note says.
    report["checkpoint"]["size"] = 46
    (tmp_path / "lie.json").write_text(json.dumps(report))
    rc, _, err = _audit(tmp_path / "lie.json", data, vkey)
    assert rc == 1 and "checkpoint size 46" in err


def test_audit_reads_exported_tiles_and_catches_a_tampered_entry(
    city: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = city
    _report(data, tmp_path / "r.json")
    # The log grows past the report's checkpoint: its partial bundle becomes a full one.
    inst = Instance.load(data)
    with inst.open_log() as log:
        more = [
            A.user_added(f"u-{i:016x}", "operator", "all", t("2026-12-02T00:00:00Z"))
            for i in range(300)
        ]
        log.append([canonicalize(e) for e in more])
        log.integrate()
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=data)
    assert not (tiles / "tile/entries/000.p/47").exists()
    rc, out, err = _audit(tmp_path / "r.json", tiles, vkey)
    assert rc == 0, err
    rc, _, err = _audit(tmp_path / "r.json", data, vkey)
    assert rc == 0, err
    bundle = tiles / "tile/entries/000"
    raw = bundle.read_bytes()
    bundle.write_bytes(raw.replace(b'"missing-person"', b'"missing-parson"', 1))
    rc, _, err = _audit(tmp_path / "r.json", tiles, vkey)
    assert rc == 1 and "do not hash to the checkpoint's root" in err


def test_audit_reads_the_log_from_a_running_server(city: tuple[Path, str], tmp_path: Path) -> None:
    data, vkey = city
    srv = Server(data)
    srv.start()
    try:
        run_cli(
            "report",
            "--period",
            "2026-11",
            "--source",
            srv.url + "/log",
            "--vkey",
            vkey,
            "--out",
            str(tmp_path / "r.json"),
        )
        rc, out, err = _audit(tmp_path / "r.json", srv.url + "/log", vkey)
    finally:
        srv.stop()
    assert rc == 0, err
    proc = run_cli("report", "--period", "2026-11", "--source", str(tmp_path), check=False)
    assert proc.returncode == 1


def test_html_and_pdf_reports_are_drawn_from_the_figures(
    city: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = city
    _report(data, tmp_path / "r.html", "--format", "html")
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") >= 4
    for heading in (
        "Deployment",
        "How the system was used",
        "Sharing",
        "Outages",
        "Violations and anomaly flags",
        "Data retention",
        "Policy and accounts",
    ):
        assert f">{heading}</h2>" in html
    assert "None recorded" in html
    assert "checkpoint of size\n     <strong>47</strong>" in html
    assert "<script" not in html and "<link" not in html and 'src="http' not in html
    _report(data, tmp_path / "r.pdf", "--format", "pdf")
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000 and b"/Image" in pdf


def test_a_pdf_needs_an_output_file_and_a_bad_period_is_refused(city: tuple[Path, str]) -> None:
    data, _ = city
    proc = run_cli("report", "--period", "2026-11", "--format", "pdf", data=data, check=False)
    assert proc.returncode == 1 and "needs --out" in proc.stderr.decode()
    proc = run_cli("report", "--period", "2026-13", data=data, check=False)
    assert proc.returncode == 1 and "must be a month such as 2026-11" in proc.stderr.decode()
    out = run_cli("report", "--period", "2026", data=data).stdout
    assert json.loads(out)["figures"]["access.requests"] == 6


def test_text_from_the_log_cannot_inject_markup_into_the_html(tmp_path: Path) -> None:
    from custodes.reports.audit import open_log_source, open_signed, read_state
    from custodes.reports.render import Verify, build_report, render_html

    evil = "--><script>alert(1)</script><!--"
    when = t("2026-11-02T00:00:00Z")
    entry = A.access_requested("r1", "00" * 32, "u-" + "1" * 16, evil, cameras=1,
                               districts=[evil], window_s=60, sensitive=False, approvals=1,
                               judge=False, policy_version=1, now_ms=when)  # fmt: skip
    inst = build_log(tmp_path / "data", [entry])
    src = open_log_source(inst.path)
    try:
        signed = open_signed(src.latest_checkpoint(), inst.verifier_key)
        state = read_state(src, signed)
    finally:
        src.close()
    verify = Verify(json_name="r.json", source=str(inst.path), vkey=inst.verifier_key)
    html = render_html(build_report(state, signed, "2026-11"), verify=verify)
    assert "<svg" in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
