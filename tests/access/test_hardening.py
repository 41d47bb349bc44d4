"""Hardening (issue 10): windows in the future, ASCII-only case references, place keys in flags."""

from __future__ import annotations

import pytest

from custodes.errors import FormatError
from tests.access import gateway_kit
from tests.access.gateway_kit import City

city = gateway_kit.city


def test_a_window_that_ends_in_the_future_is_refused(city: City) -> None:
    now = city.end_ms + 60_000
    inp = city.inp(from_ms=city.start_ms, to_ms=now + 3_600_000)
    with pytest.raises(FormatError, match="ends in the future"):
        city.access.request(city.users["ivan"], inp, now_ms=now)
    assert not [e for e in city.entries() if e["type"] == "access.requested"]


@pytest.mark.parametrize(
    "case",
    [
        "CASE-\u0662\u0660\u0662\u0666-\u0660\u0660\u0660\u0661",  # Arabic-Indic digits
        "CASE-\uff12\uff10\uff12\uff16-\uff10\uff10\uff10\uff11",  # fullwidth digits
        "CASE-2026-\u0967\u0968\u0969\u096a",  # Devanagari digits
    ],
)
def test_case_references_take_ascii_digits_only(city: City, case: str) -> None:
    with pytest.raises(FormatError, match="does not match"):
        city.access.request(city.users["ivan"], city.inp(case=case))
    assert city.access.request(city.users["ivan"], city.inp(case="CASE-2026-0001"))


def test_a_repeated_place_flag_cannot_be_matched_to_the_later_disclosure(city: City) -> None:
    """Nothing in the flag is a function of the cell alone that a reader could recompute."""
    import hashlib
    import json

    from custodes.access.anomaly import cell_of

    day = 86_400_000
    c = city
    t0 = (c.end_ms // day + 2) * day + 10 * 3_600_000
    rids = []
    for k in range(4):
        at = t0 + k * 3_600_000
        rids.append(c.access.request(c.users["ivan"], c.inp(case=f"CASE-2026-000{k + 1}"), at))
    c.access.run_anomaly_rules(now_ms=t0 + 5 * 3_600_000)
    flags = [
        e for e in c.entries() if e["type"] == "anomaly.flagged" and e["rule"] == "repeated-place"
    ]
    assert len(flags) == 1
    flag = flags[0]
    # The disclosure comes when the delay has passed.
    c.access.sweep(now_ms=t0 + 400 * day)
    disclosed = [e for e in c.entries() if e["type"] == "access.disclosed"]
    assert {d["request"] for d in disclosed} >= set(rids)
    # A reader holding the disclosure recomputes every cell-derived value it can.
    cam = next(x for x in gateway_kit.CAMERAS if x.id == "cam-n1")
    cell = cell_of(cam.lat, cam.lon)
    text = json.dumps(flag)
    for month in ("2026-12", "2027-01", "2026-11"):
        guess = hashlib.sha256(f"repeated-place:{cell}:{month}".encode()).hexdigest()[:16]
        assert guess not in text
    assert cell not in text and cell.removeprefix("cell:").split(",")[0] not in text
    # And no place key at all: the subject names no place.
    assert flag["subject"] == "place"
    assert "place-" not in text
