"""Following an origin log: copy what it publishes, verify all of it, then cosign.

One :meth:`Mirror.update` round:

1. Fetch the origin's checkpoint; it must be signed by the log key.  A
   smaller size than the mirror checkpoint is a rollback, the same size with
   another root a fork: the round fails with the evidence
   (:class:`InconsistentLogError`) and the mirror keeps serving what it has.
2. Fetch every entry bundle and hash tile that changed between the mirror's
   size and the new one (the partial ones at the new size's widths), in an
   order that lets each hash tile be checked as soon as the entries under it
   are hashed; every byte is checked against the hashes recomputed from the
   entries, starting from the entries the mirror already holds.
3. The root recomputed over all the mirror's entries must be the new
   checkpoint's root.  Since the tree grew from the entries already mirrored,
   this proves the new checkpoint consistent with the mirror checkpoint and
   every copied entry included in it.
4. Only then are the new objects written (each file atomically, synced;
   entry bundles also gzip-compressed beside them, ``<path>.gz``),
   and last the mirror checkpoint: the origin's signed note with the
   mirror's cosignature added (tlog-mirror: the checkpoint served MUST
   include a cosignature from the mirror, made only once all entries are
   durably committed).

A failed round leaves nothing written, and the verifier is rebuilt from the
files on disk, so the next round starts from the mirror checkpoint again.

Clients may also push to the mirror (tlog-mirror's ``add-checkpoint`` and
``add-entries``, in :mod:`.push`), so beside the *mirror checkpoint* the
mirror keeps a *pending checkpoint* (the newest log-signed checkpoint it
accepted, ``pending-checkpoint``) and *pending entries*: entry packages proven
against a pending checkpoint, written as entry bundles at once, with the hash
tiles at their size; ``next-entry`` says how many entries are held in all.
:meth:`Mirror.commit` makes any held size the mirror checkpoint: it writes the
bundles and tiles of that size (each a prefix of one already held), checks the
root computed from the tiles on disk, and only then cosigns.  One lock
(:attr:`Mirror.lock`) serialises the follower and the pushes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from custodes.errors import InconsistentLogError, ProofError, VerificationError
from custodes.tlog import (
    EMPTY_ROOT,
    TILE_HEIGHT,
    TILE_WIDTH,
    CosignatureSigner,
    CosignatureVerifier,
    MemoryTree,
    NoteVerifier,
    SignedCheckpoint,
    Tile,
    TreeVerifier,
    check_subtree_consistency,
    format_entry_bundle,
    format_hash_tile,
    format_note,
    leaf_hash,
    open_checkpoint,
    parse_entry_bundle,
    parse_hash_tile,
    tile_hash_reader,
    tile_path,
    tree_root,
)

__all__ = ["Gap", "Mirror", "Round", "Source", "changed_tiles", "origin_hash"]

PENDING_FILE = "pending-checkpoint"
NEXT_FILE = "next-entry"
RECENT_PENDING = 16
"""How many past pending checkpoints ``add-entries`` accepts as ``upload_end``."""


class Gap(VerificationError):
    """An entry package starts after the mirror's next entry (tlog-mirror: 409)."""


class Source(Protocol):
    """Where the origin log is read: one tlog-tiles object by its relative path."""

    def fetch(self, path: str) -> bytes: ...


def origin_hash(origin: str) -> str:
    """The mirror's URL prefix for a log: SHA-256 of its origin, lowercase hex."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def _width(level: int, index: int, size: int) -> int:
    """The width of tile ``index`` of ``level`` (-1: bundles) in the tree of ``size``."""
    n = size >> (TILE_HEIGHT * max(level, 0))
    full = n >> TILE_HEIGHT
    if index < full:
        return TILE_WIDTH
    return n & (TILE_WIDTH - 1) if index == full else 0


def changed_tiles(old: int, new: int) -> list[Tile]:
    """The bundles and hash tiles the tree of ``new`` publishes that the tree of ``old`` lacks.

    Ordered by the last entry each covers, bundles before the tiles above
    them, so that each hash tile comes right after the entries under it.
    """
    out: list[tuple[int, int, Tile]] = []
    for level in range(-1, 64):
        shift = TILE_HEIGHT * max(level, 0)
        if new >> shift == 0:
            break
        first = (old >> shift) >> TILE_HEIGHT
        last = ((new >> shift) - 1) >> TILE_HEIGHT
        for index in range(first, last + 1):
            width = _width(level, index, new)
            if width == 0 or width == _width(level, index, old):
                continue
            end = ((index << TILE_HEIGHT) + width) << shift
            out.append((end, level, Tile(level=level, index=index, width=width)))
    out.sort(key=lambda t: (t[0], t[1]))
    return [t for _, _, t in out]


@dataclass(frozen=True, kw_only=True)
class Round:
    """What one update did: the sizes before and after, and how many objects were copied."""

    old_size: int
    new_size: int
    objects: int
    seconds: float


class Mirror:
    """A verified copy of one log in ``root`` (tlog-tiles layout), cosigned by ``signer``."""

    def __init__(
        self,
        root: Path,
        log_key: NoteVerifier,
        signer: CosignatureSigner,
        *,
        clock: Callable[[], float] = time.time,
        fsync: bool = True,
        window: int = 8,
    ) -> None:
        self.root = root
        self.log_key = log_key
        self.signer = signer
        self.clock = clock
        self.fsync = fsync
        self.window = window
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoint: SignedCheckpoint | None = None
        self.pending: SignedCheckpoint | None = None
        self._recent: OrderedDict[int, SignedCheckpoint] = OrderedDict()
        self.lock = threading.RLock()
        self._tv = TreeVerifier()
        self._load()

    # -- state -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The mirror checkpoint's tree size (0 before the first round)."""
        return self.checkpoint.checkpoint.size if self.checkpoint else 0

    @property
    def next_entry(self) -> int:
        """How many entries the mirror holds: the mirror checkpoint's and the pending ones."""
        return self._tv.size

    @property
    def pending_size(self) -> int:
        """The pending checkpoint's size: at or ahead of the mirror checkpoint."""
        return max(self.pending.checkpoint.size if self.pending else 0, self.size)

    def has_pending(self) -> bool:
        """Whether the mirror ever took a checkpoint signed by the log (pushed or followed)."""
        return self.pending is not None or self.checkpoint is not None

    def pending_at(self, size: int) -> SignedCheckpoint | None:
        """A valid pending checkpoint of ``size``: a recent one, or the mirror checkpoint."""
        found = self._recent.get(size)
        if found is None and self.pending is not None and self.pending.checkpoint.size == size:
            found = self.pending
        if found is None and self.checkpoint is not None and self.size == size:
            found = self.checkpoint
        return found

    def take_pending(self, signed: SignedCheckpoint, *, persist: bool = True) -> None:
        """Make ``signed`` the pending checkpoint (the caller checked it extends the last)."""
        with self.lock:
            if persist:
                self._write(PENDING_FILE, signed.raw)
            self._remember(signed)

    def _remember(self, signed: SignedCheckpoint) -> None:
        size = signed.checkpoint.size
        if self.pending is None or size >= self.pending.checkpoint.size:
            self.pending = signed
        self._recent[size] = signed
        self._recent.move_to_end(size)
        while len(self._recent) > RECENT_PENDING:
            self._recent.popitem(last=False)

    @property
    def cosigner(self) -> CosignatureVerifier:
        return self.signer.verifier()

    def served_checkpoint(self) -> bytes | None:
        """The mirror checkpoint as served: the log's note with the mirror's cosignature."""
        try:
            return (self.root / "checkpoint").read_bytes()
        except FileNotFoundError:
            return None

    def _load(self) -> None:
        """Open the stored checkpoints and rebuild the verifier from the stored bundles."""
        self._tv = TreeVerifier()
        self.checkpoint = self.pending = None
        self._recent.clear()
        try:
            pending = open_checkpoint((self.root / PENDING_FILE).read_bytes(), self.log_key)
        except FileNotFoundError:
            pending = None
        raw = self.served_checkpoint()
        signed = (
            open_checkpoint(raw, self.log_key, cosigners=[self.cosigner])
            if raw is not None
            else None
        )
        size = signed.checkpoint.size if signed else 0
        try:
            held = max(size, int((self.root / NEXT_FILE).read_text()))
        except (FileNotFoundError, ValueError):
            held = size
        for index in range((held + TILE_WIDTH - 1) // TILE_WIDTH):
            width = _width(-1, index, held)
            data = (self.root / tile_path(Tile(level=-1, index=index, width=width))).read_bytes()
            self._tv.add_bundle(index, parse_entry_bundle(data, width))
        if signed is not None:
            root = self._tv.root() if held == size else self._disk_root(size)
            if root != signed.checkpoint.root_hash:
                raise ProofError(
                    f"The mirror's stored entries at {self.root} do not hash to its"
                    " checkpoint's root."
                )
            self.checkpoint = signed
            self._remember(signed)
        if pending is not None:
            self._remember(pending)

    def _disk_root(self, size: int) -> bytes:
        """The root at ``size`` computed from the hash tiles on disk (of the tree of ``size``)."""
        if size == 0:
            return EMPTY_ROOT

        def get(level: int, index: int, width: int) -> bytes:
            tile = Tile(level=level, index=index, width=width)
            return (self.root / tile_path(tile)).read_bytes()

        return tree_root(size, tile_hash_reader(size, get))

    # -- one round -------------------------------------------------------------------------

    def update(self, source: Source) -> Round:
        """Bring the mirror up to the origin's checkpoint; see the module's steps."""
        t0 = time.perf_counter()
        raw = source.fetch("checkpoint")  # before the lock: a slow origin holds up no push
        with self.lock:
            return self._update(source, raw, t0)

    def _update(self, source: Source, raw: bytes, t0: float) -> Round:
        # (1) the origin's checkpoint
        new = open_checkpoint(raw, self.log_key)
        cp = new.checkpoint
        old_size = self.size
        if self.checkpoint is not None:
            mine = self.checkpoint.checkpoint
            if cp.origin != mine.origin:
                raise VerificationError(
                    f"The origin now serves the log {cp.origin!r}, not {mine.origin!r}."
                )
            if cp.size < mine.size:
                raise InconsistentLogError(
                    f"Rollback: the log {cp.origin} shrank from {mine.size} entries to {cp.size}.",
                    old_checkpoint=self.checkpoint.raw,
                    new_checkpoint=raw,
                )
            if cp.size == mine.size:
                if cp.root_hash != mine.root_hash:
                    raise InconsistentLogError(
                        f"Fork: the log {cp.origin} signed two roots for size {cp.size}.",
                        old_checkpoint=self.checkpoint.raw,
                        new_checkpoint=raw,
                    )
                return Round(old_size=old_size, new_size=old_size, objects=0, seconds=0.0)
        base = self._tv.size
        if cp.size <= base:  # pushed entries already cover it
            self.commit(new)
            return Round(
                old_size=old_size,
                new_size=cp.size,
                objects=0,
                seconds=time.perf_counter() - t0,
            )
        # (2) every changed object, checked against the entries
        staged: list[tuple[str, bytes]] = []
        try:
            tiles = changed_tiles(base, cp.size)
            for tile, data in zip(tiles, self._fetch_all(source, tiles), strict=True):
                path = tile_path(tile)
                if tile.level < 0:
                    self._tv.add_bundle(tile.index, parse_entry_bundle(data, tile.width))
                else:
                    parse_hash_tile(data, tile.width)
                    self._tv.check_hash_tile(tile.level, tile.index, data)
                staged.append((path, data))
            # (3) the root over everything mirrored
            if self._tv.root() != cp.root_hash:
                raise InconsistentLogError(
                    f"The log {cp.origin}'s tiles do not hash to its signed root for size"
                    f" {cp.size}; nothing was mirrored.",
                    old_checkpoint=self.checkpoint.raw if self.checkpoint else b"",
                    new_checkpoint=raw,
                )
        except BaseException:
            self._load()
            raise
        # (4) write, then cosign and publish
        for path, data in staged:
            self._write(path, data)
            if path.startswith("tile/entries/"):
                # Stored compressed too, so the server sends gzip without compressing again.
                self._write(path + ".gz", gzip.compress(data, compresslevel=6, mtime=0))
        self.commit(new)
        return Round(
            old_size=old_size,
            new_size=cp.size,
            objects=len(staged),
            seconds=time.perf_counter() - t0,
        )

    # -- pushed entries (tlog-mirror add-entries) ----------------------------------------------

    def _held_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)`` of one bundle, all held (``end <= next_entry``)."""
        if start == end:
            return []
        index = start // TILE_WIDTH
        width = _width(-1, index, self._tv.size)
        path = self.root / tile_path(Tile(level=-1, index=index, width=width))
        entries = parse_entry_bundle(path.read_bytes(), width)
        first = index * TILE_WIDTH
        return entries[start - first : end - first]

    def add_package(
        self,
        pending: SignedCheckpoint,
        start: int,
        end: int,
        entries: list[bytes],
        proof: list[bytes],
    ) -> bool:
        """Authenticate one entry package of ``[start, end)`` and save what is new.

        The subtree ``[start rounded down to 256, end)`` is hashed from the
        entries held and the ones received, and its subtree consistency proof
        checked against ``pending`` (ProofError: 422).  Returns whether any
        entry was new.  Bundle, then hash tiles (each synced), then ``next-entry``
        are written, so a crash leaves at most unused files.
        """
        with self.lock:
            held = self._tv.size
            first = start - start % TILE_WIDTH
            if start > held:
                raise Gap(f"The package starts at {start}, after the mirror's next entry {held}.")
            known = self._held_entries(first, min(start, held))
            bundle = known + entries
            subtree = MemoryTree(leaf_hash(e) for e in bundle).root()
            cp = pending.checkpoint
            check_subtree_consistency(
                proof, start=first, end=end, size=cp.size, subtree=subtree, root=cp.root_hash
            )
            if end <= held:
                return False  # every entry is held already
            index = first // TILE_WIDTH
            path = tile_path(Tile(level=-1, index=index, width=len(bundle)))
            data = format_entry_bundle(bundle)
            self._tv.add_bundle(index, bundle)
            self._write(path, data)
            self._write(path + ".gz", gzip.compress(data, compresslevel=6, mtime=0))
            for tile in changed_tiles(held, end):
                if tile.level < 0:
                    continue
                hashes = self._tv.tile_hashes(tile.level, tile.index)
                if hashes is None or len(hashes) < tile.width:  # pragma: no cover - kept window
                    raise ProofError(f"The mirror lost track of hash tile {tile_path(tile)}.")
                self._write(tile_path(tile), format_hash_tile(hashes[: tile.width]))
            # Not synced: lost or torn, it only makes a restart hold fewer entries, which
            # clients send again; what it counts was synced before it was written.
            self._write(NEXT_FILE, f"{end}\n".encode(), sync=False)
            return True

    def commit(self, signed: SignedCheckpoint) -> bytes:
        """Make the held size of ``signed`` the mirror checkpoint, cosigned; return the note.

        Needs ``size <= signed size <= next_entry``.  Writes the bundles and
        tiles of that size the disk lacks (prefixes of the held ones), checks
        the root computed from the tiles against the log's, then cosigns.
        """
        with self.lock:
            cp = signed.checkpoint
            held = self._tv.size
            if not self.size <= cp.size <= held:
                raise VerificationError(
                    f"Cannot commit size {cp.size}: the mirror holds {held} entries and has"
                    f" committed {self.size}."
                )
            for tile in changed_tiles(self.size, cp.size):
                target = self.root / tile_path(tile)
                if target.exists():
                    continue
                have = Tile(
                    level=tile.level,
                    index=tile.index,
                    width=_width(tile.level, tile.index, held),
                )
                data = (self.root / tile_path(have)).read_bytes()
                if tile.level < 0:
                    data = format_entry_bundle(parse_entry_bundle(data)[: tile.width])
                    self._write(tile_path(tile) + ".gz", gzip.compress(data, mtime=0))
                else:
                    data = data[: tile.width * 32]
                self._write(tile_path(tile), data)
            if self._disk_root(cp.size) != cp.root_hash:
                raise InconsistentLogError(
                    f"The mirror's entries do not hash to the log {cp.origin}'s signed root for"
                    f" size {cp.size}; nothing was committed.",
                    old_checkpoint=self.checkpoint.raw if self.checkpoint else b"",
                    new_checkpoint=signed.raw,
                )
            served = self._cosign(signed)
            self._write("checkpoint", served)
            self.checkpoint = open_checkpoint(served, self.log_key, cosigners=[self.cosigner])
            self._remember(signed)
            return served

    def _fetch_all(self, source: Source, tiles: list[Tile]) -> Iterator[bytes]:
        """The objects of ``tiles`` in order, with up to ``window`` fetches in flight."""
        if self.window <= 1 or len(tiles) <= 1:
            for tile in tiles:
                yield source.fetch(tile_path(tile))
            return
        with ThreadPoolExecutor(max_workers=self.window) as pool:
            pending: deque[Future[bytes]] = deque()
            try:
                for tile in tiles:
                    pending.append(pool.submit(source.fetch, tile_path(tile)))
                    if len(pending) >= 2 * self.window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for f in pending:
                    f.cancel()

    def _cosign(self, signed: SignedCheckpoint) -> bytes:
        """The log's note with its signature lines kept and the mirror's cosignature added."""
        note = signed.note
        mine = (self.signer.name, self.signer.key_id)
        kept = [s for s in note.signatures if (s.name, s.key_id) != mine]
        cosig = self.signer.cosign(note.text, int(self.clock()))
        return format_note(note.text, [*kept, cosig])

    def _write(self, path: str, data: bytes, *, sync: bool = True) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if self.fsync and sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
