"""The window between the rollback lock and the store, at each step of checkpointing.

Checkpointing signs a note, writes it to the lock (``DIR/lock/checkpoint``),
and only then stores it with its tiles.  These tests stop the writer at each
step, by ``kill -9`` (the ``CUSTODES_FAULT_KILL_AT`` hook in
:mod:`custodes.ledger.log`) and by a store call that fails before or after
saving (:class:`faults.FaultyStore`), on SQLite and on PostgreSQL, and check:

* the lock never lags the store (a restore of the store behind a checkpoint
  the log already stored would otherwise go unnoticed);
* a restart after a crash between the lock and the store re-integrates and
  stores the very checkpoint that the lock holds;
* and if an entry was changed in that window, the restart refuses, rather
  than sign a second root for the same size.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from custodes.errors import StoreUnavailableError
from custodes.ledger.instance import Instance
from custodes.ledger.lock import CheckpointLock
from custodes.ledger.log import KILL_AT_ENV, Log
from custodes.ledger.store import LogStore
from custodes.tlog import Signer, generate_key, open_checkpoint
from tests.conftest import run_cli

from .conftest import StoreFactory, drop_schemas, postgres_url
from .faults import FaultPlan, FaultyStore, tree_head

N = 300


def _lines(n: int, tag: str = "a") -> bytes:
    return "".join(f'{{"{tag}": {i}}}\n' for i in range(n)).encode()


class Engine:
    """An instance on one engine, and a way to change an entry behind the log's back."""

    def __init__(self, data: Path, alter: Callable[[int, bytes], None]) -> None:
        self.data = data
        self.alter = alter

    def store_state(self) -> tuple[int, bytes | None]:
        st = Instance.load(self.data).open_store()
        try:
            state = st.integrated()
            return state.size, state.checkpoint
        finally:
            st.close()

    def lock_size(self) -> int:
        inst = Instance.load(self.data)
        raw = CheckpointLock(inst.lock_path).read()
        assert raw is not None
        return int(raw.split(b"\n")[1])

    def lock_bytes(self) -> bytes:
        raw = CheckpointLock(Instance.load(self.data).lock_path).read()
        assert raw is not None
        return raw


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    data = tmp_path / "data"
    if request.param == "sqlite":
        run_cli("init", "--origin", "test.custodes.example/log", data=data)

        def alter(idx: int, value: bytes) -> None:
            import sqlite3

            db = sqlite3.connect(data / "log.db")
            with db:
                db.execute("UPDATE entries SET data = ? WHERE idx = ?", (value, idx))
            db.close()

        yield Engine(data, alter)
        return
    base = postgres_url()
    schema = f"w_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}schema={schema}"
    run_cli("init", "--origin", "test.custodes.example/log", "--store", url, data=data)

    def alter_pg(idx: int, value: bytes) -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("UPDATE {}.entries SET data = %s WHERE idx = %s").format(
                    sql.Identifier(schema)
                ),
                (value, idx),
            )

    try:
        yield Engine(data, alter_pg)
    finally:
        drop_schemas(base, [schema])


def _checkpoint_killed_at(data: Path, step: str) -> None:
    env = {**os.environ, KILL_AT_ENV: step}
    proc = subprocess.run(
        [sys.executable, "-m", "custodes", "--data", str(data), "log", "checkpoint"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


# What the lock and the store hold (sizes) when the writer dies at each step.
STEPS = {"signed": (0, 0), "locked": (N, 0), "stored": (N, N)}


@pytest.mark.parametrize("step", list(STEPS))
def test_kill_9_at_each_step_then_restart(engine: Engine, step: str) -> None:
    data = engine.data
    run_cli("log", "append", "--no-checkpoint", "-", data=data, input=_lines(N))
    _checkpoint_killed_at(data, step)
    lock_size, store_size = STEPS[step]
    assert engine.lock_size() == lock_size
    assert engine.store_state()[0] == store_size
    # Restart: the next writer finishes the job, storing exactly the note the lock holds.
    run_cli("log", "checkpoint", data=data)
    size, note = engine.store_state()
    assert size == N and note == engine.lock_bytes()
    # And the log carries on.
    run_cli("log", "append", "-", data=data, input=_lines(5, "b"))
    assert engine.store_state()[0] == N + 5 == engine.lock_size()


def test_an_entry_changed_after_the_lock_was_written_is_refused(engine: Engine) -> None:
    data = engine.data
    run_cli("log", "append", "--no-checkpoint", "-", data=data, input=_lines(N))
    _checkpoint_killed_at(data, "locked")
    locked = engine.lock_bytes()
    assert engine.store_state() == (0, engine.store_state()[1])
    engine.alter(7, b'{"a":"forged"}')
    out = run_cli("log", "checkpoint", data=data, check=False)
    assert out.returncode == 1
    assert b"different tree" in out.stderr and b"Traceback" not in out.stderr
    # No second root for the same size: neither the lock nor the store took one.
    assert engine.lock_bytes() == locked
    assert engine.store_state()[0] == 0
    out = run_cli("log", "append", "-", data=data, input=_lines(1, "c"), check=False)
    assert out.returncode == 1
    assert engine.lock_bytes() == locked


# -- the same window, by a store call that fails before or after saving --------


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_failed_store_write_never_leaves_the_lock_behind(
    store_factory: StoreFactory, tmp_path: Path, phase: str
) -> None:
    skey, _ = generate_key("test.custodes.example/log")
    sign = Signer.from_key(skey)
    lock = CheckpointLock(tmp_path / "lock" / "checkpoint")
    inner = store_factory.new()
    entries = [f"e{i}".encode() for i in range(N)]
    with_faults: LogStore = FaultyStore(inner, FaultPlan.at("integrate", 2, phase))  # type: ignore[arg-type]
    log = Log.open(with_faults, sign, lock)
    log.integrate()  # the empty tree: integrate call 1
    log.append(entries[:100])
    with pytest.raises(StoreUnavailableError, match="injected"):
        log.integrate()  # call 2 fails
    locked = lock.read()
    assert locked is not None
    lock_size = int(locked.split(b"\n")[1])
    stored = store_factory.again(inner).integrated()
    # Whatever the store took, the lock took first.
    assert lock_size >= stored.size
    assert lock_size == 100
    # A restarted writer reconciles and stores the locked note itself.
    again = store_factory.again(inner)
    log2 = Log.open(again, sign, lock)
    state = again.integrated()
    assert state.size == 100 and state.checkpoint == locked
    verified = open_checkpoint(locked, log2.verifier).checkpoint
    assert verified.root_hash == tree_head(entries[:100])
    log2.append(entries[100:])
    log2.integrate()
    assert again.integrated().size == N
