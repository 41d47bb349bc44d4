"""Worker processes that never outlive the process that forked them.

A ``kill -9`` of a command leaves its multiprocessing workers behind unless
they notice.  Orphaned workers would keep running and, worse, keep file
descriptors they inherited.  :func:`exit_with_parent` starts a small thread
in the worker that exits it as soon as its parent is gone.
"""

from __future__ import annotations

import os
import threading

__all__ = ["exit_with_parent"]


def exit_with_parent(interval: float = 0.2) -> None:
    """Call first thing in a forked worker: it exits when its parent dies."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(interval)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def term_with_parent() -> None:
    """``preexec_fn`` for a child process: it gets SIGTERM when its parent dies (Linux).

    A server that starts other servers (``custodes shards serve``) may itself
    be stopped by a signal that ends it before any cleanup runs; its children
    then shut down cleanly instead of running on as orphans.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's cleanup must do
        pass
