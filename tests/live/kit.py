"""Live-grant helpers over the in-process gateway of :mod:`tests.access.gateway_kit`:
segments that start after a grant did (logged and archived as an agent would), and the
app's clock moved on."""

from __future__ import annotations

import hashlib
from typing import Any

from custodes.fleet.model import format_time
from custodes.fleet.ops import FleetSettings, ingest_segments
from tests.access.gateway_kit import SEGMENT_S, AppCity, segment_bytes

LIVE = {
    "cameras": ["cam-n1"],
    "minutes": 5,
    "purpose": "public-safety",
    "case": "CASE-2026-0077",
    "justification": "A march passes the metro entrance; watch for a crush at the gates.",
}


def record_after(
    a: AppCity, start_ms: int, n: int, camera: str = "cam-n1", first: int = 100
) -> list[str]:
    """``n`` ten-second segments of ``camera`` from ``start_ms``, logged and archived; their
    playlist names."""
    st = a.app.state
    settings = FleetSettings.load(a.data)
    items: list[object] = []
    names: list[str] = []
    for i in range(n):
        body = segment_bytes(first + i)  # distinct bytes: a digest sent again is a re-send
        t = start_ms + i * SEGMENT_S * 1000
        stamp = format_time(t)
        folder = a.data / "archive" / camera / stamp[:10]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (stamp.replace(":", "-") + ".mp4")).write_bytes(body)
        items.append({"camera": camera, "start": stamp, "duration": SEGMENT_S,
                      "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})  # fmt: skip
        names.append(f"{camera}_{t}")
    rep = st.ledger.write(lambda log: ingest_segments(log, st.fleet.db, items, settings))
    assert rep["accepted"] == n, rep
    return names


def live(a: AppCity, who: str = "ivan", **kw: Any) -> dict[str, Any]:
    r = a.client.post("/access/live", json={**LIVE, **kw}, headers=a.auth(who))
    assert r.status_code == 201, r.text
    got: dict[str, Any] = r.json()
    return got


def approve(a: AppCity, rid: str, who: str = "anna", **kw: Any) -> dict[str, Any]:
    r = a.client.post(f"/access/requests/{rid}/approve", json=kw, headers=a.auth(who))
    assert r.status_code == 200, r.text
    got: dict[str, Any] = r.json()
    return got


def set_clock(a: AppCity, ms: int) -> None:
    a.app.state.fleet.clock = lambda: ms
