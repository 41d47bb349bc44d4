"""One conformance suite for every LogStore engine (the ``store_factory`` fixture).

Then what is particular to each engine: opening, URLs, and how it refuses a
file or schema that is not a log.  Faults and crashes are in test_faults.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import custodes
from custodes.errors import (
    ConflictError,
    CustodesError,
    NotFoundError,
    NotInitialisedError,
    StoreUnavailableError,
    UsageError,
)
from custodes.ledger.open_store import open_store
from custodes.ledger.postgres_store import PostgresStore
from custodes.ledger.sqlite_store import SqliteStore
from custodes.ledger.store import IntegratedState, LogStore

if __package__:
    from .faults import MemoryStore, check_invariants, expected_tiles, integrate_all
else:
    from faults import MemoryStore, check_invariants, expected_tiles, integrate_all

if TYPE_CHECKING:
    from conftest import PostgresFactory, StoreFactory


class Boom(Exception):
    """Raised by a caller's generator halfway through an append."""


def hashes(count: int, seed: int = 0) -> bytes:
    """``count`` distinct fake 32-byte hashes."""
    return b"".join(bytes([seed % 256, i % 256, i // 256]) * 10 + b"HH" for i in range(count))


def raising(entries: list[bytes], at: int) -> Iterator[bytes]:
    """Yield ``entries[:at]``, then raise :class:`Boom`."""
    yield from entries[:at]
    raise Boom(f"after {at}")


# -- the contract, for every engine ---------------------------------------------


def test_an_empty_store(store: LogStore) -> None:
    assert store.next_index() == 0
    assert store.integrated() == IntegratedState(size=0, checkpoint=None)
    assert store.read_entries(0, 0) == []
    with pytest.raises(NotFoundError):
        store.read_entries(0, 1)
    assert store.read_tiles([(0, 0), (1, 0)]) == [None, None]
    assert store.read_tiles([]) == []


def test_append_returns_consecutive_ranges(store: LogStore) -> None:
    assert store.append([b"a", b"b"]) == (0, 2)
    assert store.append([b"c"]) == (2, 1)
    assert store.append(iter([b"d", b"e", b"f"])) == (3, 3)
    assert store.append(x for x in [b"g"]) == (6, 1)
    assert store.append([]) == (7, 0)
    assert store.next_index() == 7
    assert store.read_entries(0, 7) == [b"a", b"b", b"c", b"d", b"e", b"f", b"g"]


@pytest.mark.parametrize("at", [0, 1, 20_000])
def test_a_generator_that_raises_stores_nothing(store: LogStore, at: int) -> None:
    store.append([b"before"])
    batch = [b"%06d" % i + b"." * 100 for i in range(20_001)]  # 2 MB: several COPY chunks
    with pytest.raises(Boom, match=f"after {at}"):
        store.append(raising(batch, at))
    assert store.next_index() == 1
    assert store.append([b"after"]) == (1, 1)
    assert store.read_entries(0, 2) == [b"before", b"after"]


def test_append_refuses_what_is_not_bytes(store: LogStore) -> None:
    with pytest.raises(TypeError, match="bytes"):
        store.append([b"fine", "not bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.append([None])  # type: ignore[list-item]
    assert store.next_index() == 0


def test_read_entries_ranges(store: LogStore) -> None:
    entries = [b"e%d" % i for i in range(700)]
    store.append(entries)
    for start, end in [(0, 700), (0, 256), (256, 512), (512, 700), (699, 700), (700, 700), (5, 6)]:
        assert store.read_entries(start, end) == entries[start:end]
    for start, end in [(0, 701), (699, 701), (700, 701), (900, 1000)]:
        with pytest.raises(NotFoundError):
            store.read_entries(start, end)
    for start, end in [(-1, 3), (5, 4)]:
        with pytest.raises(ValueError):
            store.read_entries(start, end)


def test_entries_round_trip_byte_exact(store_factory: StoreFactory) -> None:
    store = store_factory.new()
    odd = [
        b"",
        bytes(range(256)),
        b"\x00" * 65_535,
        os.urandom(65_535),
        b"\\x00\\\\ \t\n\r'\"",
        b"",
        b"\xff",
    ]
    store.append(odd)
    assert store.read_entries(0, len(odd)) == odd
    assert store_factory.again(store).read_entries(0, len(odd)) == odd


def test_tiles_partial_replaced_by_larger(store: LogStore) -> None:
    store.append([b"x"] * 600)
    store.integrate(old_size=0, new_size=3, tiles={(0, 0): hashes(3)}, checkpoint=b"c3")
    assert store.read_tiles([(0, 0), (0, 1)]) == [hashes(3), None]
    store.integrate(old_size=3, new_size=5, tiles={(0, 0): hashes(5)}, checkpoint=b"c5")
    assert store.read_tiles([(0, 0)]) == [hashes(5)]
    full = {
        (0, 0): hashes(256),
        (0, 1): hashes(256, 1),
        (0, 2): hashes(88, 2),
        (1, 0): hashes(2, 3),
    }
    store.integrate(old_size=5, new_size=600, tiles=full, checkpoint=b"c600")
    got = store.read_tiles([(0, 2), (0, 0), (9, 9), (0, 2), (1, 0), (0, 1)])
    assert got == [full[0, 2], full[0, 0], None, full[0, 2], full[1, 0], full[0, 1]]
    assert store.integrated() == IntegratedState(size=600, checkpoint=b"c600")


def test_integrate_is_a_compare_and_swap(store: LogStore) -> None:
    store.append([b"a", b"b", b"c"])
    store.integrate(old_size=0, new_size=0, tiles={}, checkpoint=b"empty")  # sign the empty tree
    assert store.integrated() == IntegratedState(size=0, checkpoint=b"empty")
    store.integrate(old_size=0, new_size=2, tiles={(0, 0): hashes(2)}, checkpoint=b"two")
    # (1) The wrong old size: ConflictError, nothing written.
    with pytest.raises(ConflictError):
        store.integrate(
            old_size=0,
            new_size=3,
            tiles={(0, 0): hashes(3), (0, 9): hashes(1)},
            checkpoint=b"stale",
        )
    # (2) Beyond the sequenced entries: refused, nothing written.
    with pytest.raises(ConflictError):
        store.integrate(
            old_size=2,
            new_size=4,
            tiles={(0, 0): hashes(4), (0, 9): hashes(1)},
            checkpoint=b"future",
        )
    # (3) Backwards: refused before touching the store.
    with pytest.raises(ValueError):
        store.integrate(old_size=2, new_size=1, tiles={}, checkpoint=b"back")
    with pytest.raises(ValueError):
        store.integrate(old_size=2, new_size=3, tiles={(0, 0): b"short"}, checkpoint=b"bad")
    assert store.integrated() == IntegratedState(size=2, checkpoint=b"two")
    assert store.read_tiles([(0, 0), (0, 9)]) == [hashes(2), None]
    # The same size again is allowed (a re-signed checkpoint).
    store.integrate(old_size=2, new_size=2, tiles={}, checkpoint=b"two again")
    store.integrate(old_size=2, new_size=3, tiles={(0, 0): hashes(3)}, checkpoint=b"three")
    assert store.integrated() == IntegratedState(size=3, checkpoint=b"three")


def test_everything_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    store = store_factory.new()
    entries = [b"entry %d" % i for i in range(300)]
    store.append(entries)
    integrate_all(store)
    head = check_invariants(store)
    state = store.integrated()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreUnavailableError, match="closed"):
        store.next_index()
    again = store_factory.again(store)
    assert again.integrated() == state
    assert again.read_entries(0, 300) == entries
    assert check_invariants(again) == head
    assert again.read_tiles([(0, 0), (0, 1)]) == [
        expected_tiles(entries)[0, 0],
        expected_tiles(entries)[0, 1],
    ]
    assert again.append([b"more"]) == (300, 1)


def test_concurrent_writers_in_threads(store_factory: StoreFactory) -> None:
    """Four handles (four connections) append at once; every index is assigned once."""
    store = store_factory.new()
    handles = [store] + [store_factory.again(store) for _ in range(3)]
    acked: list[tuple[int, list[bytes]]] = []
    failures: list[BaseException] = []
    start = threading.Barrier(len(handles))

    def writer(w: int, handle: LogStore) -> None:
        try:
            start.wait()
            for b in range(25):
                batch = [f"{w}:{b}:{i}".encode() for i in range(1 + (7 * b + w) % 40)]
                first, count = handle.append(batch)
                assert count == len(batch)
                acked.append((first, batch))
        except BaseException as err:  # reported below
            failures.append(err)

    threads = [threading.Thread(target=writer, args=(w, h)) for w, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    _assert_partition(store, acked)


def test_concurrent_writers_in_processes(store_factory: StoreFactory) -> None:
    """Three processes append through open_store at once; every index is assigned once."""
    store = store_factory.new()
    child = (
        "import json, sys\n"
        "from custodes.ledger.open_store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "out = []\n"
        "for b in range(30):\n"
        "    batch = [f'{sys.argv[2]}:{b}:{i}'.encode() for i in range(1 + b % 23)]\n"
        "    out.append([store.append(batch)[0], [e.decode() for e in batch]])\n"
        "store.close()\n"
        "print(json.dumps(out))\n"
    )
    src = str(Path(custodes.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    url = store_factory.url(store)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child, url, f"p{n}"], stdout=subprocess.PIPE, env=env, text=True
        )
        for n in range(3)
    ]
    acked: list[tuple[int, list[bytes]]] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        acked += [(first, [e.encode() for e in batch]) for first, batch in json.loads(out)]
    _assert_partition(store, acked)


def _assert_partition(store: LogStore, acked: list[tuple[int, list[bytes]]]) -> None:
    """The acknowledged appends tile 0..N-1 exactly, each holding what it was given."""
    total = sum(len(batch) for _, batch in acked)
    assert store.next_index() == total
    position = 0
    for first, batch in sorted(acked, key=lambda a: a[0]):
        assert first == position, "two appends overlap or leave a gap"
        assert store.read_entries(first, first + len(batch)) == batch
        position += len(batch)
    check_invariants(store)


# -- random operations against the reference model ----------------------------

_tile_keys = st.tuples(st.integers(0, 2), st.integers(0, 3))
_tile_blobs = st.integers(1, 4).map(lambda n: hashes(n, n))
_ops = st.one_of(
    st.tuples(st.just("append"), st.lists(st.binary(max_size=40), max_size=20)),
    st.tuples(
        st.just("append_raising"),
        st.lists(st.binary(max_size=10), min_size=1, max_size=20),
        st.integers(0, 25),  # past the list's end: it does not raise
    ),
    # Sizes and positions are percentages of what the model holds, so most
    # operations land inside the log and some just past it.
    st.tuples(
        st.just("integrate"),
        st.sampled_from([0, 0, 0, 0, -1, 1]),  # old size off by this
        st.integers(-5, 120),  # new size: this % of the pending entries
        st.dictionaries(_tile_keys, _tile_blobs, max_size=3),
        st.binary(max_size=16),
    ),
    st.tuples(st.just("read"), st.integers(0, 105), st.integers(0, 105)),
    st.tuples(st.just("tiles"), st.lists(_tile_keys, max_size=5)),
    st.tuples(st.just("reopen")),
)


def _apply(store: LogStore, op: tuple[Any, ...], size: int, count: int) -> tuple[str, Any]:
    """Do ``op`` on ``store`` (``size``, ``count``: the model's integrated size and entries).

    Returns ``("ok", result)`` or ``("error", exception class)``.
    """
    kind = op[0]
    try:
        if kind == "append":
            return ("ok", store.append(op[1]))
        if kind == "append_raising":
            return ("ok", store.append(raising(op[1], op[2])))
        if kind == "integrate":
            old_size = max(0, size + op[1])
            new_size = old_size + (count - old_size) * op[2] // 100
            store.integrate(old_size=old_size, new_size=new_size, tiles=op[3], checkpoint=op[4])
            return ("ok", None)
        if kind == "read":
            start, end = sorted(-(-count * p // 100) for p in op[1:])
            return ("ok", store.read_entries(start, end))
        assert kind == "tiles"
        return ("ok", store.read_tiles(op[1]))
    except (CustodesError, ValueError, TypeError, Boom) as err:
        return ("error", type(err))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_ops, max_size=25))
def test_random_operations_match_the_model(store_factory: StoreFactory, ops: list[Any]) -> None:
    model = MemoryStore()
    real = store_factory.new()
    try:
        for op in ops:
            if op[0] == "reopen":
                old, real = real, store_factory.again(real)
                old.close()
                continue
            state = (model.size, len(model.entries))
            want, got = _apply(model, op, *state), _apply(real, op, *state)
            assert want == got, f"{op}: model {want}, store {got}"
            event(f"{op[0]}: {want[0]}")  # see --hypothesis-show-statistics
            assert real.next_index() == model.next_index()
            assert real.integrated() == model.integrated()
        keys = sorted(model.tiles)
        assert real.read_tiles(keys) == [model.tiles[k] for k in keys]
        assert real.read_entries(0, model.next_index()) == model.entries
    finally:
        store_factory.discard(real)


# -- bulk: a regression to per-row round trips or commits fails here, untimed -----
# (the speed itself is measured by benchmarks/, not by a timed test)


class _Statements:
    """Counts what a store sends its engine: SQL statements, and COPY streams."""

    def __init__(self, store: LogStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        self.copies = 0
        if isinstance(store, SqliteStore):
            assert store._conn is not None
            store._conn.set_trace_callback(self.sql.append)  # fires once per row, too
        else:
            execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy

            def counted_execute(cur: Any, query: Any, *args: Any, **kw: Any) -> Any:
                self.sql.append(str(query))
                return execute(cur, query, *args, **kw)

            def counted_copy(cur: Any, *args: Any, **kw: Any) -> Any:
                self.copies += 1
                return copy(cur, *args, **kw)

            monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
            monkeypatch.setattr(psycopg.Cursor, "copy", counted_copy)

    def commits(self) -> int:
        return sum(1 for q in self.sql if q.strip().upper().startswith("COMMIT"))

    def reset(self) -> None:
        self.sql.clear()
        self.copies = 0


def test_append_and_read_are_bulk_operations(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 20_000
    entries = [b"%08d" % i + b"." * 92 for i in range(n)]
    seen = _Statements(store, monkeypatch)
    assert store.append(e for e in entries) == (0, n)
    if isinstance(store, SqliteStore):
        # one transaction; executemany traces each row's insert, nothing else per row
        assert seen.commits() == 1
        assert len([q for q in seen.sql if "INSERT" not in q.upper()]) <= 4, seen.sql
    else:
        assert seen.copies == 1 and len(seen.sql) <= 3, seen.sql  # lock, COPY, set next
    seen.reset()
    assert store.read_entries(0, n) == entries
    assert len(seen.sql) <= 2, seen.sql  # one query, and a count only for an empty range


# -- opening and URLs ---------------------------------------------------------------


def test_open_store_forms(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with pytest.raises(NotInitialisedError, match="holds no custodes log"):
        open_store(path)
    assert not path.exists()
    first = open_store(f"sqlite://{path}", create=True)
    assert isinstance(first, SqliteStore)
    first.append([b"one"])
    first.close()
    for form in (path, str(path), f"sqlite://{path}", f"SQLITE://{path}"):
        st_ = open_store(form)
        assert isinstance(st_, SqliteStore) and st_.read_entries(0, 1) == [b"one"]
        st_.close()
    for bad in ("mysql://db/x", "s3://bucket/log", "sqlite://relative/x.db", "", "sqlite:///x?y=1"):
        with pytest.raises(UsageError):
            open_store(bad)


def test_sqlite_refuses_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (x)")
    conn.commit()
    conn.close()
    with pytest.raises(NotInitialisedError):
        SqliteStore.open(other)
    with pytest.raises(UsageError, match="not a custodes log"):
        SqliteStore.open(other, create=True)
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(NotInitialisedError):
        SqliteStore.open(empty)
    assert empty.stat().st_size == 0  # refused before anything was written
    newer = tmp_path / "newer.db"
    SqliteStore.open(newer, create=True).close()
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    for create in (False, True):
        with pytest.raises(UsageError, match="schema version 2"):
            SqliteStore.open(newer, create=create)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailableError, match="not a SQLite database"):
        SqliteStore.open(garbage)
    with pytest.raises(StoreUnavailableError, match="cannot be opened"):
        SqliteStore.open(tmp_path / "no" / "such" / "dir" / "x.db", create=True)


def test_sqlite_is_wal_with_full_sync(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "x.db", create=True)
    try:
        conn = store._conn
        assert conn is not None
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        again = SqliteStore.open(tmp_path / "x.db", create=True)  # idempotent
        again.close()
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_open_forms(pg_factory: PostgresFactory) -> None:
    store = pg_factory.new()
    assert isinstance(store, PostgresStore)
    store.append([b"one"])
    url = pg_factory.url(store)
    for form in (url, url.replace("postgresql://", "postgres://", 1)):
        st_ = open_store(form)
        assert isinstance(st_, PostgresStore) and st_.read_entries(0, 1) == [b"one"]
        st_.close()
    again = PostgresStore.open(pg_factory.base_url, create=True, schema=store.schema)
    assert again.read_entries(0, 1) == [b"one"]  # create is idempotent and keeps the data
    again.close()
    with pytest.raises(UsageError, match="more than one schema"):
        open_store(url + "&schema=other")


@pytest.mark.postgres
def test_postgres_refuses_a_schema_without_a_log(pg_url: str) -> None:
    with pytest.raises(NotInitialisedError, match="holds no custodes log"):
        PostgresStore.open(pg_url, schema="t_never_created")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS t_half")
        conn.execute("CREATE TABLE IF NOT EXISTS t_half.entries (x int)")
        try:
            with pytest.raises(NotInitialisedError):
                PostgresStore.open(pg_url, schema="t_half")
        finally:
            conn.execute("DROP SCHEMA t_half CASCADE")
    for bad in ("Upper", "has-dash", "x" * 64, "a;drop", ""):
        with pytest.raises(UsageError, match="schema name"):
            PostgresStore.open(pg_url, schema=bad)


def test_postgres_unreachable_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        PostgresStore.open("postgresql://custodes:custodes@127.0.0.1:1/custodes_test")
    message = str(info.value)
    assert "could not connect" in message and "\n" not in message
    assert "custodes:custodes" not in message  # never the password
