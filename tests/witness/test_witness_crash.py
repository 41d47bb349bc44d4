"""A witness that crashes between its check and its commit never cosigns two histories."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path

from custodes.tlog import CosignatureVerifier, Verifier, open_checkpoint
from custodes.witness import open_witness
from custodes.witness.server import WitnessServer
from tests.conftest import run_cli
from tests.witness.helpers import FakeLog, post, start_witness, stop


def _held_size(data: Path) -> int:
    out = run_cli("witness", "logs", "--json", data=data).stdout.decode().splitlines()
    return int(json.loads(out[0])["size"])


def _assert_one_history(
    log: FakeLog, wkey: str, cosigned: list[tuple[bytes, bytes]], branches: list[FakeLog]
) -> None:
    """Every cosignature verifies, and all cosigned checkpoints lie on one history."""
    verifier = Verifier.from_key(log.vkey)
    witness = CosignatureVerifier.from_key(wkey)
    roots: dict[int, bytes] = {}
    for note, line in cosigned:
        cp = open_checkpoint(note + line, verifier, cosigners=[witness])
        assert witness.name in cp.cosignatures
        size, root = cp.checkpoint.size, cp.checkpoint.root_hash
        assert roots.setdefault(size, root) == root, f"two roots cosigned for size {size}"
    # One branch must hold every cosigned (size, root).
    holders = [b for b in branches if all(b.tree.root(s) == r for s, r in roots.items())]
    assert holders, "the cosigned checkpoints are not all on one history"


def test_crash_before_commit_leaves_no_cosignature(witness: tuple[Path, str], log: FakeLog) -> None:
    data, wkey = witness
    log.append(6)
    evil = log.fork(3)
    evil.append(3, tag="evil")
    cosigned: list[tuple[bytes, bytes]] = []
    proc, port = start_witness(data, env={"CUSTODES_WITNESS_FAULT": "crash-before-commit:2"})
    try:
        status, _, line = post(port, log.request(0, 3))
        assert status == 200
        cosigned.append((log.checkpoint(3), line))
        # The second commit dies after its check passed: no answer at all.
        try:
            answer = post(port, log.request(3, 6))
        except (http.client.HTTPException, ConnectionError):
            answer = None
        assert answer is None
        assert proc.wait(timeout=10) == 99
    finally:
        stop(proc)
    # After the crash the witness holds size 3, as before the request that died.
    assert _held_size(data) == 3
    proc, port = start_witness(data)
    try:
        # The other history extends what was cosigned, so it may be cosigned now ...
        status, _, line = post(port, evil.request(3))
        assert status == 200
        cosigned.append((evil.checkpoint(), line))
        # ... and then the first one never is.
        assert post(port, log.request(3, 6))[:3] == (409, "text/x.tlog.size", b"6\n")
        assert post(port, log.request(6, 6))[0] == 422
    finally:
        stop(proc)
    _assert_one_history(log, wkey, cosigned, [log, evil])


def test_injected_fault_fails_the_request_and_keeps_the_state(
    witness: tuple[Path, str], log: FakeLog
) -> None:
    data, _ = witness
    log.append(5)
    calls: list[str] = []

    def fault(point: str) -> None:
        calls.append(point)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")

    wit, store = open_witness(data, fault=fault)
    app = WitnessServer(wit, store)

    async def go() -> list[int]:
        first = await app.handle("POST", "/add-checkpoint", log.request(0, 5))
        second = await app.handle("POST", "/add-checkpoint", log.request(0, 5))
        return [first.status, second.status]

    try:
        assert asyncio.run(go()) == [500, 200]
        assert store.get(log.origin).size == 5
    finally:
        app.close()
        store.close()


def test_kill_9_mid_stream_never_cosigns_two_histories(
    witness: tuple[Path, str], log: FakeLog
) -> None:
    """Four clients push two histories while the witness is killed with SIGKILL twice."""
    data, wkey = witness
    log.append(4)
    evil = log.fork(4)
    total = 160
    log.append(total - 4)
    evil.append(total - 4, tag="evil")
    proc, port = start_witness(data)
    cosigned: list[tuple[bytes, bytes]] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + 15

    def client(branch: FakeLog, start: int) -> None:
        old, size = 0, start
        while size <= total and time.monotonic() < deadline:
            try:
                status, ctype, body = post(port, branch.request(old, size))
            except (OSError, http.client.HTTPException):
                with lock:
                    failures[0] += 1
                time.sleep(0.02)
                continue
            if status == 200:
                with lock:
                    cosigned.append((branch.checkpoint(size), body))
                old, size = size, size + 1
            elif status == 409 and ctype == "text/x.tlog.size":
                old = int(body)
                size = max(size, old + 1) if old < total else total + 1
            else:  # 422: this history lost; keep trying to push it anyway
                size += 1

    threads = [
        threading.Thread(target=client, args=(b, s))
        for b, s in ((log, 4), (evil, 4), (log, 5), (evil, 6))
    ]
    for t in threads:
        t.start()
    try:
        # Kill on progress, not on a clock, so a fast machine cannot finish first.
        for threshold in (10, 50):
            while len(cosigned) < threshold and time.monotonic() < deadline:
                time.sleep(0.001)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc, _ = start_witness(data, port=port)
        for t in threads:
            t.join(timeout=30)
    finally:
        stop(proc)
    # The kills landed mid-stream: some requests found no witness.
    assert cosigned and failures[0] > 0, failures
    _assert_one_history(log, wkey, cosigned, [log, evil])
    # Nothing cosigned was forgotten: the witness holds at least the largest size it cosigned.
    largest = max(int(note.split(b"\n")[1]) for note, _ in cosigned)
    assert _held_size(data) >= largest
