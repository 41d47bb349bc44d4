"""The sequencer: one writer that assigns indexes, integrates, and signs.

The order of work follows Tessera and Sunlight:

1. **Sequence.**  :meth:`Log.append` stores entries at the next indexes in one
   durable transaction and returns the first index.  From then on the entries
   are acknowledged: no crash, restart or restore may lose them.
2. **Integrate.**  :meth:`Log.integrate` reads the entries past the
   integrated size, hashes them into the tiles (:mod:`custodes.ledger.tiling`)
   and computes the new tree head.
3. **Sign.**  The checkpoint for that head is signed, written to the
   :class:`~custodes.ledger.lock.CheckpointLock` (outside the store), and only
   then stored, with its tiles, by a compare-and-swap on the tree size.

Because integration is a pure function of durable entries, a crash between
(3)'s two writes is repaired at start-up by integrating again, which gives
the same head and (Ed25519 being deterministic) the same signature.  The log
therefore never signs two inconsistent checkpoints.  A store that does not
reach the locked checkpoint was restored from an older backup, and
:meth:`Log.open` refuses it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from hashlib import sha256
from multiprocessing.pool import AsyncResult

from custodes._proc import exit_with_parent
from custodes.errors import InconsistentLogError, RollbackError, SignatureError, StoreError
from custodes.ledger.lock import CheckpointLock
from custodes.ledger.reader import LogReader
from custodes.ledger.store import LogStore
from custodes.ledger.tail import AppendTail
from custodes.ledger.tiling import TileState, perfect_root
from custodes.tlog import Checkpoint, Signer, Verifier, open_checkpoint, sign_checkpoint

__all__ = ["Log"]

READ_CHUNK = 65536
"""Entries read from the store per integration step."""

COMMIT_EVERY = 1 << 20
"""Entries integrated per signed commit, which bounds the tiles held in memory."""

PARALLEL_MIN = 1 << 17
"""Pending entries from which integration hashes in worker processes."""

TILE = 256

KILL_AT_ENV = "CUSTODES_FAULT_KILL_AT"
"""Crash tests set this to a step name (``signed``, ``locked``, ``stored``) to have the
process ``kill -9`` itself at that step of checkpointing; unset, nothing happens."""


def kill_point(step: str) -> None:
    """Die here, as a ``kill -9`` would, when the crash tests ask for ``step``."""
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


_worker_store: LogStore | None = None


def _worker_open(factory: Callable[[], LogStore]) -> None:
    """In a forked worker: open a handle of its own on the store."""
    global _worker_store
    exit_with_parent()
    _worker_store = factory()


def _worker_hash(start: int, end: int) -> tuple[bytes, list[bytes]]:
    """Leaf hashes of entries start..end-1 (start on a tile boundary), and each full tile's root."""
    assert _worker_store is not None
    sha = sha256
    hashes = [sha(b"\x00" + e).digest() for e in _worker_store.read_entries(start, end)]
    roots = [perfect_root(hashes[i : i + TILE]) for i in range(0, len(hashes) - TILE + 1, TILE)]
    return b"".join(hashes), roots


class Log(LogReader):
    """The writer for one log.  Hold the data directory's WriterLock around it."""

    def __init__(
        self,
        store: LogStore,
        signer: Signer,
        lock: CheckpointLock,
        tiles: TileState,
        *,
        store_factory: Callable[[], LogStore] | None = None,
    ) -> None:
        super().__init__(store)
        self._store_factory = store_factory
        self.signer = signer
        self.verifier = Verifier.from_key(signer.verifier_key)
        self.origin = signer.name
        self.lock = lock
        self._tiles = tiles
        self._checkpoint = store.integrated().checkpoint
        self._last_integrated = time.monotonic()
        self.integrating = threading.Lock()
        """Held for each integration.  Integration takes only this lock and the store's
        own, so it can run beside :meth:`append` (whose callers serialise among
        themselves): it hashes entries already durable, and the store's
        compare-and-swap on the size keeps its commit consistent."""
        self.tail = AppendTail(store.next_index())
        """What this writer appended last (:mod:`custodes.ledger.tail`)."""

    # -- start-up ---------------------------------------------------------

    @classmethod
    def open(
        cls,
        store: LogStore,
        signer: Signer,
        lock: CheckpointLock,
        *,
        store_factory: Callable[[], LogStore] | None = None,
    ) -> Log:
        """Open the log, refusing a store older than the last signed checkpoint.

        With ``store_factory`` (which opens another handle on the same store),
        large integrations hash entries in worker processes, one per core.
        """
        state = store.integrated()
        try:
            tiles = TileState.from_tiles(state.size, cls._partial_tiles(store, state.size))
        except ValueError as err:
            raise StoreError(f"the store is damaged ({err}); restore it from a backup") from None
        log = cls(store, signer, lock, tiles, store_factory=store_factory)
        locked = lock.read()
        if locked is not None:
            log._reconcile(locked)
        return log

    @staticmethod
    def _partial_tiles(store: LogStore, size: int) -> dict[tuple[int, int], bytes]:
        keys = TileState.tiles_needed(size)
        found = store.read_tiles(keys)
        return {k: v for k, v in zip(keys, found, strict=True) if v is not None}

    def _reconcile(self, locked: bytes) -> None:
        try:
            signed = open_checkpoint(locked, self.verifier)
        except SignatureError:
            raise RollbackError(
                f"the checkpoint lock at {self.lock.path} is not signed by this log's key",
                lock_checkpoint=locked,
                store_size=self.size(),
            ) from None
        want = signed.checkpoint
        have = self._tiles.size
        sequenced = self.store.next_index()
        if sequenced < want.size:
            raise RollbackError(
                f"the store holds {sequenced} entries but this log already signed a checkpoint"
                f" for {want.size}; it was restored from an older backup, so refusing to start",
                lock_checkpoint=locked,
                store_size=sequenced,
            )
        if have < want.size:
            # Crashed after writing the lock, before the store took the checkpoint.
            self._integrate_to(want.size, expect_root=want.root_hash, locked=locked)
            return
        root = self.root(want.size) if want.size else want.root_hash
        if root != want.root_hash:
            raise InconsistentLogError(
                f"the store's tree at size {want.size} differs from the checkpoint this log"
                " signed; refusing to start on a forked store",
                old_checkpoint=locked,
                new_checkpoint=self._checkpoint or b"",
            )

    # -- sequencing -------------------------------------------------------

    def append(self, entries: Iterable[bytes]) -> tuple[int, int]:
        """Durably sequence ``entries`` (all or none); returns ``(first, count)``."""
        kept: list[bytes] = []
        first, count = self.store.append(self.tail.capture(entries, kept))
        self.tail.appended(first, count, kept)
        return first, count

    def pending(self) -> int:
        return self.store.next_index() - self._tiles.size

    # -- integration and signing -------------------------------------------

    def latest_checkpoint(self) -> bytes | None:
        """The last checkpoint this writer signed and stored, read without the store."""
        return self._checkpoint

    def integrate(self, progress: Callable[[int], None] | None = None) -> bytes:
        """Integrate every sequenced entry and return the signed checkpoint.

        Signs a new checkpoint even when nothing is pending only if none exists
        yet (the empty log's).  ``progress`` is called with entries integrated.
        """
        with self.integrating:
            target = self.store.next_index()
            if target == self._tiles.size and self._checkpoint is not None:
                return self._checkpoint
            self._integrate_to(target, progress=progress)
            assert self._checkpoint is not None
            return self._checkpoint

    def _integrate_to(
        self,
        target: int,
        *,
        expect_root: bytes | None = None,
        locked: bytes | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        tiles = self._tiles
        changed: dict[tuple[int, int], bytes] = {}
        committed_size = tiles.size
        steps = self._grow_to(target)
        while True:
            before = tiles.size
            step = next(steps, None)
            if step is not None:
                changed.update(step)
                if progress is not None:
                    progress(tiles.size - before)
            if tiles.size == target or tiles.size - committed_size >= COMMIT_EVERY:
                root = tiles.root()
                final = tiles.size == target
                if final and expect_root is not None and root != expect_root:
                    raise InconsistentLogError(
                        f"re-integrating to the locked size {target} gives a different tree;"
                        " the store was altered, so refusing to start",
                        old_checkpoint=locked or b"",
                        new_checkpoint=b"",
                    )
                note = sign_checkpoint(
                    Checkpoint(origin=self.origin, size=tiles.size, root_hash=root), self.signer
                )
                kill_point("signed")
                if locked is None:  # on reconcile, the lock already holds the target
                    self.lock.write(note)
                kill_point("locked")
                self.store.integrate(
                    old_size=committed_size, new_size=tiles.size, tiles=changed, checkpoint=note
                )
                kill_point("stored")
                self._checkpoint = note
                committed_size = tiles.size
                changed = {}
                if final:
                    break

    def _grow_to(self, target: int) -> Iterator[dict[tuple[int, int], bytes]]:
        """Hash entries up to ``target`` into the tiles, a chunk at a time.

        Large batches are hashed by worker processes (one per core), each
        reading its own span from the store; the spans come back in order and
        are merged here, so the result is the same as hashing in one place.
        """
        tiles = self._tiles
        start = tiles.size
        if self._store_factory is None or target - start < PARALLEL_MIN:
            for a in range(start, target, READ_CHUNK):
                entries = self.store.read_entries(a, min(target, a + READ_CHUNK))
                yield tiles.extend([sha256(b"\x00" + e).digest() for e in entries])
            return
        aligned = min(target, -(-start // TILE) * TILE)
        if aligned > start:
            entries = self.store.read_entries(start, aligned)
            yield tiles.extend([sha256(b"\x00" + e).digest() for e in entries])
        spans = [(a, min(target, a + READ_CHUNK)) for a in range(aligned, target, READ_CHUNK)]
        ctx = multiprocessing.get_context("fork")
        workers = max(1, min(len(spans), os.cpu_count() or 1))
        with ctx.Pool(workers, initializer=_worker_open, initargs=(self._store_factory,)) as pool:
            inflight: deque[AsyncResult[tuple[bytes, list[bytes]]]] = deque()
            for span in spans:
                inflight.append(pool.apply_async(_worker_hash, span))
                if len(inflight) > 2 * workers:
                    yield tiles.extend_hashed(*inflight.popleft().get())
            while inflight:
                yield tiles.extend_hashed(*inflight.popleft().get())

        self._last_integrated = time.monotonic()
