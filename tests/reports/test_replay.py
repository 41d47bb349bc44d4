"""The public state replayed from a real log: what the log says, entry by entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custodes.errors import FormatError
from custodes.fleet import entries as F
from custodes.fleet.model import Camera, format_time, parse_time
from custodes.ledger.instance import Instance
from custodes.records.canonical import canonicalize
from custodes.reports.replay import PublicState, entries_from_log, replay, time_ms
from tests.reports.conftest import build_log, city_entries, t


def test_replaying_the_city_log_rebuilds_its_public_state(city_log: Instance) -> None:
    reader = city_log.reader()
    try:
        state = replay(entries_from_log(reader))
    finally:
        reader.store.close()
    assert state.size == len(city_entries()) and state.skipped == []
    assert state.cameras["N-2"]["status"] == "retired"
    assert state.cameras["N-2"]["retired"] == "2026-11-20T10:00:00Z"
    assert state.cameras["S-1"]["operator"] == "Metro"
    assert state.cameras["S-3"]["registered"] == "2026-11-03T10:00:00Z"
    assert set(state.districts) == {"north", "south"}
    assert state.districts["south"]["population"] == 50000
    assert state.places["p1"]["category"] == "worship"
    assert state.users["u-" + "1" * 16] == {
        "role": "investigator", "scope": "all", "active": True,
        "added": "2026-10-01T09:00:00Z", "revoked": None,
    }  # fmt: skip
    assert state.policy is not None and state.policy["version"] == 2
    assert [p["version"] for p in state.policies] == [1, 2]
    r2 = state.requests["r2"]
    assert r2["purpose"] == "missing-person" and r2["sensitive"] is True
    assert r2["approvals"][0]["unredacted"] is True
    assert r2["released"][0]["redaction"] == {"method": "none"}
    assert state.requests["r3"]["denials"][0]["reason"] == "too broad"
    assert state.requests["r4"]["expired"] is True
    assert state.requests["r1"]["disclosed"]["cameras"] == ["N-1"]
    assert state.requests["r1"]["revealed"]["details"] == {"case": "CASE-2026-0001"}
    assert state.flags["f1"]["resolved"]["resolution"] == "justified"
    assert state.flags["f2"]["resolved"] is None
    assert [o["type"] for o in state.outages] == [
        "camera.silent", "camera.silent", "outage.correlated", "camera.back",
        "outage.declared", "maintenance.declared",
    ]  # fmt: skip
    assert state.segments == {"2026-11-02": 120, "2026-10-30": 80}
    assert state.counts["access.requested"] == 6


def test_applying_entries_one_at_a_time_matches_a_full_replay(city_log: Instance) -> None:
    reader = city_log.reader()
    try:
        whole = replay(entries_from_log(reader))
        step = PublicState()
        cut = 17
        for index, raw in entries_from_log(reader, 0, cut):
            step.apply(index, json.loads(raw))
        assert step.size == cut
        for index, raw in entries_from_log(reader, cut, batch=5):
            step.apply_bytes(index, raw)
    finally:
        reader.store.close()
    assert step == whole


def test_a_malformed_entry_is_skipped_without_breaking_the_replay(tmp_path: Path) -> None:
    good = F.camera_registered(Camera(id="C-1", lat=55.0, lon=37.0), 0, t("2026-11-01T00:00:00Z"))
    bad_request = {"type": "access.requested", "v": 1, "time": "2026-11-01T00:00:00Z"}
    bad_time = {**good, "time": "yesterday"}
    unknown = {"type": "something.new", "v": 1, "time": "2026-11-01T00:00:00Z"}
    inst = build_log(tmp_path / "data", [good, bad_request, bad_time, unknown])
    with inst.open_log() as log:
        state = replay(entries_from_log(log))
    assert state.size == 4 and state.skipped == [1, 2]
    assert list(state.cameras) == ["C-1"] and state.requests == {}
    assert state.counts["something.new"] == 1
    assert replay([(0, b"not json"), (1, canonicalize([1]))]).skipped == [0, 1]


@given(st.integers(min_value=-(10**12), max_value=4 * 10**12), st.booleans())
def test_the_quick_time_reader_agrees_with_parse_time(ms: int, whole: bool) -> None:
    text = format_time(ms - ms % 1000 if whole else ms)
    assert time_ms(text) == parse_time(text)


def test_the_quick_time_reader_refuses_what_parse_time_refuses() -> None:
    for bad in ("2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-01T24:00:00Z",
                "2026-11-01T00:00:00", "yesterday"):  # fmt: skip
        with pytest.raises(FormatError):
            time_ms(bad)
    assert time_ms("2026-11-01T03:00:00+03:00") == parse_time("2026-11-01T00:00:00Z")


def test_the_replay_imports_nothing_but_the_standard_library_and_the_records() -> None:
    import subprocess
    import sys

    code = (
        "import json, sys, custodes.reports.replay; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('custodes') or "
        "m.split('.')[0] in {'fastapi','click','jinja2','matplotlib','fpdf','cryptography'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    allowed = {"custodes", "custodes.errors", "custodes.fleet", "custodes.fleet.model",
               "custodes.reports", "custodes.reports.replay"}  # fmt: skip
    assert {m for m in loaded if not m.startswith("custodes.records")} <= allowed
