"""Faults, crashes and lost connections, for every engine.

Each test ends the way Sunlight's do: reopen the store as after a crash and
re-check every invariant (:func:`faults.check_invariants`), and that every
acknowledged append is still there.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

import custodes
from custodes.errors import ConflictError, StoreUnavailableError
from custodes.ledger.postgres_store import PostgresStore
from custodes.ledger.sqlite_store import SqliteStore
from custodes.ledger.store import LogStore

if __package__:
    from .faults import (
        Fault,
        FaultPlan,
        FaultyStore,
        Ledger,
        check_invariants,
        fake_checkpoint,
        integrate_all,
    )
else:
    from faults import (
        Fault,
        FaultPlan,
        FaultyStore,
        Ledger,
        check_invariants,
        fake_checkpoint,
        integrate_all,
    )

if TYPE_CHECKING:
    from conftest import PostgresFactory, StoreFactory

ALL_METHODS = frozenset(
    {"append", "integrate", "next_index", "read_entries", "integrated", "read_tiles"}
)


def append_until_acknowledged(store: LogStore, batch: list[bytes], tries: int = 20) -> int:
    """The client's loop: append until the store says yes; return the first index."""
    for _ in range(tries):
        try:
            first, count = store.append(batch)
        except StoreUnavailableError:
            continue
        assert count == len(batch)
        return first
    raise AssertionError(f"append failed {tries} times in a row")


def integrate_until_done(store: LogStore, tries: int = 20) -> None:
    """The sequencer's loop: integrate from whatever state the store now holds."""
    for _ in range(tries):
        try:
            integrate_all(store)
            return
        except (StoreUnavailableError, ConflictError):
            continue
    raise AssertionError(f"integration failed {tries} times in a row")


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_failed_append_is_retried_and_the_store_stays_sound(
    store_factory: StoreFactory, phase: str
) -> None:
    inner = store_factory.new()
    plan = FaultPlan(faults=(Fault("append", 1, phase), Fault("append", 2, phase)))  # type: ignore[arg-type]
    store = FaultyStore(inner, plan)
    ledger = Ledger()
    batch = [b"first %d" % i for i in range(10)]
    first = append_until_acknowledged(store, batch)
    ledger.acknowledged.append((first, batch))
    assert [f.phase for f in store.injected] == [phase, phase]
    # Failing before saving stored nothing; failing after saving stored the batch each time.
    assert first == (0 if phase == "before" else 20)
    assert inner.next_index() == first + 10
    integrate_until_done(store)
    check_invariants(inner)
    again = store_factory.again(inner)
    inner.close()
    check_invariants(again)
    ledger.check(again)


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_failed_integration_is_retried(store_factory: StoreFactory, phase: str) -> None:
    inner = store_factory.new()
    store = FaultyStore(inner, FaultPlan.at("integrate", 1, phase))  # type: ignore[arg-type]
    inner.append([b"e%d" % i for i in range(700)])
    integrate_until_done(store)
    head = check_invariants(inner)
    assert inner.integrated().checkpoint == fake_checkpoint(700, head)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_faults_and_restarts_never_lose_an_acknowledged_entry(
    store_factory: StoreFactory, seed: int
) -> None:
    plan = FaultPlan.random(0.25, seed=seed, methods=ALL_METHODS)
    store = FaultyStore(store_factory.new(), plan)
    ledger = Ledger()
    for step in range(40):
        size = (step * 37 + seed) % 300 + 1
        batch = [b"%d/%d/%d" % (seed, step, i) for i in range(size)]
        ledger.acknowledged.append((append_until_acknowledged(store, batch), batch))
        if step % 3 == 0:
            integrate_until_done(store)
        if step % 5 == 4:  # a crash and restart: a new handle, the old one dropped
            old = store.inner
            store.inner = store_factory.again(old)
            old.close()
            check_invariants(store.inner)
            ledger.check(store.inner)
    assert store.injected, "the plan injected nothing; the test proves nothing"
    integrate_until_done(store)
    head = check_invariants(store.inner)
    assert store.inner.integrated().checkpoint == fake_checkpoint(store.inner.next_index(), head)
    ledger.check(store_factory.again(store.inner))


# -- a real crash: kill -9 a writer process ------------------------------------

_WRITER = """
import sys
from custodes.ledger.open_store import open_store
store = open_store(sys.argv[1])
b = 0
while True:
    batch = [b"%d:%d" % (b, i) for i in range(1 + b % 500)]
    first, count = store.append(batch)
    sys.stdout.write(f"{b} {first} {count}\\n")
    sys.stdout.flush()
    b += 1
"""


def test_kill_9_during_appends_loses_no_acknowledged_entry(store_factory: StoreFactory) -> None:
    store = store_factory.new()
    src = str(Path(custodes.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    acked: list[tuple[int, list[bytes]]] = []
    for round_ in range(3):
        with subprocess.Popen(
            [sys.executable, "-c", _WRITER, store_factory.url(store)],
            stdout=subprocess.PIPE,
            env=env,
        ) as proc:
            assert proc.stdout is not None
            deadline = time.monotonic() + 10
            lines: list[bytes] = []
            while len(lines) < 30 + 20 * round_ and time.monotonic() < deadline:
                lines.append(proc.stdout.readline())
            proc.send_signal(signal.SIGKILL)
            lines += proc.stdout.read().splitlines()  # what it acknowledged before it died
        assert proc.returncode == -signal.SIGKILL
        for line in lines:
            if line.strip():
                b, first, count = (int(x) for x in line.split())
                acked.append((first, [b"%d:%d" % (b, i) for i in range(count)]))
    again = store_factory.again(store)
    check_invariants(again)
    Ledger(acknowledged=acked).check(again)


# -- PostgreSQL: the server drops us --------------------------------------------


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def _backend_pid(store: PostgresStore) -> int:
    conn = store._conn
    assert conn is not None
    return conn.info.backend_pid


def _assert_one_clear_sentence(err: StoreUnavailableError) -> None:
    message = str(err)
    assert "\n" not in message and message.startswith("the PostgreSQL store ")
    assert err.__cause__ is None and err.__suppress_context__  # no psycopg traceback attached
    assert "custodes:custodes" not in message  # never the password


@pytest.mark.postgres
def test_a_terminated_backend_is_unavailable_then_reconnects(pg_factory: PostgresFactory) -> None:
    store = pg_factory.new()
    assert isinstance(store, PostgresStore)
    store.append([b"a", b"b"])
    _terminate(pg_factory.base_url, _backend_pid(store))
    with pytest.raises(StoreUnavailableError) as info:
        store.append([b"c"])
    _assert_one_clear_sentence(info.value)
    assert "administrator command" in str(info.value)
    # The next call connects afresh; nothing of the failed call was stored.
    assert store.next_index() == 2
    assert store.append([b"c"]) == (2, 1)
    check_invariants(store)


@pytest.mark.postgres
def test_a_backend_terminated_during_a_copy_stores_nothing(pg_factory: PostgresFactory) -> None:
    store = pg_factory.new()
    assert isinstance(store, PostgresStore)
    store.append([b"before"])
    pid = _backend_pid(store)

    def entries() -> Iterator[bytes]:
        for i in range(200_000):
            if i == 30_000:  # a few COPY chunks are already on the wire
                _terminate(pg_factory.base_url, pid)
            yield b"%06d" % i + b"." * 94

    with pytest.raises(StoreUnavailableError) as info:
        store.append(entries())
    _assert_one_clear_sentence(info.value)
    assert store.next_index() == 1
    check_invariants(store)


@pytest.mark.postgres
def test_a_backend_terminated_during_integrate_writes_nothing(pg_factory: PostgresFactory) -> None:
    store = pg_factory.new()
    assert isinstance(store, PostgresStore)
    store.append([b"e%d" % i for i in range(300)])
    _terminate(pg_factory.base_url, _backend_pid(store))
    with pytest.raises(StoreUnavailableError) as info:
        integrate_all(store)  # its first read fails
    _assert_one_clear_sentence(info.value)
    integrate_all(store)
    check_invariants(store)


@pytest.mark.postgres
def test_a_server_that_stays_down_is_unavailable_on_every_call(
    pg_factory: PostgresFactory,
) -> None:
    store = pg_factory.new()
    assert isinstance(store, PostgresStore)
    store._params["port"] = "1"  # where the next connection will go: nobody listens
    _terminate(pg_factory.base_url, _backend_pid(store))
    for call in (store.next_index, store.integrated, lambda: store.append([b"x"])):
        with pytest.raises(StoreUnavailableError) as info:
            call()
        _assert_one_clear_sentence(info.value)
    assert "could not connect" in str(info.value)


# -- SQLite: another writer holds the lock -----------------------------------------


def test_sqlite_locked_by_another_writer_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = SqliteStore.open(path, create=True, timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="write lock") as info:
            store.append([b"a"])
        assert time.monotonic() - t0 < 5
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert store.next_index() == 0  # reading still works in WAL mode
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.append([b"a"]) == (0, 1)
    store.close()
