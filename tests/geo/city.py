"""A tiny synthetic city for the geography and dashboard tests.

Three square districts side by side (west, centre, east), each 0.01° of
longitude by 0.01° of latitude near Moscow's latitude; cameras at known spots
so that the expected coverage figures can be worked out by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LAT0, LON0 = 55.75, 37.60
STEP = 0.01


def square(lon: float, lat: float, size: float = STEP) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


DISTRICTS = [
    {"id": "west", "name": "West", "population": 20000, "lon": LON0},
    {"id": "centre", "name": "Centre", "population": 5000, "lon": LON0 + STEP},
    {"id": "east", "name": "East", "population": None, "lon": LON0 + 2 * STEP},
]

# (id, district, lat offset, lon offset within the district, direction, face-recognition-capable)
CAMERAS = [
    ("cam-w1", "west", 0.002, 0.002, 90.0, False),
    ("cam-c1", "centre", 0.005, 0.005, 0.0, True),
    ("cam-c2", "centre", 0.0052, 0.0052, 180.0, False),
    ("cam-c3", "centre", 0.008, 0.001, None, True),
    ("cam-e1", "east", 0.001, 0.009, 270.0, False),
    ("cam-out", None, -0.005, 0.0, 45.0, False),  # south of every district
]
EXPECTED = {"west": 1, "centre": 3, "east": 1}
EXPECTED_OUTSIDE = 1

# Places: the "school" sits next to cam-c1/cam-c2; the "official residence" has no camera near.
PLACES = [
    ("school-1", "school", "School No. 1", LAT0 + 0.0051, LON0 + STEP + 0.0051),
    ("school-2", "school", "School No. 2", LAT0 + 0.009, LON0 + 0.009),
    ("res-1", "official-residence", "The Mayor's residence", LAT0 + 0.009, LON0 + 2 * STEP + 0.001),
]


def _lon(district: str | None) -> float:
    for d in DISTRICTS:
        if d["id"] == district:
            return float(d["lon"])  # type: ignore[arg-type]
    return LON0


def districts_geojson() -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": d["id"], "name": d["name"], "population": d["population"]},
                "geometry": square(float(d["lon"]), LAT0),  # type: ignore[arg-type]
            }
            for d in DISTRICTS
        ],
    }


def cameras_geojson() -> dict[str, Any]:
    feats = []
    for cid, district, dlat, dlon, direction, frc in CAMERAS:
        props: dict[str, Any] = {
            "id": cid,
            "operator": "City Transport",
            "capabilities": {"face_recognition_capable": frc},
        }
        if direction is not None:
            props["direction"] = direction
            props["field_of_view"] = 90.0
        feats.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {
                    "type": "Point",
                    "coordinates": [_lon(district) + dlon, LAT0 + dlat],
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def places_geojson() -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": pid, "category": cat, "name": name},
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
            }
            for pid, cat, name, lat, lon in PLACES
        ],
    }


def write(folder: Path) -> dict[str, Path]:
    """Write the three files into ``folder``; their paths by name."""
    out = {}
    for name, doc in (
        ("districts", districts_geojson()),
        ("cameras", cameras_geojson()),
        ("places", places_geojson()),
    ):
        path = folder / f"{name}.geojson"
        path.write_text(json.dumps(doc))
        out[name] = path
    return out


# -- a served instance holding the city, some access history and some outages -------------

DAY = "2026-11-01"


def _ms(text: str) -> int:
    from custodes.fleet.model import parse_time

    return parse_time(text)


def history() -> list[dict[str, Any]]:
    """Access requests and outages, built with the log's own entry builders.

    Three disclosed requests: r1 (investigation; approved and released) on
    cam-c1, r2 (investigation; denied) on cam-c2, r3 (traffic; approved) on
    cam-e1.  The policy publishes counts of 2 or more, so near the school
    (cam-c1, cam-c2) approvals, denials and releases read "fewer than 2".
    """
    from custodes.access import entries as A
    from custodes.fleet import entries as F

    t = _ms(f"{DAY}T12:00:00Z")
    f, to = _ms(f"{DAY}T08:00:00Z"), _ms(f"{DAY}T09:00:00Z")
    policy = {"purposes": ["investigation", "traffic"], "min_count": 2, "disclosure_delay_s": 3600}
    out = [A.policy_changed(1, policy, t)]
    for rid, purpose, cams, district, sensitive in (
        ("r1", "investigation", ["cam-c1"], "centre", True),
        ("r2", "investigation", ["cam-c2"], "centre", False),
        ("r3", "traffic", ["cam-e1"], "east", False),
    ):
        out.append(
            A.access_requested(
                rid,
                "00" * 32,
                "u-0123456789abcdef",
                purpose,
                cameras=len(cams),
                districts=[district],
                window_s=3600,
                sensitive=sensitive,
                approvals=1,
                judge=sensitive,
                policy_version=1,
                now_ms=t,
            )  # fmt: skip
        )
    out += [
        A.access_approved(
            "r1",
            "u-1111111111111111",
            "judge",
            expires_ms=t + 86400_000,
            unredacted=False,
            complete=True,
            reason="ok",
            now_ms=t + 60_000,
        ),  # fmt: skip
        A.access_released(
            "r1", "u-0123456789abcdef", ["ab" * 32], {"method": "none"}, "cd" * 32, 10, t + 120_000
        ),
        A.access_denied("r2", "u-1111111111111111", "approver", "too broad", t + 60_000),
        A.access_approved(
            "r3",
            "u-1111111111111111",
            "approver",
            expires_ms=t + 86400_000,
            unredacted=False,
            complete=True,
            reason="ok",
            now_ms=t + 60_000,
        ),  # fmt: skip
        A.anomaly_flagged("f1", "volume", "u-0123456789abcdef", "many", ["r1", "r2"], t),
        A.anomaly_resolved("f1", "u-2222222222222222", "explained", t + 3600_000),
        A.anomaly_flagged("f2", "odd-hours", "u-0123456789abcdef", "night", ["r3"], t),
    ]
    for rid, cams in (("r1", ["cam-c1"]), ("r2", ["cam-c2"]), ("r3", ["cam-e1"])):
        out.append(A.access_disclosed(rid, cams, f, to, t + 7200_000))
    # cam-w1 was silent for an hour in the morning and is recording again.
    morning = _ms(f"{DAY}T06:00:00Z")
    out.append(F.camera_silent("cam-w1", morning, morning + 60_000))
    out.append(F.camera_back("cam-w1", morning, morning + 3600_000))
    # cam-c3 fell silent at 22:00 and is still silent; the outage was declared afterwards.
    night = _ms(f"{DAY}T22:00:00Z")
    out.append(F.camera_silent("cam-c3", night, night + 60_000))
    out.append(
        F.declaration("outage", ["cam-c3"], night, night + 3600_000, "power cut", night + 7200_000)
    )
    return out


def make_instance(folder: Path) -> tuple[Path, str]:
    """init, import the cameras, districts and places, append the history: (data, vkey)."""
    from tests.conftest import run_cli

    files = write(folder)
    data = folder / "data"
    out = run_cli("init", "--origin", "city.custodes.example/log", data=data)
    vkey = out.stdout.decode().strip().splitlines()[-1]
    run_cli("cameras", "import", str(files["cameras"]), data=data)
    run_cli("geo", "districts", "import", str(files["districts"]), data=data)
    run_cli("geo", "places", "import", str(files["places"]), data=data)
    lines = "".join(json.dumps(e) + "\n" for e in history()).encode()
    run_cli("log", "append", "-", data=data, input=lines)
    run_cli("log", "checkpoint", data=data)
    return data, vkey


@contextmanager
def serving(data: Path) -> Iterator[str]:
    """``custodes serve`` on a free loopback port; its base URL."""
    from tests.conftest import free_port, wait_http

    port = free_port()
    log = open(data.parent / "server.log", "wb")  # noqa: SIM115 - closed below
    cmd = [sys.executable, "-m", "custodes", "--data", str(data), "serve", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--interval", "0.1"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
