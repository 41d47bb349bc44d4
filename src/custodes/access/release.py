"""The release path: a clip cut from checked segments, and the group commit that logs it first.

The steps, for each camera of the release, in order of time:

1. find each recorded segment's file in the archive
   (:mod:`custodes.fleet.archive`: ``DIR/archive/<camera>/<day>/``, or the
   object store ``fleet.json`` names, fetched into a local cache);
2. copy it into a private working folder, hashing it on the way, and check
   that SHA-256 against the digest the log holds for it (ffmpeg reads only
   the checked copy); a missing or altered file stops the release, since
   footage that does not match the record must not leave as if it did;
3. join the segments with ffmpeg's concat demuxer and cut the result to the
   window (re-encoded with libx264, so the cut is frame-exact).

The per-camera clips are joined one after another into one MP4, which is
then redacted (faces blurred, :func:`custodes.redact.pipeline.redact_file`)
unless the approval granted an unredacted export.  The caller,
:meth:`custodes.access.service.AccessService.release`, logs the release
with this module's digests *before* the file is handed to anyone, through
the :class:`Committer` below (every gateway entry goes through it).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from custodes.access.requests import AccessDB
from custodes.errors import (
    CustodesError,
    NotFoundError,
    StoreUnavailableError,
    UsageError,
    VerificationError,
)
from custodes.fleet.archive import open_archive
from custodes.fleet.model import format_time
from custodes.fleet.registry import SegmentRow
from custodes.ledger.log import Log
from custodes.records.canonical import canonicalize

if TYPE_CHECKING:
    from custodes.access.service import ReleasePlan

__all__ = ["Built", "Committer", "Ledger", "Pending", "build_clip", "file_sha256", "segment_path"]

_log = logging.getLogger("custodes.access")
T = TypeVar("T")

FFMPEG_TIMEOUT_S = 600


@dataclass(frozen=True)
class Built:
    """A finished clip: the logged digests it was cut from, how it was redacted, its digest."""

    segments: list[str]
    redaction: dict[str, Any]
    sha256: str
    size: int


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _copy_hashed(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as f, open(dst, "wb") as out:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def segment_path(data: Path, camera: str, start_ms: int) -> Path | None:
    """A local file holding the archived segment (a folder, or fetched from the object
    store that ``fleet.json`` names), or None; its digest is checked by the caller."""
    return open_archive(data).fetch(camera, start_ms)


def _ffmpeg(args: list[str]) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S)
    except FileNotFoundError:
        raise UsageError("ffmpeg is not installed, so no clip can be cut") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise UsageError(f"ffmpeg could not cut the clip ({tail[0][:200]})")


def _cut(files: list[Path], offset_s: float, length_s: float, out: Path, work: Path) -> None:
    listing = work / f"{out.stem}.txt"
    lines = []
    for f in files:
        quoted = str(f.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'\n")
    listing.write_text("".join(lines))
    _ffmpeg(
        [
            "-f", "concat", "-safe", "0", "-i", str(listing),
            "-ss", f"{offset_s:.3f}", "-t", f"{length_s:.3f}",
            "-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out),
        ]
    )  # fmt: skip


def build_clip(data: Path, rows: list[SegmentRow], plan: ReleasePlan, out: Path) -> Built:
    """Check every segment against its logged digest, cut and join, redact; write ``out``."""
    by_camera: dict[str, list[SegmentRow]] = {}
    for r in sorted(rows, key=lambda r: (r.camera, r.start_ms)):
        if r.camera in plan.cameras and r.start_ms < plan.to_ms and r.end_ms > plan.from_ms:
            by_camera.setdefault(r.camera, []).append(r)
    if not by_camera:
        raise NotFoundError("no recorded segment of the approved cameras lies in the window")
    digests: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".release-", dir=out.parent) as tmp:
        work = Path(tmp)
        clips: list[Path] = []
        for camera, segs in by_camera.items():
            files = []
            for s in segs:
                path = segment_path(data, camera, s.start_ms)
                if path is None:
                    raise NotFoundError(
                        f"the segment of camera {camera} at {format_time(s.start_ms)}"
                        " is not in the archive"
                    )
                # Check the copy that ffmpeg will read, so the file cannot change in between.
                copy = work / f"seg{len(digests)}{path.suffix}"
                digest = _copy_hashed(path, copy)
                if digest != s.sha256:
                    raise VerificationError(
                        f"the archived segment of camera {camera} at {format_time(s.start_ms)}"
                        " does not match its logged digest, so it is not released"
                    )
                files.append(copy)
                digests.append(s.sha256)
            start = max(plan.from_ms, segs[0].start_ms)
            end = min(plan.to_ms, segs[-1].end_ms)
            clip = work / f"cam{len(clips)}.mp4"
            _cut(files, (start - segs[0].start_ms) / 1000, (end - start) / 1000, clip, work)
            clips.append(clip)
        joined = work / "joined.mp4"
        if len(clips) == 1:
            shutil.move(clips[0], joined)
        else:
            listing = work / "clips.txt"
            listing.write_text("".join(f"file '{c.resolve()}'\n" for c in clips))
            _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(joined)])
        redaction: dict[str, Any]
        if plan.unredacted:
            shutil.move(joined, out)
            redaction = {"method": "none"}
        else:
            from custodes.redact.options import RedactOptions
            from custodes.redact.pipeline import redact_file

            opts = RedactOptions()
            final = work / "redacted.mp4"
            redact_file(joined, final, opts)
            shutil.move(final, out)
            redaction = {"faces": True, "plates": False, "method": opts.mode}
    sha, size = file_sha256(out)
    return Built(digests, redaction, sha, size)


class Ledger(Protocol):
    """What the gateway needs of the running log (:class:`custodes.web.service.LedgerService`)."""

    def read(self, fn: Callable[[Log], T]) -> T: ...

    def write(self, fn: Callable[[Log], T]) -> T: ...


# -- group commit ------------------------------------------------------------------------


@dataclass
class Pending:
    """Entries one caller waits on: (entry, flag key, decider's name) each."""

    items: list[tuple[dict[str, Any], str, str]]
    done: threading.Event = field(default_factory=threading.Event)
    first: int = -1
    error: CustodesError | None = None


class Committer:
    """Group commit: entries of concurrent callers go to the log in one durable append.

    :meth:`submit` queues a caller's entries and blocks until they are durably
    sequenced (returning the first index) or the append failed (raising
    :class:`StoreUnavailableError`: the caller must fail closed).  One thread
    takes everything queued, appends it in one ``Log.append`` transaction,
    takes the entries into ``access.db`` in one transaction, then wakes every
    caller of the batch.  Under load a batch holds many decisions, so one
    commit (one fsync) serves them all.
    """

    def __init__(self, ledger: Ledger, db: AccessDB, *, max_batch: int = 2048) -> None:
        self.ledger = ledger
        self.db = db
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._cond = threading.Condition()
        self._stop = False
        self._lagging = False
        self._thread = threading.Thread(target=self._run, name="access-commit", daemon=True)
        self._thread.start()

    def submit(self, items: list[tuple[dict[str, Any], str, str]]) -> int:
        p = Pending(items)
        with self._cond:
            if self._stop:
                raise StoreUnavailableError("the gateway is shutting down; nothing was written")
            self._queue.append(p)
            self._cond.notify()
        p.done.wait()
        if p.error is not None:
            raise p.error
        return p.first

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                batch: list[Pending] = []
                n = 0
                while self._queue and (
                    not batch or n + len(self._queue[0].items) <= self.max_batch
                ):
                    p = self._queue.pop(0)
                    batch.append(p)
                    n += len(p.items)
            self._commit(batch)

    def _commit(self, batch: list[Pending]) -> None:
        try:
            raw = [canonicalize(obj) for p in batch for obj, _, _ in p.items]
            first, count = self.ledger.write(lambda log: log.append(raw))
        except BaseException as err:  # fail closed: every caller of the batch is refused
            if isinstance(err, StoreUnavailableError):
                refusal: CustodesError = err
            else:
                _log.warning("the log refused an append: %r", err)
                refusal = StoreUnavailableError(
                    "the log cannot be written now, so nothing was done; try again later"
                )
            for p in batch:
                p.error = refusal
                p.done.set()
            return
        index = first
        for p in batch:
            p.first = index
            index += len(p.items)
        try:
            with self.db.transaction():
                index = first
                for p in batch:
                    for obj, key, name in p.items:
                        self.db.apply(index, obj, key=key, name=name)
                        index += 1
                if not self._lagging:
                    self.db.set_applied(first + count)
        except Exception:  # durable in the log; catch-up at the next start takes it in
            _log.exception("access.db could not take in logged entries; they are in the log")
            self._lagging = True
        for p in batch:
            p.done.set()
