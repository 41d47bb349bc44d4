"""Everything in the data directory is its owner's alone: files 0600, folders 0700.

An instance is built through the CLI and a running server (init, cameras,
agents, users, an archived segment, a policy change) and then every path in
the data directory, SQLite's -wal and -shm files included, is checked for
group and other bits.  A directory left loose (by an older version, a copy or
a restore) is tightened when the instance is next opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import run_cli
from tests.fleet.conftest import DATA, FAST, Server, post


def _loose(data: Path) -> list[str]:
    """Every path under ``data`` (itself included) with a group or other permission bit."""
    found = []
    for p in [data, *data.rglob("*")]:
        st = p.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            found.append(f"{p.relative_to(data.parent)} {stat.filemode(st.st_mode)}")
    return found


def _segment_file(tmp: Path) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:  # the archive takes any bytes whose digest was logged
        return b"\x47" + bytes(187) * 10
    out = tmp / "seg.mp4"
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5",
         "-t", "1", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def _put(url: str, body: bytes, token: str) -> int:
    """PUT ``body``, waiting (a few seconds at most) for its segment's batch to be logged."""
    deadline = time.monotonic() + 15
    while True:
        req = urllib.request.Request(
            url, data=body, method="PUT", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            if err.code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_the_data_directory_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask: the code must not rely on the caller's
    try:
        data = tmp_path / "data"
        run_cli("init", "--origin", "test.custodes.example/log", data=data)
        (data / "fleet.json").write_text(json.dumps(FAST))
        os.chmod(data / "fleet.json", 0o600)  # written by the test, not by custodes
        run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
        added = run_cli(
            "agents", "add", "recorder-1", "--cameras", "MSK-0001", data=data, check=False
        )
        if added.returncode == 2:  # a version whose agents are not bound to cameras
            added = run_cli("agents", "add", "recorder-1", data=data)
        assert added.returncode == 0, added.stderr
        agent = added.stdout.decode()
        agent_token = agent.splitlines()[-1]
        admin = run_cli("users", "add", "root", "--role", "admin", data=data).stdout.decode()
        admin_token = admin.splitlines()[-1]
        run_cli("log", "append", "-", data=data, input=b'{"a": 1}\n')
        assert _loose(data) == []

        srv = Server(data)
        srv.start()
        try:
            clip = _segment_file(tmp_path)
            start = (datetime.now(UTC) - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
            seg = {
                "camera": "MSK-0001",
                "start": start,
                "duration": 1,
                "bytes": len(clip),
                "sha256": hashlib.sha256(clip).hexdigest(),
            }
            status, body = post(srv.url + "/fleet/segments", {"segments": [seg]}, agent_token)
            assert status == 200 and body["accepted"] == 1, body
            assert (
                _put(
                    f"{srv.url}/fleet/archive?camera=MSK-0001&start={start}",
                    clip,
                    agent_token,
                )
                == 200
            )
            req = urllib.request.Request(
                srv.url + "/access/policy",
                data=json.dumps({"max_cameras": 12}).encode(),
                method="PUT",
                headers={
                    "Authorization": f"Bearer {admin_token}",
                    "Content-Type": "application/json",
                },
            )
            with urllib.request.urlopen(req, timeout=20) as r:
                assert r.status == 200
            # While the server runs, its SQLite -wal and -shm files exist: check them too.
            names = {p.name for p in data.rglob("*")}
            assert {"log.db-wal", "fleet.db-wal", "policy.json"} <= names, names
            assert any((data / "archive").rglob("*.mp4")), "no segment was archived"
            assert _loose(data) == []
        finally:
            srv.stop()
        assert _loose(data) == []
    finally:
        os.umask(old)


def test_a_loose_data_directory_is_tightened_when_opened(instance: tuple[Path, str]) -> None:
    data, _ = instance
    os.chmod(data, 0o755)
    os.chmod(data / "log.db", 0o644)
    (data / "archive" / "X").mkdir(parents=True)
    os.chmod(data / "archive", 0o755)
    os.chmod(data / "archive" / "X", 0o775)
    (data / "archive" / "X" / "seg.mp4").write_bytes(b"x")
    os.chmod(data / "archive" / "X" / "seg.mp4", 0o664)
    assert len(_loose(data)) == 5
    out = run_cli("log", "checkpoint", data=data)
    assert _loose(data) == []
    assert b"removed group and other permissions" in out.stderr
