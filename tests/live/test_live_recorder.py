"""The recorder side of live viewing: a real agent running its own ffmpeg (``--record``)
cuts its camera's segments short while the camera has a live grant, and goes back to its
usual length once the grant is revoked; each segment is logged and archived.  (How soon
after its file closes is measured by ``benchmarks/live_bench.py``, not here.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.access.release import segment_path
from custodes.fleet.model import parse_time
from custodes.fleet.ops import add_agent
from tests.access.gateway_kit import AppCity, app_city
from tests.live.kit import approve, live

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

CAMERA = "cam-n2"
USUAL_S = 6
LIVE_S = 2


@pytest.fixture
def a(tmp_path: Path) -> Iterator[AppCity]:
    with app_city(tmp_path) as got:
        yield got


def _archived(a: AppCity) -> list[tuple[int, int]]:
    """(start, end) in ms of the camera's segments both logged and archived."""
    st = a.app.state
    rows = st.ledger.read(lambda _l: st.fleet.db.segments_for(CAMERA, 0, 1 << 50))
    return sorted(
        (r.start_ms, r.end_ms) for r in rows if segment_path(a.data, r.camera, r.start_ms)
    )


def _until(what: Callable[[], Any], timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        if time.monotonic() > deadline:
            raise AssertionError(why)
        time.sleep(0.1)
    return got


def test_a_live_grant_makes_its_cameras_segments_short_until_it_is_revoked(
    a: AppCity, tmp_path: Path
) -> None:
    st = a.app.state
    _agent, token = st.ledger.write(
        lambda log: add_agent(log, st.fleet.db, "rec-live", "recorder", cameras=[CAMERA])
    )
    watch = tmp_path / "rec"
    watch.mkdir()
    agent = subprocess.Popen(
        [sys.executable, "-m", "custodes", "agent", "--watch", str(watch), "--server",
         str(a.client.base_url), "--token", token, "--journal", str(tmp_path / "agent.db"),
         "--max-backoff", "1", "--heartbeat", "1", "--progress", "0",
         "--record", f"{CAMERA}=testsrc=size=320x240:rate=10",
         "--record-input-args", "-re -f lavfi",
         "--record-codec-args", "-c:v libx264 -preset ultrafast -g 10 -pix_fmt yuv420p",
         "--segment-seconds", str(USUAL_S), "--live-segment-seconds", str(LIVE_S)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _until(lambda: list((watch / CAMERA).glob("*.mp4")), 20, "the agent's ffmpeg never wrote")
        rid = live(a, cameras=[CAMERA])["request"]
        approve(a, rid)
        g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
        start = parse_time(g["start"], "start")

        # Told at its next heartbeat, the agent restarts its ffmpeg with short segments.
        def after_start() -> list[tuple[int, int]] | None:
            got = [s for s in _archived(a) if s[0] >= start]
            return got[:3] if len(got) >= 3 else None

        short = _until(after_start, 30, "no three segments logged after the grant started")
        assert all(end - begin <= LIVE_S * 1000 + 500 for begin, end in short), short
        r = a.client.post(f"/access/live/{rid}/revoke", json={"reason": "Enough."},
                          headers=a.auth("boris"))  # fmt: skip
        assert r.status_code == 200, r.text
        revoked = int(time.time() * 1000)
        # Then back to the usual length: a segment begun after the revocation is long.
        late = _until(
            lambda: [s for s in _archived(a) if s[0] >= revoked + 1000],
            USUAL_S + 20,
            "no segment begun after the revocation was logged",
        )
        assert late[0][1] - late[0][0] >= (USUAL_S - 1) * 1000, late
    finally:
        agent.terminate()  # it stops its ffmpeg, then exits
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
    assert agent.returncode == 0
    with pytest.raises(ProcessLookupError):  # and no ffmpeg of its own is left running
        os.killpg(agent.pid, 0)
