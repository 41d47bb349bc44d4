"""The policy as data: strict parsing, zones in space and time, decisions with reasons, versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custodes.access.policy import DEFAULT_POLICY, Policy, PolicyFile, Zone
from custodes.errors import FormatError, UsageError
from custodes.fleet.model import parse_time


def test_defaults_accept_the_issue_examples() -> None:
    p = Policy.parse({})
    assert p.check_case("CASE-2026-0001").allow
    for bad in ("case-2026-0001", "CASE-26-0001", "CASE-2026-01", "CASE-2026-0001\n", ""):
        d = p.check_case(bad)
        assert not d.allow and "pattern" in d.reason
    for purpose in ("investigation", "missing-person", "public-safety", "court-order"):
        assert p.check_purpose(purpose)
    refused = p.check_purpose("curiosity")
    assert not refused and "investigation" in refused.reason


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"colour": "red"}, "unknown keys"),
        ({"purposes": []}, "purposes"),
        ({"purposes": ["Investigation"]}, "purposes"),
        ({"purposes": ["a", "a"]}, "purposes"),
        ({"case_pattern": "("}, "regular expression"),
        ({"max_cameras": 0}, "max_cameras"),
        ({"max_hours": True}, "max_hours"),
        ({"approval_ttl_s": 1.5}, "approval_ttl_s"),
        ({"odd_hours": [25, 3]}, "odd"),
        ({"anomaly": {"no_such_rule": 1}}, "anomaly"),
        ({"sensitive_zones": [{"name": "x", "kind": "clinic"}]}, "lat"),
        ({"sensitive_zones": [{"name": "x", "kind": "clinic", "polygon": [[0, 0], [1, 1]]}]}, "3"),
        (
            {
                "sensitive_zones": [
                    {"name": "x", "kind": "clinic", "lat": 1, "lon": 1, "radius_m": 5,
                     "windows": [["2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"]]}
                ]
            },
            "window",
        ),
    ],
)  # fmt: skip
def test_bad_policies_are_refused_with_a_reason(doc: dict[str, object], words: str) -> None:
    with pytest.raises(FormatError, match=words):
        Policy.parse(doc)


def test_two_approvers_over_the_thresholds_and_a_judge_for_zones() -> None:
    p = Policy.parse({"max_cameras": 5, "max_hours": 2})
    assert p.needs(5, 7200, False)[:2] == (1, False)
    assert p.needs(6, 60, False)[:2] == (2, False)
    assert p.needs(1, 7201, False)[:2] == (2, False)
    approvals, judge, why = p.needs(1, 60, True)
    assert (approvals, judge) == (1, True) and "judge" in why


def test_zones_by_circle_polygon_and_window() -> None:
    mosque = Zone.parse({"name": "Mosque", "kind": "worship", "lat": 55.75, "lon": 37.6,
                         "radius_m": 100})  # fmt: skip
    assert mosque.contains(55.7505, 37.6) and not mosque.contains(55.752, 37.6)
    square = Zone.parse(
        {
            "name": "Square",
            "kind": "assembly",
            "polygon": [[55.70, 37.50], [55.70, 37.52], [55.72, 37.52], [55.72, 37.50]],
            "windows": [["2026-06-12T10:00:00Z", "2026-06-12T18:00:00Z"]],
        }
    )
    assert square.contains(55.71, 37.51) and not square.contains(55.73, 37.51)
    rally = (parse_time("2026-06-12T12:00:00Z"), parse_time("2026-06-12T13:00:00Z"))
    before = (parse_time("2026-06-11T12:00:00Z"), parse_time("2026-06-11T13:00:00Z"))
    assert square.active(*rally) and not square.active(*before)
    p = Policy.parse({"sensitive_zones": [mosque_doc(), square_doc()]})
    assert [z.name for z in p.touched_zones([(55.71, 37.51)], *rally)] == ["Square"]
    assert p.touched_zones([(55.71, 37.51)], *before) == []


def mosque_doc() -> dict[str, object]:
    return {"name": "Mosque", "kind": "worship", "lat": 55.75, "lon": 37.6, "radius_m": 100}


def square_doc() -> dict[str, object]:
    return {
        "name": "Square",
        "kind": "assembly",
        "polygon": [[55.70, 37.50], [55.70, 37.52], [55.72, 37.52], [55.72, 37.50]],
        "windows": [["2026-06-12T10:00:00Z", "2026-06-12T18:00:00Z"]],
    }


def test_the_file_is_versioned_and_each_change_has_its_entry(tmp_path: Path) -> None:
    f = PolicyFile(tmp_path)
    assert f.read() is None
    first, entry = f.entry_for({}, 1_700_000_000_000)
    assert first.version == 1 and entry["type"] == "policy.changed" and entry["version"] == 1
    assert entry["policy"] == DEFAULT_POLICY
    f.write(first)
    second, entry2 = f.entry_for({"max_cameras": 3}, 1_700_000_001_000)
    assert second.version == 2 and entry2["policy"]["max_cameras"] == 3
    assert entry2["sha256"] != entry["sha256"]
    assert f.read() == first  # nothing changes until the caller has logged the entry
    f.write(second)
    assert f.read() == second
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(UsageError):
        f.read()
    (tmp_path / "policy.json").write_text(json.dumps({"version": 2, "policy": {"bad": 1}}))
    with pytest.raises(FormatError):
        f.read()
