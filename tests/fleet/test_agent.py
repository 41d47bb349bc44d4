"""The recorder agent beside a real ffmpeg recorder, across a server crash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custodes.fleet.agent import scan
from tests.conftest import run_cli
from tests.fleet.conftest import Server

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")


def _ffmpeg(out: str, seconds: int, src: str, *extra: str) -> subprocess.Popen[bytes]:
    assert FFMPEG is not None
    return subprocess.Popen(
        [
            FFMPEG,
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            f"{src}=size=320x240:rate=10",
            "-t",
            str(seconds),
            "-g",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "segment",
            "-segment_time",
            "1",
            "-reset_timestamps",
            "1",
            *extra,
            out,
        ],
        env={**os.environ, "TZ": "UTC"},
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_agent_survives_a_server_crash_without_losing_or_duplicating_a_digest(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    data, token = fleet
    rec = tmp_path / "rec"
    (rec / "MSK-0001").mkdir(parents=True)
    now = datetime.now(UTC)
    for t in (now, now + timedelta(seconds=30)):  # Frigate's folders for this hour (and the next)
        (rec / t.strftime("%Y-%m-%d") / t.strftime("%H") / "MSK-0002").mkdir(
            parents=True, exist_ok=True
        )
    srv = Server(data)
    srv.start()
    journal = tmp_path / "agent.db"
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "custodes",
            "agent",
            "--watch",
            str(rec),
            "--server",
            srv.url,
            "--token",
            token,
            "--journal",
            str(journal),
            "--settle",
            "0.5",
            "--poll",
            "0.2",
            "--heartbeat",
            "1",
            "--max-backoff",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ff = [
            _ffmpeg(str(rec / "MSK-0001" / "%03d.mp4"), 6, "testsrc"),
            _ffmpeg(
                str(rec / "%Y-%m-%d" / "%H" / "MSK-0002" / "%M.%S.mp4"),
                6,
                "testsrc2",
                "-strftime",
                "1",
            ),
        ]
        time.sleep(2.5)
        srv.kill()  # mid-stream, as a crash
        time.sleep(2.0)
        srv.start()
        for p in ff:
            assert p.wait(timeout=30) == 0
        files = sorted(s.path for s in scan(rec))
        assert len(files) >= 10
        deadline = time.monotonic() + 40
        while True:
            j = sqlite3.connect(journal)
            try:
                sent, stored = j.execute(
                    "SELECT SUM(state = 'sent'), SUM(uploaded = 1) FROM files"
                ).fetchone()
            finally:
                j.close()
            if sent == stored == len(files):
                break
            assert time.monotonic() < deadline, f"{sent} sent, {stored} archived of {len(files)}"
            time.sleep(0.3)
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    time.sleep(0.3)  # one integration
    # Every file's digest is logged exactly once, for its own camera.
    db = sqlite3.connect(f"file:{data / 'fleet.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT camera, sha256 FROM segments").fetchall()
        logged = db.execute(
            "SELECT COUNT(*), SUM(count) FROM batches WHERE log_index IS NOT NULL"
        ).fetchone()
        batches = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    finally:
        db.close()
    want = sorted((f.parent.name, _sha(f)) for f in files)
    assert sorted(rows) == want
    assert logged == (batches, len(files))
    # The archive holds each file, checked against its logged digest.
    archived = sorted(
        (p.parts[-3], _sha(p)) for p in (data / "archive").rglob("*.mp4") if p.is_file()
    )
    assert archived == want

    # verify-footage: the untouched file passes; one changed byte fails, saying what differs.
    one = next(f for f in files if f.parent.name == "MSK-0001")
    ok = run_cli(
        "fleet",
        "verify-footage",
        str(one),
        "--camera",
        "MSK-0001",
        "--json",
        data=data,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rep = json.loads(ok.stdout)
    assert rep["ok"] and rep["segment"]["verified"]
    remote = run_cli(
        "fleet", "verify-footage", str(one), "--camera", "MSK-0001", "--server", srv.url,
        data=data, check=False,
    )  # fmt: skip
    assert remote.returncode == 0 and remote.stdout.startswith(b"verified: ")
    wrong_cam = run_cli(
        "fleet", "verify-footage", str(one), "--camera", "MSK-0002", data=data, check=False
    )
    assert wrong_cam.returncode == 1 and b"not for camera MSK-0002" in wrong_cam.stdout
    tampered = tmp_path / "tampered.mp4"
    blob = bytearray(one.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    tampered.write_bytes(bytes(blob))
    bad = run_cli(
        "fleet", "verify-footage", str(tampered), "--camera", "MSK-0001", data=data, check=False
    )
    assert bad.returncode == 1
    assert b"differs from the segment camera MSK-0001 logged" in bad.stdout
    # The archive refuses a changed file for a logged segment.
    start = json.loads(ok.stdout)["segment"]["start"]
    req = urllib.request.Request(
        f"{srv.url}/fleet/archive?camera=MSK-0001&start={start}",
        data=tampered.read_bytes(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=20)
    assert refused.value.code == 422
    assert "differs from the one logged" in json.loads(refused.value.read())["error"]
    refused.value.close()
    srv.stop()


def test_scan_understands_ffmpeg_and_frigate_layouts(tmp_path: Path) -> None:
    (tmp_path / "cam-a").mkdir()
    (tmp_path / "cam-a" / "000.mp4").write_bytes(b"x")
    (tmp_path / "cam-a" / "20260102T030405.ts").write_bytes(b"x")
    frigate = tmp_path / "2026-01-02" / "03" / "front_door"
    frigate.mkdir(parents=True)
    (frigate / "04.05.mp4").write_bytes(b"x")
    (tmp_path / "cam-a" / "notes.txt").write_bytes(b"x")
    (tmp_path / "loose.mp4").write_bytes(b"x")
    found = {(s.path.name, s.camera, s.start_ms) for s in scan(tmp_path)}
    t = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1000)
    assert found == {
        ("000.mp4", "cam-a", None),
        ("20260102T030405.ts", "cam-a", t),
        ("04.05.mp4", "front_door", t),
    }
