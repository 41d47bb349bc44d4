"""Video redaction with PyAV: decode, detect, track, mask and encode, pipelined.

The stages, on a 2-core machine:

1. The main thread demuxes and decodes (FFmpeg's own threads), keeps each
   frame as one YUV 4:2:0 array, and hands one frame in ``detect_every`` to
   the detector thread (onnxruntime releases the GIL while it runs). That
   thread runs the full-resolution pass on one frame in ``full_every`` and
   the coarse pass on the others, plus a full-resolution look at the regions
   around the small faces it is tracking, and feeds the tracker.
2. A frame waits in a lookahead buffer until the detections up to ``hold``
   frames after it are in, so the tracker can cover it from both sides.
3. The main thread masks it in its YUV planes and encodes it with libx264
   (FFmpeg's threads again), then muxes it.

Audio is dropped unless ``keep_audio``; kept audio is copied, not re-encoded.
Errors in the input become one-sentence :class:`FormatError` messages.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from custodes.errors import FormatError, UsageError
from custodes.redact.detect import FaceDetector, nms
from custodes.redact.mask import hide_yuv420
from custodes.redact.options import RedactOptions
from custodes.redact.track import Tracker, expand

__all__ = [
    "CONTAINERS",
    "SUPPORTED_CODECS",
    "VideoResult",
    "check_suffix",
    "probe_frames",
    "redact_video",
]

#: Output containers, by file suffix.
CONTAINERS: dict[str, str] = {".mp4": "mp4", ".mkv": "matroska"}

#: Video codecs that camera recorders write and that custodes redacts.
SUPPORTED_CODECS = frozenset(
    {"h264", "hevc", "mpeg4", "mjpeg", "vp8", "vp9", "av1", "mpeg2video", "mpeg1video", "h263"}
)

Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What a video redaction did."""

    frames: int
    width: int
    height: int
    keyframes: int  # frames the detector ran on
    masked_boxes: int  # boxes masked, summed over all frames
    audio_streams_kept: int


@dataclasses.dataclass
class _Pending:
    index: int
    yuv: np.ndarray  # (H * 3 / 2, W) uint8, I420
    pts: int | None


def _open_input(src: Path) -> Any:
    try:
        return av.open(str(src), "r")
    except av.error.FFmpegError as e:
        raise FormatError(
            f"Cannot read {src}: it is damaged, truncated or not a video ({_reason(e)})."
        ) from None


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).rstrip(".")


def _expected_frames(stream: Any) -> int | None:
    """How many frames the container says the stream has, if it says."""
    if stream.frames:
        return int(stream.frames)
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", str(stream.metadata.get("DURATION", "")))
    rate = stream.average_rate or stream.guessed_rate
    if m and rate:
        seconds = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        return round(seconds * float(rate))
    return None


def _planes(yuv: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = yuv.reshape(-1)
    cw, ch = w // 2, h // 2
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + cw * ch].reshape(ch, cw)
    v = flat[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw)
    return y, u, v


def redact_video(
    src: Path,
    dst: Path,
    container_format: str,
    opts: RedactOptions,
    detector: FaceDetector,
    progress: Progress | None = None,
) -> VideoResult:
    """Redact the video at ``src`` into ``dst`` (written in ``container_format``).

    ``dst`` is written directly: the caller writes to a temporary name and
    renames it on success.
    """
    inp = _open_input(src)
    try:
        return _run(inp, src, dst, container_format, opts, detector, progress)
    finally:
        inp.close()


def _run(
    inp: Any,
    src: Path,
    dst: Path,
    container_format: str,
    opts: RedactOptions,
    detector: FaceDetector,
    progress: Progress | None,
) -> VideoResult:
    if not inp.streams.video:
        raise FormatError(
            f"Cannot read {src}: no video stream was found in it (it may be damaged or truncated)."
        )
    vin = inp.streams.video[0]
    if vin.codec_context is None or not vin.codec_context.name:
        raise FormatError(
            f"Cannot read {src}: its video stream cannot be decoded (the file is damaged or "
            "truncated, or its codec is unknown)."
        )
    codec = vin.codec_context.name
    if codec not in SUPPORTED_CODECS:
        raise FormatError(
            f"{src} uses the {codec} video codec, which custodes does not redact "
            f"(supported: {', '.join(sorted(SUPPORTED_CODECS))})."
        )
    w, h = vin.codec_context.width, vin.codec_context.height
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise FormatError(
            f"{src} has a frame size of {w}x{h}; custodes needs even, non-zero sizes."
        )
    vin.thread_type = "AUTO"
    rate = vin.average_rate or vin.guessed_rate or Fraction(25)
    ains = list(inp.streams.audio) if opts.keep_audio else []

    out = av.open(str(dst), "w", format=container_format)
    try:
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.options = {"crf": str(opts.crf), "preset": opts.preset}
        aouts = {a.index: out.add_stream_from_template(a) for a in ains}
        result = _pipeline(inp, vin, ains, aouts, out, vout, src, opts, detector, progress)
    except av.error.FFmpegError as e:
        raise FormatError(f"Cannot write {dst.name}: {_reason(e)}.") from None
    finally:
        out.close()
    expected = _expected_frames(vin)
    if expected is not None and result.frames < expected - 1:
        raise FormatError(
            f"{src} is truncated: only {result.frames} of {expected} frames could be read."
        )
    return result


def _pipeline(
    inp: Any,
    vin: Any,
    ains: list[Any],
    aouts: dict[int, Any],
    out: Any,
    vout: Any,
    src: Path,
    opts: RedactOptions,
    detector: FaceDetector,
    progress: Progress | None,
) -> VideoResult:
    w, h = vin.codec_context.width, vin.codec_context.height
    k = opts.detect_every
    lookahead = opts.hold + opts.full_every
    slack = opts.full_every  # decoded ahead, so that the detector thread never waits
    tracker = Tracker(hold=opts.hold, max_gap=opts.hold)
    frames: collections.deque[_Pending] = collections.deque()
    keys: collections.deque[tuple[int, concurrent.futures.Future[None]]]
    keys = collections.deque()
    stats = {"frames": 0, "keyframes": 0, "boxes": 0}

    lock = threading.Lock()
    fine = min(1.0, opts.detect_width / w)  # the scale of the full pass
    small = 28 * w / opts.coarse_width  # faces shorter than this are lost by the coarse pass

    def detect(index: int, yuv: np.ndarray, full: bool) -> None:
        """Runs in the detector thread, keyframe after keyframe, in order."""
        rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
        width = opts.detect_width if full else opts.coarse_width
        boxes = detector.detect_scaled(rgb, opts.threshold, width)
        if not full:
            with lock:
                rois = tracker.regions(index, below=small, width=w, height=h)
            if rois:
                extra = detector.detect_regions(rgb, rois, opts.threshold, fine)
                boxes = np.concatenate([boxes, extra])
                boxes = boxes[nms(boxes, 0.3)]
        with lock:
            tracker.update(index, boxes)

    def feed(upto: int) -> None:
        while keys and keys[0][0] <= upto:
            keys.popleft()[1].result()

    def emit(p: _Pending) -> None:
        feed(p.index + lookahead)
        with lock:
            boxes = expand(tracker.boxes_at(p.index), opts.margin, w, h)
            tracker.forget_before(p.index)
        hide_yuv420(_planes(p.yuv, w, h), boxes, opts.mode, opts.fill_rgb)
        frame = av.VideoFrame.from_ndarray(p.yuv, format="yuv420p")
        frame.pts = p.pts
        frame.time_base = vin.time_base
        for packet in vout.encode(frame):
            out.mux(packet)
        stats["boxes"] += len(boxes)
        stats["frames"] += 1
        if progress is not None:
            progress(1)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="detect") as pool:
        index = 0
        last_pts: int | None = None
        try:
            for packet in inp.demux(vin, *ains):
                if packet.stream.index != vin.index:
                    if packet.dts is not None and packet.stream.index in aouts:
                        packet.stream = aouts[packet.stream.index]
                        out.mux(packet)
                    continue
                for frame in packet.decode():
                    if frame.format.name != "yuv420p":
                        frame = frame.reformat(format="yuv420p")
                    pts = frame.pts
                    if pts is None or (last_pts is not None and pts <= last_pts):
                        pts = None if last_pts is None else last_pts + 1
                    last_pts = pts
                    p = _Pending(index, frame.to_ndarray(), pts)
                    if index % k == 0:
                        full = index % opts.full_every == 0
                        keys.append((index, pool.submit(detect, index, p.yuv, full)))
                        stats["keyframes"] += 1
                    frames.append(p)
                    index += 1
                    while frames and index - 1 - frames[0].index >= lookahead + slack:
                        emit(frames.popleft())
        except av.error.FFmpegError as e:
            raise FormatError(
                f"Cannot decode {src} after frame {index}: it is damaged or truncated "
                f"({_reason(e)})."
            ) from None
        if index == 0:
            raise FormatError(f"{src} has no frame that can be decoded.")
        if frames and (index - 1) % k != 0:  # the last frame is always a keyframe
            keys.append((index - 1, pool.submit(detect, index - 1, frames[-1].yuv, True)))
            stats["keyframes"] += 1
        while frames:
            emit(frames.popleft())
    for packet in vout.encode(None):
        out.mux(packet)
    return VideoResult(
        frames=stats["frames"],
        width=w,
        height=h,
        keyframes=stats["keyframes"],
        masked_boxes=stats["boxes"],
        audio_streams_kept=len(aouts),
    )


def check_suffix(path: Path) -> str:
    """The container format for an output path, or a UsageError."""
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"Cannot write video to {path.name}: use a .mp4 or .mkv file name.")
    return fmt


def probe_frames(src: Path) -> int | None:
    """The number of frames the container announces, or None (for a progress bar)."""
    try:
        with av.open(str(src), "r") as inp:
            if not inp.streams.video:
                return None
            vin = inp.streams.video[0]
            n = _expected_frames(vin)
            if n is None and inp.duration:
                rate = vin.average_rate or vin.guessed_rate
                n = round(inp.duration / 1_000_000 * float(rate)) if rate else None
            return n
    except (av.error.FFmpegError, OSError):
        return None
