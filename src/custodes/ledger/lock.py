"""Two small files that keep a log honest across crashes, restarts and restores.

* :class:`WriterLock` is an exclusive ``flock`` on the data directory: two
  writers never share one log.  The lock dies with its process, so a
  ``kill -9`` never leaves a stale lock behind.
* :class:`CheckpointLock` keeps a copy of the last checkpoint the log signed,
  *outside* the store.  It is written (atomically, fsynced) before the store
  records that checkpoint.  At start-up a store that does not reach it, or
  disagrees with it, was restored from an older backup or forked, and the log
  refuses to run (as Sunlight keeps its lock outside its bucket).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from custodes.errors import WriterBusyError

__all__ = ["CheckpointLock", "WriterLock", "atomic_write"]

_held: set[int] = set()
"""Descriptors of writer locks this process holds."""


def _close_in_child() -> None:
    # A forked child must not keep the parent's writer lock alive: flock locks
    # last while any descriptor of them is open, so an orphaned worker would
    # lock the directory after its parent was killed.  Closing (not
    # unlocking) drops only the child's reference.
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class WriterLock:
    """An exclusive, non-blocking lock on a data directory, held until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, hint: str = "") -> WriterLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise WriterBusyError(
                f"{self.path.parent} is in use by {holder}; only one process may write to it"
                + (f" ({hint})" if hint else "")
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd
        _held.add(fd)
        return self

    def release(self) -> None:
        if self._fd is not None:
            _held.discard(self._fd)
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class CheckpointLock:
    """The last signed checkpoint, kept where a restore of the store does not reach."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, signed_checkpoint: bytes) -> None:
        atomic_write(self.path, signed_checkpoint)
