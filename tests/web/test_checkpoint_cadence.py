"""The server's checkpoints under ingest: a write queue cannot hold them back.

Under the Moscow-scale simulation the writers (heartbeats, segment batches) hold the
server's writer lock nearly all the time; checkpoints that waited for it lagged by
more than 2 s.  Integration takes the log's own lock instead, so these tests hold
the writer lock and still expect the checkpoint, and integrate from several threads
at once and still expect exactly one consistent tree.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from custodes.ledger.instance import Instance
from custodes.ledger.log import Log
from custodes.tlog import Verifier, leaf_hash, open_checkpoint, parse_checkpoint, parse_note
from custodes.tlog.merkle import MemoryTree
from custodes.web.service import LedgerService


def _size(note: bytes) -> int:
    return parse_checkpoint(parse_note(note).text).size


def test_a_checkpoint_is_signed_and_served_while_a_long_write_holds_the_lock(
    tmp_path: Path,
) -> None:
    inst = Instance.init(tmp_path / "d")
    svc = LedgerService(inst, interval=0.1)
    svc.start()
    try:
        first, count = svc.write(lambda log: log.append([b"a", b"b", b"c"]))
        holding = threading.Event()
        release = threading.Event()
        held = [True]

        def long_write(_log: Log) -> None:
            holding.set()
            release.wait(10)  # a writer that takes its time (an ingest queue, in effect)
            held[0] = False

        writer = threading.Thread(target=svc.write, args=(long_write,))
        writer.start()
        try:
            assert holding.wait(10)
            deadline = time.monotonic() + 10
            while _size(svc.public_checkpoint()) < first + count and held[0]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            covered_while_held = held[0]
        finally:
            release.set()
            writer.join()
        assert covered_while_held, "the checkpoint waited for the writer lock"
        note = svc.public_checkpoint()
        cp = open_checkpoint(note, Verifier.from_key(inst.verifier_key)).checkpoint
        assert cp.size == first + count
    finally:
        svc.close()


def test_integrations_from_many_threads_make_one_consistent_tree(tmp_path: Path) -> None:
    inst = Instance.init(tmp_path / "d")
    svc = LedgerService(inst, interval=0.01)
    svc.start()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                entries = [f"{t}/{i}/{j}".encode() for j in range(7)]

                def append(log: Log, e: list[bytes] = entries) -> tuple[int, int]:
                    return log.append(e)

                svc.write(append)
                svc.log.integrate()  # beside the integrator thread and the others
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert not any(th.is_alive() for th in threads), "an integration hung"
        assert not errors, errors
        note = svc.integrate_now()
        size = _size(note)
        assert size == svc.log.store.next_index() and size >= 4 * 40 * 7
        entries = svc.log.store.read_entries(0, size)
        cp = open_checkpoint(note, Verifier.from_key(inst.verifier_key)).checkpoint
        assert cp.root_hash == MemoryTree(leaf_hash(e) for e in entries).root()
    finally:
        svc.close()
    reopened = LedgerService(inst)
    try:
        assert _size(reopened.public_checkpoint()) == size  # the store and lock agree
    finally:
        reopened.close()
