"""A small city for the gateway tests: a real log, cameras, recorded segments, users.

:func:`make_city` builds an instance in a temporary folder with three cameras
(two in district ``north``, one in ``south``), one minute of recorded footage
per camera (six real 10-second H.264 segments each, made by ffmpeg, logged
and archived), and one user of every role, plus a second investigator and
approver and an approver scoped to ``north`` only.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from custodes.access.identity import Identities, Scope, User
from custodes.access.service import AccessService, RequestInput
from custodes.access.users import add_user, revoke_user
from custodes.fleet.model import Camera, format_time, now_ms
from custodes.fleet.ops import FleetSettings, import_cameras, ingest_segments
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance
from custodes.web.service import LedgerService

SEGMENT_S = 10
SEGMENTS = 6
CAMERAS = (
    Camera(id="cam-n1", lat=55.7600, lon=37.6100, district="north", zone="metro"),
    Camera(id="cam-n2", lat=55.7610, lon=37.6120, district="north"),
    Camera(id="cam-s1", lat=55.7000, lon=37.6000, district="south"),
)
USERS: tuple[tuple[str, str, str], ...] = (
    ("ivan", "investigator", ""),
    ("olga", "investigator", ""),
    ("anna", "approver", ""),
    ("boris", "approver", ""),
    ("nina", "approver", "district:north"),
    ("jude", "judge", ""),
    ("audrey", "auditor", ""),
    ("adam", "admin", ""),
    ("oscar", "operator", ""),
)

_CACHE: dict[int, bytes] = {}


def segment_bytes(n: int) -> bytes:
    """A distinct 10-second 160x120 test-pattern clip (cached by n)."""
    if n not in _CACHE:
        proc = subprocess.run(
            [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={SEGMENT_S}",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
                "-metadata", f"comment=segment {n}", "-pix_fmt", "yuv420p",
                "-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "pipe:1",
            ],
            capture_output=True,
            check=True,
        )  # fmt: skip
        _CACHE[n] = proc.stdout
    return _CACHE[n]


@dataclass
class City:
    data: Path
    ledger: LedgerService
    fleet: FleetDB
    ids: Identities
    access: AccessService
    users: dict[str, User]
    tokens: dict[str, str]
    start_ms: int
    end_ms: int
    closed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.access.close()
            self.ids.close()
            self.fleet.close()
            self.ledger.close()

    def entries(self) -> list[dict[str, Any]]:
        import json

        def read(log: Any) -> list[bytes]:
            return list(log.store.read_entries(0, log.store.next_index()))

        return [json.loads(e) for e in self.ledger.read(read)]

    def inp(self, **kw: Any) -> RequestInput:
        base: dict[str, Any] = {
            "from_ms": self.start_ms + 5_000,
            "to_ms": self.start_ms + 25_000,
            "purpose": "investigation",
            "case": "CASE-2026-0001",
            "justification": "A theft at the kiosk by the metro entrance.",
            "cameras": ("cam-n1",),
        }
        base.update(kw)
        return RequestInput(**base)

    def revoke(self, name: str) -> None:
        self.ledger.write(lambda log: revoke_user(log, self.ids, name))


def populate(data: Path, ledger: LedgerService, fleet: FleetDB, ids: Identities) -> dict[str, Any]:
    """Cameras, segments (logged and archived) and users into an open instance."""
    settings = FleetSettings.load(data)
    ledger.write(lambda log: import_cameras(log, fleet, CAMERAS))
    start = (now_ms() // 1000 - 600) * 1000
    items = []
    n = 0
    for cam in CAMERAS:
        for i in range(SEGMENTS):
            body = segment_bytes(n)
            n += 1
            t = start + i * SEGMENT_S * 1000
            stamp = format_time(t)
            folder = data / "archive" / cam.id / stamp[:10]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / (stamp.replace(":", "-") + ".mp4")).write_bytes(body)
            items.append(
                {
                    "camera": cam.id,
                    "start": stamp,
                    "duration": SEGMENT_S,
                    "bytes": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            )
    rep = ledger.write(lambda log: ingest_segments(log, fleet, items, settings))
    assert rep["accepted"] == len(items), rep
    users: dict[str, User] = {}
    tokens: dict[str, str] = {}
    for name, role, scope in USERS:
        user, token = ledger.write(
            lambda log, n=name, r=role, s=scope: add_user(log, ids, n, r, Scope.parse(s))
        )
        users[name], tokens[name] = user, token
    return {
        "users": users,
        "tokens": tokens,
        "start": start,
        "end": start + SEGMENTS * SEGMENT_S * 1000,
    }


def make_city(tmp: Path, *, store: str | None = None) -> City:
    data = tmp / "data"
    inst = Instance.init(data, origin="test.custodes.example/log", store=store)
    ledger = LedgerService(inst, interval=0.1)
    fleet = FleetDB.for_instance(inst.path)
    ids = Identities(inst.path)
    made = populate(inst.path, ledger, fleet, ids)
    access = AccessService(ledger, fleet, ids, inst.path)
    return City(
        inst.path, ledger, fleet, ids, access, made["users"], made["tokens"], made["start"],
        made["end"],
    )  # fmt: skip


@pytest.fixture
def city(tmp_path: Path) -> Iterator[City]:
    """A fresh city on the embedded store (import this fixture into a test module)."""
    c = make_city(tmp_path)
    try:
        yield c
    finally:
        c.close()


@dataclass
class AppCity:
    """The same city behind the HTTP app (in process), for the HTTP tests."""

    client: Any
    app: Any
    data: Path
    tokens: dict[str, str]
    users: dict[str, User]
    start_ms: int
    end_ms: int

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def body(self, **kw: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "cameras": ["cam-n1"],
            "from": format_time(self.start_ms + 5_000),
            "to": format_time(self.start_ms + 25_000),
            "purpose": "investigation",
            "case": "CASE-2026-0001",
            "justification": "A theft at the kiosk by the metro entrance.",
        }
        base.update(kw)
        return base

    def approved(self) -> str:
        r = self.client.post("/access/requests", json=self.body(), headers=self.auth("ivan"))
        assert r.status_code == 201, r.text
        rid: str = r.json()["request"]
        r = self.client.post(f"/access/requests/{rid}/approve", json={}, headers=self.auth("anna"))
        assert r.status_code == 200, r.text
        return rid


@contextmanager
def app_city(tmp: Path, *, store: str | None = None) -> Iterator[AppCity]:
    """The app served by uvicorn in a thread of this process, on a loopback port.

    In process, so a test can reach ``app.state`` (to break the log's store);
    over real HTTP, so responses are what a client sees.
    """
    import threading
    import time

    import httpx
    import uvicorn

    from custodes.web.app import Settings, create_app
    from tests.conftest import free_port

    data = tmp / "data"
    Instance.init(data, origin="test.custodes.example/log", store=store)
    app = create_app(Settings(data=data, integrate_interval=0.1))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            st = app.state
            made = populate(data, st.ledger, st.fleet.db, st.identities)
            yield AppCity(
                client, app, data.resolve(), made["tokens"], made["users"], made["start"],
                made["end"],
            )  # fmt: skip
    finally:
        server.should_exit = True
        thread.join(timeout=30)
