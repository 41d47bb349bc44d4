"""A small city's public log, built from the real entry builders into a real instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from custodes.access import entries as A
from custodes.fleet import entries as F
from custodes.fleet.model import Camera, Capabilities, parse_time
from custodes.geo import entries as G
from custodes.ledger.instance import Instance
from custodes.records.canonical import canonicalize


def t(text: str) -> int:
    return parse_time(text)


def _square(lon: float, lat: float, d: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def city_entries() -> list[dict[str, Any]]:
    """A month (November 2026) of a small city, with a little of October and December."""
    out: list[dict[str, Any]] = []
    oct1 = t("2026-10-01T09:00:00Z")
    out.append(G.district_defined("north", "North", 20000, 2.0, _square(37.60, 55.80, 0.02), oct1))
    out.append(G.district_defined("south", "South", 50000, 4.0, _square(37.60, 55.70, 0.04), oct1))
    out.append(G.place_defined("p1", "worship", "Church", 55.801, 37.601, oct1))
    out.append(G.place_defined("p2", "school", "School 5", 55.75, 37.70, oct1))
    out.append(G.place_defined("p3", "protest-site", "Square", 55.7005, 37.6005, oct1))
    cams = [
        Camera(
            id="N-1",
            lat=55.8010,
            lon=37.6010,
            district="north",
            type="dome",
            capabilities=Capabilities(face_recognition_capable=True),
        ),
        Camera(id="N-2", lat=55.8100, lon=37.6100, district="north", type="fixed"),
        Camera(id="S-1", lat=55.7004, lon=37.6004, district="south", type="fixed"),
        Camera(
            id="S-2",
            lat=55.7200,
            lon=37.6200,
            district="south",
            type="panning",
            capabilities=Capabilities(ptz=True, face_recognition_capable=True),
        ),
    ]
    for seq, cam in enumerate(cams):
        out.append(F.camera_registered(cam, seq, oct1))
    late = Camera(id="S-3", lat=55.71, lon=37.61, district="south", type="dome")
    out.append(F.camera_registered(late, 4, t("2026-11-03T10:00:00Z")))
    out.append(F.camera_retired("N-2", "vandalised", t("2026-11-20T10:00:00Z")))
    out.append(F.camera_changed("S-1", {"operator": "Metro"}, t("2026-11-04T10:00:00Z")))
    out.append(F.segments_batch(0, 120, b"\x01" * 32, t("2026-11-02T00:01:00Z")))
    out.append(F.segments_batch(1, 80, b"\x02" * 32, t("2026-10-30T00:01:00Z")))
    users = {
        "inv": "u-" + "1" * 16,
        "inv2": "u-" + "2" * 16,
        "app": "u-" + "3" * 16,
        "judge": "u-" + "4" * 16,
        "aud": "u-" + "5" * 16,
    }
    for key, role in (
        ("inv", "investigator"),
        ("inv2", "investigator"),
        ("app", "approver"),
        ("judge", "judge"),
        ("aud", "auditor"),
    ):
        out.append(A.user_added(users[key], role, "all", oct1))
    policy = {"purposes": ["investigation", "missing-person", "traffic"], "min_count": 3}
    out.append(A.policy_changed(1, policy, oct1))
    out.append(A.policy_changed(2, {**policy, "min_count": 2}, t("2026-11-15T00:00:00Z")))

    def request(
        rid: str, who: str, purpose: str, when: int, districts: list[str], sensitive: bool = False
    ) -> None:
        out.append(
            A.access_requested(
                rid,
                "ab" * 32,
                users[who],
                purpose,
                cameras=2,
                districts=districts,
                window_s=3600,
                sensitive=sensitive,
                approvals=1,
                judge=sensitive,
                policy_version=1,
                now_ms=when,
            )
        )

    def approve(rid: str, who: str, when: int, unredacted: bool = False) -> None:
        out.append(
            A.access_approved(
                rid,
                users[who],
                "approver",
                expires_ms=when + 86400_000,
                unredacted=unredacted,
                complete=True,
                reason="ok",
                now_ms=when,
            )
        )

    def release(rid: str, when: int, redacted: bool = True) -> None:
        red = {"faces": True, "plates": True, "method": "blur"} if redacted else {"method": "none"}
        out.append(A.access_released(rid, users["inv"], ["cd" * 32], red, "ef" * 32, 1000, when))

    # October: one request, released.
    request("r0", "inv", "investigation", t("2026-10-10T10:00:00Z"), ["north"])
    approve("r0", "app", t("2026-10-10T11:00:00Z"))
    release("r0", t("2026-10-10T12:00:00Z"))
    # November.
    request("r1", "inv", "investigation", t("2026-11-02T10:00:00Z"), ["north"])
    approve("r1", "app", t("2026-11-02T10:30:00Z"))
    release("r1", t("2026-11-02T11:00:00Z"))
    request("r2", "inv", "missing-person", t("2026-11-05T03:00:00Z"), ["south"], sensitive=True)
    approve("r2", "judge", t("2026-11-05T04:00:00Z"), unredacted=True)
    release("r2", t("2026-11-05T05:00:00Z"), redacted=False)
    request("r3", "inv2", "traffic", t("2026-11-06T10:00:00Z"), ["north", "south"])
    out.append(
        A.access_denied("r3", users["app"], "approver", "too broad", t("2026-11-06T12:00:00Z"))
    )
    request("r4", "inv2", "investigation", t("2026-11-07T10:00:00Z"), ["south"])
    approve("r4", "app", t("2026-11-07T10:05:00Z"))
    out.append(A.access_expired("r4", t("2026-11-08T10:05:00Z")))
    out.append(
        A.access_disclosed(
            "r1",
            ["N-1"],
            t("2026-11-01T08:00:00Z"),
            t("2026-11-01T09:00:00Z"),
            t("2026-11-25T00:00:00Z"),
        )
    )
    out.append(
        A.access_revealed(
            "r1",
            users["aud"],
            "case closed",
            b"\x00" * 16,
            {"case": "CASE-2026-0001"},
            t("2026-11-26T00:00:00Z"),
        )
    )
    out.append(
        A.anomaly_flagged(
            "f1", "odd-hours", users["inv"], "At night.", ["r2"], t("2026-11-05T03:01:00Z")
        )
    )
    out.append(
        A.anomaly_flagged(
            "f2", "volume", users["inv2"], "Many.", ["r3", "r4"], t("2026-11-07T11:00:00Z")
        )
    )
    out.append(A.anomaly_resolved("f1", users["aud"], "justified", t("2026-11-10T00:00:00Z")))
    # Outages.
    out.append(F.camera_silent("S-1", t("2026-11-09T22:00:00Z"), t("2026-11-09T22:01:00Z")))
    out.append(F.camera_silent("S-2", t("2026-11-09T22:00:00Z"), t("2026-11-09T22:01:00Z")))
    out.append(
        F.correlated(
            ["S-1", "S-2"],
            55.71,
            37.61,
            300.0,
            t("2026-11-09T22:00:00Z"),
            t("2026-11-09T22:01:00Z"),
        )
    )
    out.append(F.camera_back("S-1", t("2026-11-09T22:00:00Z"), t("2026-11-10T06:00:00Z")))
    out.append(
        F.declaration(
            "outage",
            ["S-2"],
            t("2026-11-09T21:00:00Z"),
            t("2026-11-10T06:00:00Z"),
            "power",
            t("2026-11-10T08:00:00Z"),
        )
    )
    out.append(
        F.declaration(
            "maintenance",
            ["N-1"],
            t("2026-11-28T01:00:00Z"),
            t("2026-11-28T03:00:00Z"),
            "lens",
            t("2026-11-12T08:00:00Z"),
        )
    )
    # December: outside the period.
    request("r5", "inv", "investigation", t("2026-12-01T10:00:00Z"), ["north"])
    return out


def build_log(data: Path, entries: list[dict[str, Any]] | None = None) -> Instance:
    """A real instance at ``data`` holding ``entries`` (default: the city), integrated."""
    inst = Instance.init(data, origin="reports.custodes.example/log")
    with inst.open_log() as log:
        log.append([canonicalize(e) for e in (city_entries() if entries is None else entries)])
        log.integrate()
    return inst


@pytest.fixture(scope="session")
def city_log(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """The city log, built once per session: tests must only read it."""
    return build_log(tmp_path_factory.mktemp("city") / "data")
