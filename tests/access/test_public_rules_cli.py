"""``custodes audit access``, run as anyone runs it: from a data directory or exported tiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custodes.access import entries as E
from custodes.fleet.model import now_ms
from custodes.tlog import generate_key
from tests.access.gateway_kit import City, city  # noqa: F401  (the fixture)
from tests.conftest import run_cli
from tests.shared_city import demo_city, private_copy


def _audit(source: Path, vkey: str, *extra: str) -> tuple[int, str, str]:
    proc = run_cli("audit", "access", "--source", str(source), "--vkey", vkey, *extra, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _append(data: Path, *entries: dict[str, Any]) -> list[int]:
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in entries)
    out = run_cli("log", "append", "--workers", "0", data=data, input=lines)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.timeout(600)  # it may wait for the shared city's build
def test_the_demo_city_passes(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = private_copy(demo_city(tmp_path_factory)[0], tmp_path / "city")
    vkey = (data / "keys" / "log.vkey").read_text().strip()
    code, out, err = _audit(data, vkey)
    assert code == 0, out + err
    assert "no violations" in out and " releases" in out
    code, out, _ = _audit(data, vkey, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["violations"] == []
    assert doc["checked"]["releases"]["checked"] >= 1
    rel = doc["checked"]["releases"]
    assert rel["passed_all"] == rel["checked"]


def test_a_log_with_forged_releases_names_each_violation(
    city: City,  # noqa: F811
    tmp_path: Path,
) -> None:
    c = city
    data, vkey = c.data, (c.data / "keys" / "log.vkey").read_text().strip()
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    plan = c.access.check_release(c.users["ivan"], rid)
    c.access.commit_release(c.users["ivan"], plan, ["00" * 32], {"method": "blur"}, "22" * 32, 9)
    waiting = c.access.request(c.users["olga"], c.inp())
    c.ledger.integrate_now()
    c.close()
    code, out, _ = _audit(data, vkey)
    assert code == 0 and "no violations" in out

    def forged(r: str) -> dict[str, Any]:
        return E.access_released(r, c.users["ivan"].pseudonym, ["00" * 32], {"method": "none"},
                                 "33" * 32, 9, now_ms())  # fmt: skip

    first, second = _append(data, forged(waiting), forged(rid))
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=data)
    for source in (data, tiles):
        code, out, err = _audit(source, vkey)
        assert code == 1, err
        assert "approvals-logged" in out and "not-already-released" in out
        assert f"#{first} access.released" in out and f"#{second} access.released" in out
    code, out, _ = _audit(tiles, vkey, "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"]
    by_rule = {v["rule"]: v for v in doc["violations"]}
    assert by_rule["approvals-logged"]["evidence"][-1]["index"] == first
    assert [e["type"] for e in by_rule["not-already-released"]["evidence"]] == [
        "access.requested", "access.released", "access.released",
    ]  # fmt: skip
    rows = doc["checked"]["releases"]["rules_passed"]
    assert len(rows) == 3 and rows[0]["passed"] == rows[0]["of"]
    assert all(r["passed"] < r["of"] for r in rows[1:])
    # a period that ends before the forgeries judges only the honest release
    code, out, _ = _audit(data, vkey, "--to", "2000-01-01")
    assert code == 0 and "no violations" in out


def test_bad_input_is_one_sentence_and_exit_2(city: City, tmp_path: Path) -> None:  # noqa: F811
    c = city
    data, vkey = c.data, (c.data / "keys" / "log.vkey").read_text().strip()
    c.ledger.integrate_now()
    c.close()
    _skey, other = generate_key("test.custodes.example/log")
    for source, key, extra, says in (
        (data, other, (), "not signed by the log key"),
        (tmp_path / "nowhere", vkey, (), ""),
        (data, "not a key", (), ""),
        (data, vkey, ("--from", "yesterday"), "--from"),
        (data, vkey, ("--from", "2026-02-02", "--to", "2026-02-01"), "--to must come after"),
    ):
        code, out, err = _audit(source, key, *extra)
        assert code == 2, (source, key, extra, out, err)
        assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("custodes: ")
        assert says in err


def test_the_old_form_of_audit_still_checks_a_report(city: City, tmp_path: Path) -> None:  # noqa: F811
    c = city
    data, vkey = c.data, (c.data / "keys" / "log.vkey").read_text().strip()
    c.ledger.integrate_now()
    c.close()
    period = now_ms_period()
    report = tmp_path / "r.json"
    run_cli("report", "--period", period, "--out", str(report), data=data)
    for form in (("audit",), ("audit", "report")):
        out = run_cli(*form, str(report), "--source", str(data), "--vkey", vkey)
        assert b"match the log" in out.stdout


def now_ms_period() -> str:
    from custodes.fleet.model import format_time

    return format_time(now_ms())[:7]
