"""One live segment in one pass: decoded once, faces hidden, encoded once to MPEG-TS.

The clip path (:func:`custodes.access.release.build_clip`) cuts a segment into an MP4,
redacts that file into another and decodes the result again to look for faces left:
three decodes and two encodes, and a new detector each time.  A live segment is shown
whole, so here the caller decodes it once and hands its frames to :func:`encode_segment`,
which keeps every guarantee of the clip path:

1. the same redaction (:class:`~custodes.redact.options.RedactOptions` defaults, as the
   logged ``redaction`` says): one frame in ``detect_every`` looked at by the detector
   (one in ``full_every`` at ``detect_width``, the others at ``coarse_width`` plus a
   full-resolution look around the small faces being tracked), the first and last frames
   always at full width, and the :class:`~custodes.redact.track.Tracker` covering every
   frame in between, before and after (interpolation, holds, the margin);
2. the same check: every encoded frame is decoded again as it leaves the encoder (the
   very bytes that will be shown) and the detector run over it at the redactor's own
   threshold and ``detect_width``; a face found fails the segment closed
   (:class:`~custodes.errors.VerificationError`, nothing is returned);
3. frames timed in milliseconds from the grant's start, so that the player's timeline
   runs on from segment to segment.

Three stages overlap on a 2-core machine: the caller's thread decodes, masks and
encodes; one thread runs the redaction's detections (in order, feeding the tracker);
two more run the check on the encoded frames (the check looks at every frame, the
redaction at one in three, so it is most of the work).  The detectors are kept between
segments (:class:`Detectors`), since making them costs more than a segment's detections.
An unredacted grant (``opts=None``) is only re-encoded.
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from custodes.errors import VerificationError
from custodes.redact.detect import FaceDetector, nms
from custodes.redact.mask import hide_yuv420
from custodes.redact.options import RedactOptions
from custodes.redact.track import Tracker, expand

__all__ = ["LIVE_X264", "Detectors", "LiveSegment", "encode_segment"]

#: libx264 for live segments: no B-frames and no lookahead (tune zerolatency), so every
#: packet leaves as soon as its frame is in, and the check decodes it at once.
LIVE_X264 = {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}


@dataclass(frozen=True)
class LiveSegment:
    """A segment as shown: its MPEG-TS bytes and what the redaction did."""

    body: bytes
    frames: int
    keyframes: int  # frames the redaction's detector ran on
    masked_boxes: int  # boxes hidden, summed over every frame
    checked: int  # encoded frames the check looked at (every one, when redacted)


#: Threads (each with its own detector) that check the encoded frames of one segment.
CHECKERS = 2


class Detectors:
    """Sets of face detectors (one for the redaction, :data:`CHECKERS` for the check) kept
    between segments, one set to a segment being encoded at a time."""

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads
        self._free: queue.SimpleQueue[list[FaceDetector]] = queue.SimpleQueue()

    def _make(self) -> list[FaceDetector]:
        return [FaceDetector(threads=self.threads) for _ in range(1 + CHECKERS)]

    def warm(self) -> None:
        """Make one set ahead (in a thread of its own), so the first segment does not wait."""
        threading.Thread(target=lambda: self._free.put(self._make()), daemon=True).start()

    @contextmanager
    def take(self) -> Iterator[list[FaceDetector]]:
        try:
            got = self._free.get_nowait()
        except queue.Empty:
            got = self._make()
        try:
            yield got
        finally:
            self._free.put(got)


@dataclass
class _Frame:
    index: int
    yuv: np.ndarray  # I420, (H * 3 / 2, W) uint8
    pts_ms: int


def _planes(yuv: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = yuv.reshape(-1)
    cw, ch = w // 2, h // 2
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + cw * ch].reshape(ch, cw)
    v = flat[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw)
    return y, u, v


class _Output:
    """libx264 into MPEG-TS in memory, each packet also decoded again for the check."""

    def __init__(self, w: int, h: int, rate: Fraction, check: bool) -> None:
        import io

        import av

        self.buf = io.BytesIO()
        self.container: Any = av.open(self.buf, "w", format="mpegts")
        v = self.container.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        v.options = dict(LIVE_X264)
        self.stream = v
        self.decoder: Any = av.CodecContext.create("h264", "r") if check else None
        self.last = -1

    def put(self, frame: Any) -> list[Any]:
        """Encode one frame (None: flush); the frames decoded back from its packets."""
        back: list[Any] = []
        for packet in self.stream.encode(frame):
            if self.decoder is not None:
                back.extend(self.decoder.decode(packet))
            self.container.mux(packet)
        if frame is None and self.decoder is not None:
            back.extend(self.decoder.decode(None))
        return back

    def close(self) -> bytes:
        self.container.close()
        return self.buf.getvalue()


def encode_segment(
    frames: Iterable[tuple[Any, int]],
    *,
    offset_ms: int,
    rate: Fraction,
    opts: RedactOptions | None,
    detectors: Detectors,
) -> LiveSegment:
    """Encode ``frames`` (decoded ``av.VideoFrame``, ms since the segment's start) as
    MPEG-TS timed from ``offset_ms``; faces hidden and checked unless ``opts`` is None.

    Raises :class:`~custodes.errors.VerificationError` if the check finds a face, or if
    there is no frame; nothing is returned then."""
    if opts is None:
        return _plain(frames, offset_ms, rate)
    with detectors.take() as (redactor, *checkers):
        return _redacted(frames, offset_ms, rate, opts, redactor, checkers)


def _even_yuv(frame: Any) -> np.ndarray:
    w, h = frame.width - frame.width % 2, frame.height - frame.height % 2
    if (w, h) != (frame.width, frame.height) or frame.format.name != "yuv420p":
        frame = frame.reformat(width=w, height=h, format="yuv420p")
    out: np.ndarray = frame.to_ndarray()
    return out


def _video_frame(yuv: np.ndarray, pts_ms: int) -> Any:
    import av

    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    frame.pts, frame.time_base = pts_ms, Fraction(1, 1000)
    frame.pict_type = av.video.frame.PictureType.NONE
    return frame


def _plain(frames: Iterable[tuple[Any, int]], offset_ms: int, rate: Fraction) -> LiveSegment:
    out: _Output | None = None
    count = 0
    last = -1
    for frame, t_ms in frames:
        pts = offset_ms + t_ms
        if pts <= last:
            continue
        yuv = _even_yuv(frame)
        if out is None:
            out = _Output(yuv.shape[1], yuv.shape[0] * 2 // 3, rate, check=False)
        out.put(_video_frame(yuv, pts))
        last, count = pts, count + 1
    if out is None:
        raise VerificationError("the segment holds no frame to show")
    out.put(None)
    return LiveSegment(out.close(), count, 0, 0, 0)


def _redacted(
    frames: Iterable[tuple[Any, int]],
    offset_ms: int,
    rate: Fraction,
    opts: RedactOptions,
    redactor: FaceDetector,
    checkers: list[FaceDetector],
) -> LiveSegment:
    k = opts.detect_every
    lookahead = opts.hold + opts.full_every
    tracker = Tracker(hold=opts.hold, max_gap=opts.hold)
    lock = threading.Lock()
    pending: collections.deque[_Frame] = collections.deque()
    keys: collections.deque[tuple[int, concurrent.futures.Future[None]]] = collections.deque()
    checks: list[concurrent.futures.Future[int]] = []
    stats = {"frames": 0, "keyframes": 0, "boxes": 0}
    out: _Output | None = None
    w = h = 0

    def detect(index: int, yuv: np.ndarray, full: bool) -> None:
        """The redaction's look at one keyframe (as :mod:`custodes.redact.video` does)."""
        rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
        boxes = redactor.detect_scaled(
            rgb, opts.threshold, opts.detect_width if full else opts.coarse_width
        )
        if not full:
            with lock:
                rois = tracker.regions(index, below=28 * w / opts.coarse_width, width=w, height=h)
            if rois:
                extra = redactor.detect_regions(
                    rgb, rois, opts.threshold, min(1.0, opts.detect_width / w)
                )
                boxes = np.concatenate([boxes, extra])
                boxes = boxes[nms(boxes, 0.3)]
        with lock:
            tracker.update(index, boxes)

    idle: queue.SimpleQueue[FaceDetector] = queue.SimpleQueue()
    for c in checkers:
        idle.put(c)

    def check(shown: Any) -> int:
        """1 if the detector finds a face in a frame as it will be shown."""
        rgb = shown.to_ndarray(format="rgb24")
        checker = idle.get()  # one detector to a thread at a time (its buffers are its own)
        try:
            return int(len(checker.detect_scaled(rgb, opts.threshold, opts.detect_width)) > 0)
        finally:
            idle.put(checker)

    def emit(p: _Frame, checking: concurrent.futures.ThreadPoolExecutor) -> None:
        while keys and keys[0][0] <= p.index + lookahead:
            keys.popleft()[1].result()
        with lock:
            boxes = expand(tracker.boxes_at(p.index), opts.margin, w, h)
            tracker.forget_before(p.index)
        hide_yuv420(_planes(p.yuv, w, h), boxes, opts.mode, opts.fill_rgb)
        assert out is not None
        for shown in out.put(_video_frame(p.yuv, p.pts_ms)):
            checks.append(checking.submit(check, shown))
        stats["boxes"] += len(boxes)
        stats["frames"] += 1

    with (
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="live-detect") as detecting,
        concurrent.futures.ThreadPoolExecutor(
            len(checkers), thread_name_prefix="live-check"
        ) as checking,
    ):
        index = 0
        last = -1
        try:
            for frame, t_ms in frames:
                pts = offset_ms + t_ms
                if pts <= last:
                    continue
                last = pts
                yuv = _even_yuv(frame)
                if out is None:
                    h, w = yuv.shape[0] * 2 // 3, yuv.shape[1]
                    out = _Output(w, h, rate, check=True)
                p = _Frame(index, yuv, pts)
                if index % k == 0:
                    full = index % opts.full_every == 0
                    keys.append((index, detecting.submit(detect, index, yuv, full)))
                    stats["keyframes"] += 1
                pending.append(p)
                index += 1
                while pending and index - 1 - pending[0].index >= lookahead + opts.full_every:
                    emit(pending.popleft(), checking)
            if out is None:
                raise VerificationError("the segment holds no frame to show")
            if (index - 1) % k != 0:  # the last frame is always looked at in full
                keys.append((index - 1, detecting.submit(detect, index - 1, pending[-1].yuv, True)))
                stats["keyframes"] += 1
            while pending:
                emit(pending.popleft(), checking)
            for shown in out.put(None):
                checks.append(checking.submit(check, shown))
            body = out.close()
        except BaseException:
            for fut in [f for _, f in keys] + checks:
                fut.cancel()
            raise
        faces = sum(f.result() for f in checks)
    if faces:
        raise VerificationError(
            f"the redacted segment still shows a face in {faces} frame(s) at the detector's"
            f" threshold {opts.threshold}, so it is not shown"
        )
    if len(checks) != stats["frames"]:
        raise VerificationError(
            f"only {len(checks)} of the segment's {stats['frames']} frames could be checked"
            " for faces, so it is not shown"
        )
    return LiveSegment(body, stats["frames"], stats["keyframes"], stats["boxes"], len(checks))
