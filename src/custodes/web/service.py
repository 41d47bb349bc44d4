"""The running log behind the HTTP server: one writer, integrated on a timer.

The server holds the data directory's writer lock for as long as it runs,
so no second process writes to the log meanwhile.  Store access is
serialised by one lock: SQLite has one writer connection, and the calls are
short.  A background thread integrates and signs a new checkpoint whenever
entries are pending, at most once per ``interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from custodes.ledger.instance import Instance, OpenLog
from custodes.ledger.log import Log

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
        while not self._stop.wait(self.interval):
            try:
                with self._lock:
                    if self._open.log.pending():
                        self._open.log.integrate()
            except Exception:  # keep serving; the next tick retries
                _log.exception("integration failed; retrying")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._open.close()
