"""The writer's in-memory tail: a reader that follows it sees exactly the log's entries."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.access.logview import LogView
from custodes.ledger.tail import AppendTail
from custodes.records.canonical import canonicalize


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 50),
    runs=st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=30),
    keep=st.integers(1, 64),
    reads=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), max_size=20),
)
def test_a_read_is_the_entries_or_nothing(
    start: int, runs: list[tuple[int, bool]], keep: int, reads: list[tuple[int, int]]
) -> None:
    """Whatever was appended (with gaps from other writers, or runs too long to keep),
    a read returns exactly those entries or None, never a wrong or partial range."""
    log: list[bytes] = [b"old%d" % i for i in range(start)]
    tail = AppendTail(len(log), keep=keep)
    for count, gap in runs:
        if gap:  # another writer's entry that this tail never saw
            log.append(b"other%d" % len(log))
        first = len(log)
        new = [b"e%d" % (first + i) for i in range(count)]
        kept: list[bytes] = []
        assert list(tail.capture(iter(new), kept)) == new
        log.extend(new)
        tail.appended(first, count, kept)
        assert tail.end == len(log)
    for a, b in reads:
        lo, hi = min(a, b), max(a, b)
        got = tail.read(lo, hi)
        if got is not None:
            assert got == log[lo:hi]
    # the last run, if it was short enough, is always there
    if runs and 0 < runs[-1][0] <= keep:
        assert tail.read(len(log) - runs[-1][0], len(log)) == log[-runs[-1][0] :]


def test_the_gateway_view_follows_the_writer_without_the_store(tmp_path: Path) -> None:
    """The view catches up from the tail alone while the store's lock is held elsewhere,
    and from the store once the tail no longer keeps the entries it lacks."""
    from custodes.ledger.instance import Instance

    inst = Instance.init(tmp_path / "d", origin="tail.example/log")
    with inst.open_log() as log:
        view = LogView()
        assert view.follow(log.tail) and view.size == log.tail.end
        log.append([canonicalize({"type": "note", "n": i}) for i in range(5)])
        with log.store._lock:  # type: ignore[attr-defined]  # as a commit's fsync holds it
            assert view.follow(log.tail)  # would wait forever if it asked the store
        assert view.size == log.store.next_index() == 5
        log.append(canonicalize({"type": "note", "n": i}) for i in range(20000))
        assert not view.follow(log.tail)  # too long to keep: the store is asked
        view.catch_up(log.store)
        assert view.size == log.store.next_index() == 20005
