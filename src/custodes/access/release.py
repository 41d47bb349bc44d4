"""The release path: a clip cut from checked segments, and the group commit that logs it first.

The steps, for each camera of the release, in order of time:

1. find each recorded segment's file in the archive
   (:mod:`custodes.fleet.archive`: ``DIR/archive/<camera>/<day>/``, or the
   object store ``fleet.json`` names, fetched into a local cache);
2. copy it into a private working folder, hashing it on the way, and check
   that SHA-256 against the digest the log holds for it (only the checked
   copy is read); a missing or altered file stops the release, since
   footage that does not match the record must not leave as if it did;
3. check from the copy's bytes that it is a container a recorder writes
   (:mod:`custodes.fleet.containers`: MP4, MPEG-TS or Matroska), and open it
   in process with PyAV, that demuxer fixed and no protocol but ``file``:
   nothing is probed, no playlist, concat list or data reference is
   followed, so a segment cannot pull in another camera's file;
4. decode it, check that its decoded length matches its logged duration,
   and re-encode the frames inside the window with libx264 (frame-exact).

One camera gives one MP4; several give one MP4 per camera in a zip with their
manifest (:mod:`custodes.access.archive`), whose digest is what the release logs.
Each MP4 is redacted (faces blurred, :func:`custodes.redact.pipeline.redact_file`)
unless the approval granted an unredacted export; the redacted clip is
then decoded again and the face detector run over every frame at the
redactor's own threshold: a face found there fails the release closed
(nothing is logged, nothing leaves).  The caller,
:meth:`custodes.access.service.AccessService.release`, logs the release
with this module's digests *before* the file is handed to anyone, through
the :class:`Committer` below (every gateway entry goes through it).

Under custody the archive holds ciphertext only: steps 1 and 2 become "decrypt in
memory with the key the custodians' partials open, and check the plaintext against its
logged digest" (the ``opener`` of :func:`build_clip`, from
:mod:`custodes.access.opening`), and the release is logged before that, not after.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from custodes.access.requests import AccessDB
from custodes.errors import (
    CustodesError,
    NotFoundError,
    StoreUnavailableError,
    VerificationError,
)
from custodes.fleet.archive import open_archive
from custodes.fleet.containers import DEMUXERS, Container, sniff
from custodes.fleet.model import format_time
from custodes.fleet.registry import SegmentRow
from custodes.ledger.log import Log
from custodes.records.canonical import canonicalize

if TYPE_CHECKING:
    from custodes.access.service import ReleasePlan
    from custodes.redact.detect import FaceDetector
    from custodes.redact.options import RedactOptions

__all__ = [
    "Built",
    "Committer",
    "Ledger",
    "Pending",
    "SegmentOpener",
    "build_clip",
    "file_sha256",
    "in_window",
    "segment_path",
]

_log = logging.getLogger("custodes.access")
T = TypeVar("T")


@dataclass(frozen=True)
class Built:
    """A finished clip: the logged digests it was cut from, how it was redacted, its digest."""

    segments: list[str]
    redaction: dict[str, Any]
    sha256: str
    size: int
    #: For a release of several cameras, ``{"files": N, "bytes": total}``: ``sha256`` and
    #: ``size`` are then the archive's manifest's (:mod:`custodes.access.archive`).
    manifest: dict[str, int] | None = None


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


#: How far a segment's decoded length may differ from its logged duration.
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE = 0.05


def _demux(path: Path, kind: Container) -> Any:
    """Open one checked copy with its demuxer fixed and no protocol but reading that file:
    nothing is probed, and no playlist, concat list or data reference is followed."""
    import av

    options = {"protocol_whitelist": "file"}
    if kind == "mp4":
        options |= {"enable_drefs": "0", "use_absolute_path": "0"}
    return av.open(str(path), "r", format=DEMUXERS[kind], options=options)


class _Encoder:
    """The output MP4: libx264, frames timed in milliseconds from the clip's start."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.container: Any = None
        self.stream: Any = None
        self.last = -1

    def put(self, frame: Any, pts_ms: int, rate: Fraction) -> None:
        import av

        if pts_ms <= self.last:
            return
        if self.container is None:
            self.container = av.open(
                str(self.out), "w", format="mp4", options={"movflags": "+faststart"}
            )
            v = self.container.add_stream("libx264", rate=rate)
            v.width, v.height = frame.width - frame.width % 2, frame.height - frame.height % 2
            v.pix_fmt = "yuv420p"
            v.codec_context.time_base = Fraction(1, 1000)
            v.options = {"preset": "veryfast", "crf": "23"}
            self.stream = v
        v = self.stream
        img = frame.reformat(width=v.width, height=v.height, format="yuv420p")
        img.pts, img.time_base = pts_ms, Fraction(1, 1000)
        img.pict_type = av.video.frame.PictureType.NONE
        for packet in v.encode(img):
            self.container.mux(packet)
        self.last = pts_ms

    def close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()


def _segment_frames(
    path: Path, kind: Container, seg: SegmentRow
) -> Iterator[tuple[Any, float, Fraction]]:
    """Decode one segment: (frame, its time in ms since the epoch, frame rate); at the end,
    check that the decoded length matches the logged one (VerificationError if not)."""
    import av

    where = f"camera {seg.camera} at {format_time(seg.start_ms)}"
    first: float | None = None
    last = 0.0
    rate = Fraction(25)
    try:
        with _demux(path, kind) as c:
            if not c.streams.video:
                raise VerificationError(f"the segment of {where} holds no video")
            stream = c.streams.video[0]
            rate = Fraction(stream.average_rate or 25)
            for frame in c.decode(stream):
                if frame.pts is None or frame.time_base is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if first is None:
                    first = t
                last = max(last, t)
                yield frame, seg.start_ms + (t - first) * 1000, rate
    except av.error.FFmpegError as err:
        raise VerificationError(
            f"the segment of {where} cannot be read as {kind} ({err.strerror}), so it is not"
            " released"
        ) from None
    logged = (seg.end_ms - seg.start_ms) / 1000
    decoded = 0.0 if first is None else last - first + float(1 / rate)
    if abs(decoded - logged) > max(DURATION_TOLERANCE_S, DURATION_TOLERANCE * logged):
        raise VerificationError(
            f"the segment of {where} decodes to {decoded:.2f} s but is logged as {logged:.2f} s,"
            " so it is not released"
        )


def _cut(
    enc: _Encoder, files: list[tuple[Path, Container, SegmentRow]], start: int, end: int, at: int
) -> None:
    """Append the frames of ``files`` that lie in [start, end) to ``enc``, from ``at`` ms."""
    for path, kind, seg in files:
        for frame, t_ms, rate in _segment_frames(path, kind, seg):
            if start <= t_ms < end:
                enc.put(frame, at + round(t_ms - start), rate)


def _faces_left(path: Path, opts: RedactOptions, detector: FaceDetector) -> int:
    """How many frames of the redacted clip the detector still finds a face in."""
    found = 0
    with _demux(path, "mp4") as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            if len(detector.detect_scaled(rgb, opts.threshold, opts.detect_width)):
                found += 1
    return found


#: Gives one segment's checked plaintext as a file to decode: (path, container).
#: The default, :func:`_checked_copy`, copies the archived file into the working folder;
#: under custody (:mod:`custodes.access.opening`) the ciphertext is decrypted in memory.
SegmentOpener = Callable[[SegmentRow, Path, int], tuple[Path, Container]]


def in_window(rows: list[SegmentRow], plan: ReleasePlan) -> dict[str, list[SegmentRow]]:
    """The segments a release uses, by camera, each camera's in order of time."""
    by_camera: dict[str, list[SegmentRow]] = {}
    for r in sorted(rows, key=lambda r: (r.camera, r.start_ms)):
        if r.camera in plan.cameras and r.start_ms < plan.to_ms and r.end_ms > plan.from_ms:
            by_camera.setdefault(r.camera, []).append(r)
    if not by_camera:
        raise NotFoundError("no recorded segment of the approved cameras lies in the window")
    return by_camera


class _Redactor:
    """Blurs faces in a cut (one detector for every camera of a release), then checks that
    the detector finds none left; or, for an unredacted export, leaves the cut as it is."""

    def __init__(self, unredacted: bool) -> None:
        self.unredacted = unredacted
        self.redaction: dict[str, Any] = {"method": "none"}
        self._parts: tuple[Any, Any] | None = None

    def __call__(self, cut: Path, final: Path) -> None:
        if self.unredacted:
            shutil.move(cut, final)
            return
        from custodes.redact.pipeline import redact_file

        if self._parts is None:
            from custodes.redact.detect import FaceDetector
            from custodes.redact.options import RedactOptions

            opts = RedactOptions()
            self._parts = (opts, FaceDetector(threads=opts.threads))
        opts, detector = self._parts
        redact_file(cut, final, opts, detector=detector)
        left = _faces_left(final, opts, detector)
        if left:
            raise VerificationError(
                f"the redacted clip still shows a face in {left} frame(s) at the detector's"
                f" threshold {opts.threshold}, so it is not released"
            )
        self.redaction = {"faces": True, "plates": False, "method": opts.mode}


def _render(
    work: Path,
    name: str,
    cameras: dict[str, list[SegmentRow]],
    plan: ReleasePlan,
    get: SegmentOpener,
    digests: list[str],
    redact: _Redactor,
) -> Path | None:
    """Cut ``cameras`` (one after another) into one MP4 in ``work``, redacted; None when
    the window holds no frame of them.  Each segment's logged digest goes to ``digests``."""
    joined = work / f"{name}.joined.mp4"
    enc = _Encoder(joined)
    at = 0
    try:
        for segs in cameras.values():
            files: list[tuple[Path, Container, SegmentRow]] = []
            for s in segs:
                copy, kind = get(s, work, len(digests))
                files.append((copy, kind, s))
                digests.append(s.sha256)
            start = max(plan.from_ms, segs[0].start_ms)
            end = min(plan.to_ms, segs[-1].end_ms)
            _cut(enc, files, start, end, at)
            at += end - start
    finally:
        enc.close()
    if enc.container is None:
        return None
    final = work / f"{name}.mp4"
    redact(joined, final)
    return final


def build_clip(
    data: Path,
    rows: list[SegmentRow],
    plan: ReleasePlan,
    out: Path,
    *,
    opener: SegmentOpener | None = None,
) -> Built:
    """Check every segment against its logged digest and container, cut, redact, and
    check that the detector finds no face left; write ``out``.

    One camera gives one MP4.  Several give one MP4 per camera, named by camera and
    time, in a zip with their manifest (:mod:`custodes.access.archive`); the digest
    returned is then the manifest's, and :attr:`Built.manifest` says what it covers.

    ``opener`` gives each segment's checked plaintext (default: a checked copy of the
    archived file)."""
    from custodes.access.archive import ArchiveFile, write_archive

    by_camera = in_window(rows, plan)
    get = opener or (lambda s, work, n: _checked_copy(data, s, work, n))
    digests: list[str] = []
    redact = _Redactor(plan.unredacted)
    with tempfile.TemporaryDirectory(prefix=".release-", dir=out.parent) as tmp:
        work = Path(tmp)
        if len(by_camera) == 1:
            made = _render(work, "clip", by_camera, plan, get, digests, redact)
            if made is None:
                raise NotFoundError("the segments in the window hold no frame to release")
            shutil.move(made, out)
            sha, size = file_sha256(out)
            return Built(digests, redact.redaction, sha, size)
        files: list[ArchiveFile] = []
        for n, (camera, segs) in enumerate(by_camera.items()):
            made = _render(work, f"camera{n}", {camera: segs}, plan, get, digests, redact)
            if made is not None:
                start = max(plan.from_ms, segs[0].start_ms)
                end = min(plan.to_ms, segs[-1].end_ms)
                files.append(ArchiveFile(made, camera, format_time(start), format_time(end)))
        if not files:
            raise NotFoundError("the segments in the window hold no frame to release")
        output = write_archive(out, plan.request.id, redact.redaction, files)
    return Built(digests, redact.redaction, output["sha256"], output["bytes"], output["manifest"])


def _checked_copy(data: Path, s: SegmentRow, work: Path, n: int) -> tuple[Path, Container]:
    """A private copy of the segment's archived file, checked against its logged digest
    and against the containers a recorder writes (by content)."""
    where = f"camera {s.camera} at {format_time(s.start_ms)}"
    path = segment_path(data, s.camera, s.start_ms)
    if path is None:
        raise NotFoundError(f"the segment of {where} is not in the archive")
    # Check the copy that is decoded, so the file cannot change in between.
    copy = work / f"seg{n}"
    digest = _copy_hashed(path, copy)
    if digest != s.sha256:
        raise VerificationError(
            f"the archived segment of {where} does not match its logged digest,"
            " so it is not released"
        )
    kind = sniff(copy)
    if kind is None:
        raise VerificationError(
            f"the archived segment of {where} is not an MP4, MPEG-TS or Matroska file"
            " (a playlist or a list of files is never released), so it is not released"
        )
    return copy, kind


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
