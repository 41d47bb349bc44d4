"""The running log behind the HTTP server: one writer, integrated on a timer.

The server holds the data directory's writer lock for as long as it runs,
so no second process writes to the log meanwhile.  Writers (appends and what
they keep beside the log, such as fleet.db) are serialised by one lock.  A
background thread integrates and signs a new checkpoint whenever entries are
pending, once per ``interval`` seconds, without that lock: integration reads
only entries already durable and takes the log's own integration lock and the
store's, so a queue of ingest writes cannot hold a checkpoint back.  For the
same reason the latest checkpoint is served from memory, not through the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from custodes.errors import NotFoundError
from custodes.ledger.instance import Instance, OpenLog
from custodes.ledger.lock import atomic_write
from custodes.ledger.log import Log
from custodes.ledger.witnessing import WitnessClient, cosign_checkpoint
from custodes.tlog import parse_checkpoint, parse_note

__all__ = ["LedgerService"]

T = TypeVar("T")
_log = logging.getLogger("custodes.ledger")


class LedgerService:
    def __init__(self, instance: Instance, *, interval: float = 1.0) -> None:
        self.instance = instance
        self.interval = interval
        self._open: OpenLog = instance.open_log(
            hint="the server holds it; use --server URL to reach it"
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients = [
            WitnessClient(url, vkey, timeout_s=instance.witness_timeout_s)
            for url, vkey in instance.witnesses
        ]
        self._published: bytes | None = None
        if self._clients and instance.published_path.exists():
            self._published = instance.published_path.read_bytes()

    @property
    def witnessed(self) -> bool:
        return bool(self._clients)

    def public_checkpoint(self) -> bytes:
        """What /log/checkpoint serves: with witnesses, only a checkpoint they cosigned."""
        if not self._clients:
            note = self._open.log.latest_checkpoint()
            return note if note is not None else self.read(lambda log: log.checkpoint())
        if self._published is None:
            raise NotFoundError(
                "no checkpoint has been cosigned by enough witnesses yet; publishing waits"
            )
        return self._published

    def publish(self) -> bool:
        """Send the latest checkpoint to the witnesses; publish it if the policy is met."""
        log = self._open.log  # read-only calls on the store: no writer lock needed
        latest = log.latest_checkpoint() or log.checkpoint()
        cp = parse_checkpoint(parse_note(latest).text)
        if self._published is not None:
            old = parse_checkpoint(parse_note(self._published).text)
            if old.size >= cp.size:
                return False
        if cp.size == 0:
            return False  # witnesses need a tree to check; the empty one proves nothing

        note = cosign_checkpoint(
            latest,
            cp.size,
            self._clients,
            self.instance.witness_quorum,
            log.consistency_proof,
            log.verifier,
        )
        if note is None:
            return False
        atomic_write(self.instance.published_path, note)
        self._published = note
        return True

    def wait_published(self, size: int, timeout_s: float) -> bytes:
        """A published checkpoint of at least ``size`` entries (with witnesses: one their
        quorum cosigned), waiting up to ``timeout_s`` for it; StoreUnavailableError if none."""
        import time

        from custodes.errors import StoreUnavailableError

        deadline = time.monotonic() + timeout_s
        while True:
            if not self._clients:
                note = self._open.log.integrate()  # returns at once when nothing is pending
            else:
                note = self._published or b""
            if note and parse_checkpoint(parse_note(note).text).size >= size:
                return note
            if time.monotonic() >= deadline or self._stop.is_set():
                raise StoreUnavailableError(
                    f"no checkpoint covering entry {size - 1} was cosigned by the log's witnesses"
                    f" within {timeout_s:g} s, so no custodian was asked and nothing was released"
                )
            time.sleep(min(0.05, self.interval))

    @property
    def closed(self) -> bool:
        """True once the service is shutting down; background threads should stop."""
        return self._stop.is_set()

    @property
    def log(self) -> Log:
        return self._open.log

    def read(self, fn: Callable[[Log], T]) -> T:
        with self._lock:
            return fn(self._open.log)

    def write(self, fn: Callable[[Log], T]) -> T:
        with self._lock:
            return fn(self._open.log)

    def integrate_now(self) -> bytes:
        with self._lock:
            return self._open.log.integrate()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="integrator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # On a fixed cadence (start to start), not a fixed pause after each round: an
        # entry that just missed a round waits one interval, not an interval plus the
        # time the round took to integrate (which checkpoint lag under load is made of).
        due = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.interval, time.monotonic() + self.interval / 4)
            try:
                if self._open.log.pending():
                    self._open.log.integrate()  # the log's integration lock, not self._lock
                if self._clients:
                    self.publish()
            except Exception:  # keep serving; the next tick retries
                _log.exception("integration or publishing failed; retrying")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock, self._open.log.integrating:
            self._open.close()
