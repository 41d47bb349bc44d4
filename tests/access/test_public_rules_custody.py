"""The public rule of a release under custody (``exported-release``), over logs built by hand.

Under custody ``access.released`` (v3) is logged before the footage is opened and names no
clip; ``access.exported`` names it afterwards.  Each export must name a release of its own
request logged before it that carries no clip, and only once.
"""

from __future__ import annotations

from typing import Any

from custodes.access import entries as A
from custodes.access.policy import DEFAULT_POLICY
from custodes.access.public_rules import check_log

T0 = 1_780_000_000_000
IVAN, ANNA = "u-" + "1" * 16, "u-" + "2" * 16


def _log(*, custody: bool = True) -> list[dict[str, Any]]:
    sha, size = (None, None) if custody else ("cd" * 32, 10)
    return [
        A.user_added(IVAN, "investigator", "all", T0),
        A.user_added(ANNA, "approver", "all", T0),
        A.policy_changed(1, DEFAULT_POLICY, T0),
        A.access_requested(
            "r-1",
            "ab" * 32,
            IVAN,
            "investigation",
            cameras=1,
            districts=["north"],
            window_s=60,
            sensitive=False,
            approvals=1,
            judge=False,
            policy_version=1,
            now_ms=T0 + 1,
        ),  # fmt: skip
        A.access_approved(
            "r-1",
            ANNA,
            "approver",
            expires_ms=T0 + 86_400_000,
            unredacted=True,
            complete=True,
            reason="ok",
            now_ms=T0 + 2,
        ),  # fmt: skip
        A.access_released(
            "r-1",
            IVAN,
            ["ef" * 32],
            {"method": "none"},
            sha,
            size,
            T0 + 3,
            requested=3,
            approvals=[4],
            policy_version=1,
        ),  # fmt: skip
    ]


def _export(release: int, rid: str = "r-1") -> dict[str, Any]:
    return A.access_exported(rid, release, IVAN, {"method": "none"}, "cd" * 32, 10, T0 + 4)


def _broken(entries: list[dict[str, Any]]) -> list[str]:
    return [f"{v.rule}: {v.reason}" for v in check_log(entries).violations]


def test_a_custody_release_and_its_export_pass() -> None:
    log = _log()
    assert log[5]["v"] == 3 and "output" not in log[5]
    report = check_log([*log, _export(5)])
    assert report.ok, report.violations
    assert report.passed["exported-release"] == report.checked["exported-release"] == 1
    assert report.releases == 1


def test_an_export_for_no_release_or_another_entry_is_a_violation() -> None:
    assert _broken([*_log(), _export(4)]) == [
        "exported-release: r-1 exported a clip for entry 4, which is not a release of it"
        " logged before"
    ]
    assert _broken([*_log(), _export(5, rid="r-2")]) == [
        "exported-release: r-2 exported a clip but was never requested"
    ]


def test_an_export_of_a_release_that_named_its_clip_is_a_violation() -> None:
    assert _broken([*_log(custody=False), _export(5)]) == [
        "exported-release: r-1 exported a clip for a release that named its clip already"
    ]


def test_a_second_export_of_one_release_is_a_violation() -> None:
    got = _broken([*_log(), _export(5), _export(5)])
    assert got == ["exported-release: r-1 exported a second clip for the release at entry 5"]
