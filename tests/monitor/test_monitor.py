"""The monitor: it follows a log and alerts, with evidence, on everything that is wrong."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from custodes.client.source import DirSource
from custodes.monitor import Monitor
from custodes.monitor.core import MAX_ENTRY_ALERTS
from custodes.tlog import Verifier
from tests.conftest import run_cli
from tests.witness.helpers import FakeLog


def _alerts(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def _monitor(tiles: Path, log: FakeLog, state: Path, *extra: str) -> list[dict[str, Any]]:
    out = run_cli(
        "monitor",
        "--source",
        str(tiles),
        "--vkey",
        log.vkey,
        "--state",
        str(state),
        "--once",
        *extra,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    alerts = _alerts(out.stdout)
    assert out.returncode == (1 if alerts else 0)
    return alerts


@pytest.fixture
def log() -> FakeLog:
    return FakeLog()


def _mon(
    tiles: Path, log: FakeLog, state: Path, now: list[float] | None = None, **kw: Any
) -> Monitor:
    clock = (lambda: now[0]) if now is not None else None
    extra: dict[str, Any] = {"clock": clock} if clock else {}
    return Monitor(
        source=DirSource(tiles),
        verifier=Verifier.from_key(log.vkey),
        state_path=state,
        **extra,
        **kw,
    )


def test_follows_a_growing_log_across_bundles(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    for size in (0, 5, 255, 256, 257, 700, 700, 1030):
        while log.tree.size < size:
            log.append(1)
        log.write_tiles(tiles)
        assert _mon(tiles, log, state).round() == []
    saved = json.loads(state.read_text())
    assert saved["size"] == 1030 and len(saved["tail"]) == 1030 % 256


def test_split_view_alerts_with_both_checkpoints(tmp_path: Path, log: FakeLog) -> None:
    """Same size, another root, both signed by the log key: a fork, with both notes."""
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(5)
    log.write_tiles(tiles)
    assert _monitor(tiles, log, state) == []
    evil = log.fork(3)
    evil.append(2, tag="evil")
    evil.write_tiles(tiles)
    alerts = _monitor(tiles, log, state)
    assert [a["alert"] for a in alerts] == ["fork"]
    assert alerts[0]["evidence"] == {
        "old_checkpoint": log.checkpoint().decode(),
        "new_checkpoint": evil.checkpoint().decode(),
    }
    # Raised once, not every round; the monitor keeps the history it saw first.
    assert _monitor(tiles, log, state) == []
    assert json.loads(state.read_text())["checkpoint"] == log.checkpoint().decode()


def test_fork_to_a_larger_tree_and_rollback(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(300)
    log.write_tiles(tiles)
    assert _mon(tiles, log, state).round() == []
    # A larger tree that rewrote entry 10: its new entries hash onto the old edge wrongly.
    evil = log.fork(10)
    evil.append(400, tag="evil")
    evil.write_tiles(tiles)
    alerts = _mon(tiles, log, state).round()
    assert [a.kind for a in alerts] == ["fork"]
    assert alerts[0].evidence["new_checkpoint"] == evil.checkpoint().decode()
    # A smaller tree of the honest log: a rollback.
    log.write_tiles(tiles, size=200)
    alerts = _mon(tiles, log, state).round()
    assert [a.kind for a in alerts] == ["rollback"]
    assert alerts[0].evidence["old_checkpoint"] == log.checkpoint().decode()
    assert alerts[0].evidence["new_checkpoint"] == log.checkpoint(200).decode()


def test_rewritten_partial_bundle_is_a_fork(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(10)
    log.write_tiles(tiles)
    assert _mon(tiles, log, state).round() == []
    log.append(5)
    log.write_tiles(tiles)
    # The served bundle changes entry 3, which the monitor saw before.
    bundle = tiles / "tile/entries/000.p/15"
    log.entries[3] = b'{"type":"test","n":3,"tag":"changed"}'
    log.write_tiles(tiles, checkpoint=(tiles / "checkpoint").read_bytes())
    assert bundle.exists()
    assert [a.kind for a in _mon(tiles, log, state).round()] == ["fork"]


def test_schema_and_signature_alerts(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(2)
    for raw in (b"[1, 2]", b'{"kind": "x"}', b"not json", b'{"type": 7}'):
        log.append_raw(raw)
    log.write_tiles(tiles)
    alerts = _monitor(tiles, log, state)
    assert [(a["alert"], a["evidence"]["index"]) for a in alerts] == [
        ("schema", 2),
        ("schema", 3),
        ("schema", 4),
        ("schema", 5),
    ]
    assert alerts[0]["evidence"]["entry"] == "[1, 2]"
    # A checkpoint signed by another key.
    impostor = FakeLog(log.origin)
    impostor.append(9)
    impostor.write_tiles(tiles)
    alerts = _monitor(tiles, log, state)
    assert [a["alert"] for a in alerts] == ["bad-signature"]
    assert alerts[0]["evidence"]["checkpoint"] == impostor.checkpoint().decode()


def test_stall_once_per_stall(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(3)
    log.write_tiles(tiles)
    now = [1000.0]
    assert _mon(tiles, log, state, now, stall_after=60).round() == []
    now[0] += 30
    assert _mon(tiles, log, state, now, stall_after=60).round() == []
    now[0] += 40
    alerts = _mon(tiles, log, state, now, stall_after=60).round()
    assert [a.kind for a in alerts] == ["stall"]
    assert alerts[0].evidence["last_checkpoint"] == log.checkpoint().decode()
    now[0] += 100
    assert _mon(tiles, log, state, now, stall_after=60).round() == []
    # The log moves on: the stall is over, and a later one is raised again.
    log.append(1)
    log.write_tiles(tiles)
    assert _mon(tiles, log, state, now, stall_after=60).round() == []
    now[0] += 61
    assert [a.kind for a in _mon(tiles, log, state, now, stall_after=60).round()] == ["stall"]
    # A source that cannot be read is reported, and counts towards a stall.
    (tiles / "checkpoint").unlink()
    assert [a.kind for a in _mon(tiles, log, state, now, stall_after=60).round()] == ["unreachable"]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", got
    finally:
        server.shutdown()
        server.server_close()


def test_alerts_go_to_the_webhook(
    tmp_path: Path, log: FakeLog, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = webhook
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(4)
    log.write_tiles(tiles)
    assert _monitor(tiles, log, state, "--webhook", url) == []
    evil = log.fork(2)
    evil.append(2, tag="evil")
    evil.write_tiles(tiles)
    printed = _monitor(tiles, log, state, "--webhook", url)
    assert [a["alert"] for a in printed] == ["fork"]
    assert got == printed


def test_missing_or_malformed_bundles(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    log.append(20)
    log.write_tiles(tiles)
    bundle = tiles / "tile/entries/000.p/20"
    good = bundle.read_bytes()
    bundle.unlink()
    assert [a.kind for a in _mon(tiles, log, state).round()] == ["unreachable"]
    bundle.write_bytes(good[:-3])
    alerts = _mon(tiles, log, state).round()
    assert [a.kind for a in alerts] == ["bad-entries"]
    assert alerts[0].evidence["new_checkpoint"] == log.checkpoint().decode()
    # Once the right bundle is back, the monitor accepts the log.
    bundle.write_bytes(good)
    assert _mon(tiles, log, state).round() == []
    assert json.loads(state.read_text())["size"] == 20


def test_many_bad_entries_are_summarised(tmp_path: Path, log: FakeLog) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state.json"
    for i in range(MAX_ENTRY_ALERTS + 50):
        log.append_raw(json.dumps({"n": i}).encode())
    log.write_tiles(tiles)
    alerts = _mon(tiles, log, state).round()
    assert len(alerts) == MAX_ENTRY_ALERTS + 1
    assert alerts[-1].evidence["suppressed"] == 50
