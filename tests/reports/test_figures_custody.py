"""Figures and the public-rules audit over a log holding releases under custody.

Under custody ``access.released`` (v3) is logged before the footage is opened and names no
clip; the later ``access.exported`` names it, with its bytes.  The published figures count
those bytes from the export (in the period of the export), and ``custodes audit access``
counts the exports it checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custodes.access import entries as A
from custodes.access.policy import DEFAULT_POLICY
from custodes.reports.figures import compute, parse_period
from custodes.reports.render import sections
from custodes.reports.replay import entries_from_log, replay
from tests.conftest import run_cli
from tests.reports.conftest import build_log, t

IVAN, ANNA = "u-" + "1" * 16, "u-" + "2" * 16
NOV, DEC = parse_period("2026-11"), parse_period("2026-12")
T0 = t("2026-11-10T10:00:00Z")


def _granted(rid: str, at: int) -> list[dict[str, Any]]:
    return [
        A.access_requested(rid, "ab" * 32, IVAN, "investigation", cameras=1,
                           districts=["north"], window_s=60, sensitive=False, approvals=1,
                           judge=False, policy_version=1, now_ms=at),
        A.access_approved(rid, ANNA, "approver", expires_ms=at + 86_400_000,
                          unredacted=False, complete=True, reason="ok", now_ms=at + 1000),
    ]  # fmt: skip


def _log() -> list[dict[str, Any]]:
    """Two custody releases (one exported in November, one in December) and a plain one."""
    faces = {"faces": True, "plates": False, "method": "blur"}
    out = [
        A.user_added(IVAN, "investigator", "all", T0 - 10_000),
        A.user_added(ANNA, "approver", "all", T0 - 10_000),
        A.policy_changed(1, DEFAULT_POLICY, T0 - 10_000),
    ]
    # r-1 under custody: released at index 5, exported at index 6 with 1,234,567 bytes.
    out += _granted("r-1", T0)
    out.append(A.access_released("r-1", IVAN, ["e1" * 32, "e2" * 32], faces, None, None,
                                 T0 + 2000, requested=3, approvals=[4],
                                 policy_version=1))  # fmt: skip
    out.append(A.access_exported("r-1", 5, IVAN, faces, "c1" * 32, 1_234_567, T0 + 3000))
    # r-2 without custody: the release names its clip of 1,000 bytes.
    out += _granted("r-2", T0 + 10_000)
    out.append(A.access_released("r-2", IVAN, ["e3" * 32], {"method": "none"}, "c2" * 32,
                                 1000, T0 + 12_000))  # fmt: skip
    # r-3 under custody, released on 30 November, its clip exported on 1 December.
    late = t("2026-11-30T23:59:00Z")
    out += _granted("r-3", late)
    out.append(A.access_released("r-3", IVAN, ["e4" * 32], faces, None, None, late + 2000,
                                 requested=10, approvals=[11], policy_version=1))  # fmt: skip
    out.append(A.access_exported("r-3", 12, IVAN, faces, "c3" * 32, 777,
                                 t("2026-12-01T00:00:30Z")))  # fmt: skip
    return out


def test_release_bytes_under_custody_come_from_the_export(tmp_path: Path) -> None:
    entries = _log()
    assert [entries[i]["type"] for i in (5, 6, 12, 13)] == [
        "access.released", "access.exported", "access.released", "access.exported",
    ]  # fmt: skip
    inst = build_log(tmp_path / "data", entries)
    with inst.open_log() as log:
        state = replay(entries_from_log(log))
    nov = compute(state, *NOV)
    assert nov["sharing.releases"] == 3
    assert nov["sharing.segments"] == 4
    assert nov["sharing.bytes"] == 1_234_567 + 1000  # r-1's export and r-2's own clip
    assert nov["sharing.exports"] == 1
    assert nov["sharing.releases.faces_masked"] == 2
    dec = compute(state, *DEC)
    assert dec["sharing.releases"] == 0
    assert dec["sharing.bytes"] == 777 and dec["sharing.exports"] == 1
    shown = sections({"figures": nov})  # what the published report says
    facts = dict(next(s for s in shown if s.key == "sharing").facts)
    assert facts["Bytes released"] == "1,235,567"
    assert facts["Clips of releases under custody exported"] == "1"


def test_audit_access_counts_the_exports_it_checked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    build_log(data, _log())
    vkey = (data / "keys" / "log.vkey").read_text().strip()
    proc = run_cli("audit", "access", "--source", str(data), "--vkey", vkey, "--json")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True, doc["violations"]
    assert doc["checked"]["releases"]["checked"] == 3
    exports = doc["checked"]["exports"]
    assert exports["checked"] == 2 and exports["passed_all"] == 2
    assert [r["index"] for r in exports["rules_passed"]] == [6, 13]
    text = run_cli("audit", "access", "--source", str(data), "--vkey", vkey).stdout.decode()
    assert "       2 exports: 2 passed 1 of 1 rules" in text
    # Only December: one export, no release.
    dec = run_cli("audit", "access", "--source", str(data), "--vkey", vkey, "--json",
                  "--from", "2026-12-01", "--to", "2026-12-31")  # fmt: skip
    checked = json.loads(dec.stdout)["checked"]
    assert checked["exports"]["checked"] == 1 and checked["releases"]["checked"] == 0
