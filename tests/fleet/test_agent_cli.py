"""``custodes agent`` as an operator runs it (issue 15, item 19): it says how far it is while
it watches a real ffmpeg recorder (on stderr, and as JSON Lines with --json), and a journal
it cannot use is refused in one sentence that names the file."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet.conftest import Server

FFMPEG = shutil.which("ffmpeg")


def _record(folder: Path, seconds: int) -> None:
    """ffmpeg's segment muxer writing one-second .ts segments of a test picture."""
    assert FFMPEG is not None
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-t", str(seconds), "-c:v", "libx264", "-g", "10", "-f", "segment",
         "-segment_time", "1", "-reset_timestamps", "1", str(folder / "%03d.ts")],
        check=True, timeout=60,
    )  # fmt: skip


def _agent(rec: Path, url: str, token: str, journal: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "custodes", "agent", "--watch", str(rec), "--server", url,
            "--token", token, "--journal", str(journal), "--settle", "0", "--poll", "0.2",
            "--heartbeat", "1", "--max-backoff", "1", *extra]  # fmt: skip


@pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")
def test_the_agent_reports_segments_seen_sent_and_uploaded_as_it_watches(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    data, token = fleet
    rec = tmp_path / "rec"
    (rec / "MSK-0001").mkdir(parents=True)
    srv = Server(data)
    srv.start()
    err_path = tmp_path / "agent.err"
    try:
        with open(err_path, "wb") as err:
            agent = subprocess.Popen(
                _agent(rec, srv.url, token, tmp_path / "j.db", "--json", "--progress", "0.2"),
                stdout=subprocess.PIPE,
                stderr=err,
            )
            try:
                time.sleep(1.0)
                _record(rec / "MSK-0001", 4)
                total = len(list((rec / "MSK-0001").glob("*.ts")))
                assert total >= 3
                deadline = time.monotonic() + 120  # a loaded machine
                while "uploaded " + str(total) not in err_path.read_text():
                    assert agent.poll() is None, err_path.read_text()
                    assert time.monotonic() < deadline, err_path.read_text()
                    time.sleep(0.2)
            finally:
                agent.send_signal(signal.SIGTERM)
                out, _ = agent.communicate(timeout=30)
    finally:
        srv.stop()
    assert agent.returncode == 0
    said = [line for line in err_path.read_text().splitlines() if "segments seen" in line]
    assert len(said) >= 2, said  # more than the last word: it spoke while it worked
    assert said[-1].startswith(f"custodes agent: segments seen {total}, sent {total},")
    lines = [json.loads(line) for line in out.decode().splitlines()]
    progress = [x for x in lines if x["event"] == "progress"]
    assert progress and lines[-1]["event"] == "done"
    seen = [x["seen"] for x in progress]
    assert seen == sorted(seen) and seen[-1] == total  # it counts up, never back
    assert lines[-1] == {"event": "done", "seen": total, "sent": total, "uploaded": total,
                         "pending": 0, "refused": 0, "held": 0, "exit_code": 0}  # fmt: skip


@pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")
def test_the_agent_once_prints_its_totals_as_json(fleet: tuple[Path, str], tmp_path: Path) -> None:
    data, token = fleet
    rec = tmp_path / "rec"
    _record(rec / "MSK-0001", 2)
    total = len(list((rec / "MSK-0001").glob("*.ts")))
    srv = Server(data)
    srv.start()
    try:
        proc = subprocess.run(_agent(rec, srv.url, token, tmp_path / "j.db", "--once", "--json"),
                              capture_output=True, timeout=120)  # fmt: skip
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr.decode()
    done = json.loads(proc.stdout.decode().splitlines()[-1])
    assert done["event"] == "done" and done["seen"] == done["sent"] == total
    assert f"custodes agent: segments seen {total}, sent {total}" in proc.stderr.decode()


def test_a_journal_the_agent_cannot_use_is_refused_naming_the_file(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    _data, token = fleet
    rec = tmp_path / "rec"
    rec.mkdir()
    garbage = tmp_path / "notes.txt"
    garbage.write_text("my shopping list, not a journal\n" * 100)
    other = tmp_path / "other.db"
    import sqlite3

    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE files (name TEXT)")
    conn.commit()
    conn.close()
    for journal, words in (
        (garbage, f"the agent's journal {garbage} is not an agent journal"),
        (other, f"the agent's journal {other} is not an agent journal"),
        (tmp_path, f"Invalid value for '--journal': File '{tmp_path}' is a directory."),
    ):
        proc = subprocess.run(_agent(rec, "http://127.0.0.1:9", token, journal, "--once"),
                              capture_output=True, timeout=60)  # fmt: skip
        err = proc.stderr.decode()
        assert proc.returncode != 0
        assert words in err, err
        assert "Traceback" not in err, err
    assert garbage.read_text().startswith("my shopping list")  # left as it was
