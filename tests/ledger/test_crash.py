"""kill -9 the appender between commit and acknowledgement; every acknowledged entry survives.

Also: a store restored from an older backup is refused at start-up, and so is
a store whose history was altered.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from custodes.cli.log_cmd import PAUSE_ENV
from tests.conftest import run_cli


def _batch(tag: int, n: int) -> bytes:
    return "".join(json.dumps({"batch": tag, "i": i}) + "\n" for i in range(n)).encode()


def _entries(data: Path, tmp: Path, vkey: str) -> list[dict[str, int]]:
    """Export the log, verify it end to end, and return its entries."""
    out = tmp / f"export-{time.monotonic_ns()}"
    run_cli("log", "export", str(out), data=data)
    run_cli("verify", "--vkey", vkey, "--source", str(out))
    from custodes.tlog import bundles_for_size, parse_entry_bundle, tile_path

    size = int((out / "checkpoint").read_text().splitlines()[1])
    entries: list[dict[str, int]] = []
    for b in bundles_for_size(size):
        entries += [json.loads(e) for e in parse_entry_bundle((out / tile_path(b)).read_bytes())]
    return entries


@pytest.mark.slow
def test_kill_9_between_commit_and_acknowledgement_loses_no_acknowledged_entry(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    """Each appender is killed after its batch is durable and before it acknowledged all of it.

    The ``CUSTODES_FAULT_PAUSE_AFTER_ACK`` hook makes ``log append`` print K of the
    batch's indexes once it is committed, write a marker, and wait; the test kills it
    only when the marker exists, so every kill lands in that window.
    """
    data, vkey = instance
    rng = random.Random(20261127)
    acked: dict[int, tuple[int, int]] = {}  # index -> (batch, i)
    unacked: dict[int, tuple[int, int]] = {}  # committed, never acknowledged
    for tag in range(8):
        n = rng.choice([1, 50, 3000, 40000])
        k = rng.choice([0, 0, 1, n // 2, n - 1])
        marker = tmp_path / f"committed-{tag}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "custodes", "--data", str(data), "log", "append", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, PAUSE_ENV: f"{marker}:{k}"},
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_batch(tag, n))
        proc.stdin.close()
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the appender exited before it paused"
            assert time.monotonic() < deadline, "the appender never reached its commit"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read().decode().split()
        proc.stdout.close()
        assert proc.wait() == -signal.SIGKILL  # killed in the window, not exited
        first, count = map(int, marker.read_text().split())
        assert count == n
        # It acknowledged exactly K indexes, the first of its batch; the rest were
        # committed but never acknowledged.
        assert out == [str(i) for i in range(first, first + k)]
        for i in range(n):
            (acked if i < k else unacked)[first + i] = (tag, i)
        # Restart: the next writer reconciles whatever the crash left.
        run_cli("log", "checkpoint", data=data)
    assert unacked, "no kill landed between commit and acknowledgement"
    entries = _entries(data, tmp_path, vkey)
    for idx, (tag, i) in acked.items():
        assert entries[idx] == {"batch": tag, "i": i}
    # The store holds entries beyond the last acknowledged index: the kills hit the window.
    assert max(unacked) > max(acked, default=-1)
    for idx, (tag, i) in unacked.items():
        assert entries[idx] == {"batch": tag, "i": i}
    assert len(entries) == len(acked) + len(unacked)


@pytest.mark.slow
def test_kill_9_during_integration_then_restart_signs_a_consistent_checkpoint(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    run_cli("log", "append", "--no-checkpoint", "-", data=data, input=_batch(0, 200_000))
    state = tmp_path / "state"
    for delay in (0.05, 0.2, 0.4):
        proc = subprocess.Popen(
            [sys.executable, "-m", "custodes", "--data", str(data), "log", "checkpoint"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.kill()
        proc.wait()
        run_cli("log", "append", "--no-checkpoint", "-", data=data, input=_batch(9, 10))
    run_cli("log", "checkpoint", data=data)
    entries = _entries(data, tmp_path, vkey)
    assert len(entries) == 200_030
    out = tmp_path / "final"
    run_cli("log", "export", str(out), data=data)
    run_cli("verify", "--vkey", vkey, "--source", str(out), "--state", str(state))


def test_a_store_restored_from_an_older_backup_is_refused(instance: tuple[Path, str]) -> None:
    data, _ = instance
    run_cli("log", "append", "-", data=data, input=_batch(0, 100))
    backup = data.parent / "backup.db"
    shutil.copy(data / "log.db", backup)
    run_cli("log", "append", "-", data=data, input=_batch(1, 100))
    for suffix in ("-wal", "-shm"):
        (data / f"log.db{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, data / "log.db")
    out = run_cli("log", "checkpoint", data=data, check=False)
    assert out.returncode == 1
    err = out.stderr.decode()
    assert "older backup" in err and "Traceback" not in err
    # Appending is refused as well: the log will not carry on from the old state.
    out = run_cli("log", "append", "-", data=data, input=_batch(2, 1), check=False)
    assert out.returncode == 1


def test_a_store_with_altered_history_is_refused(instance: tuple[Path, str]) -> None:
    import sqlite3

    data, _ = instance
    run_cli("log", "append", "-", data=data, input=_batch(0, 300))
    db = sqlite3.connect(data / "log.db")
    with db:  # rewrite the hash over the first 256 entries, as if history was edited
        (blob,) = db.execute("SELECT hashes FROM tiles WHERE level = 1 AND idx = 0").fetchone()
        db.execute(
            "UPDATE tiles SET hashes = ? WHERE level = 1 AND idx = 0", (b"\x00" * 32 + blob[32:],)
        )
    db.close()
    out = run_cli("log", "checkpoint", data=data, check=False)
    assert out.returncode == 1
    assert b"differs from the checkpoint" in out.stderr
    assert b"Traceback" not in out.stderr
