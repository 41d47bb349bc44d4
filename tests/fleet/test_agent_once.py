"""``custodes agent --once`` archives everything it found, not only the first round's files.

The agent uploads files to the archive twenty at a time; with ``--once`` it used to stop
after one round and exit 1 with most of the footage still only in the recorder's folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet.conftest import Server

FFMPEG = shutil.which("ffmpeg")


@pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")
def test_once_archives_more_files_than_one_round_takes(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    data, token = fleet
    rec = tmp_path / "rec" / "MSK-0001"
    rec.mkdir(parents=True)
    assert FFMPEG is not None
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=5",
         "-t", "45", "-c:v", "libx264", "-g", "5", "-f", "segment", "-segment_time", "1",
         "-reset_timestamps", "1", str(rec / "%03d.ts")],
        check=True, timeout=60,
    )  # fmt: skip
    files = sorted(rec.glob("*.ts"))
    total = len(files)
    assert total > 40
    t0 = time.time() - total - 60
    for k, f in enumerate(files):  # closed a second apart, as a recorder in real time does
        os.utime(f, (t0 + k + 1, t0 + k + 1))
    srv = Server(data)
    srv.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "custodes", "agent", "--watch", str(rec.parent), "--server",
             srv.url, "--token", token, "--journal", str(tmp_path / "j.db"), "--settle", "0",
             "--once", "--json"],
            capture_output=True, timeout=300,
        )  # fmt: skip
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr.decode()[-600:]
    done = json.loads(proc.stdout.decode().splitlines()[-1])
    assert done["sent"] == done["uploaded"] == total, done
    archived = [p for p in (data / "archive" / "MSK-0001").rglob("*") if p.is_file()]
    assert len(archived) == total
