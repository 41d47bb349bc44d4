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
