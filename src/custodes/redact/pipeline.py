"""Redact one file, video or image, without ever leaving a partial output behind.

The output is written to a hidden temporary file in the destination folder
and renamed over the destination only once it is complete; on any error the
temporary file is removed, so a file at the destination is always whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from custodes.errors import FormatError, UsageError
from custodes.redact.detect import FaceDetector, nms
from custodes.redact.mask import hide_bgr
from custodes.redact.options import RedactOptions
from custodes.redact.provenance import C2paSigning, check_c2pa, embed_c2pa
from custodes.redact.track import expand
from custodes.redact.video import Progress, check_suffix, redact_video

__all__ = [
    "IMAGE_SUFFIXES",
    "RedactResult",
    "atomic_output",
    "check_input",
    "is_image",
    "redact_array",
    "redact_file",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclasses.dataclass(frozen=True)
class RedactResult:
    """What one redaction did."""

    kind: str  # "video" or "image"
    frames: int
    width: int
    height: int
    keyframes: int
    masked_boxes: int
    audio_streams_kept: int


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def check_input(src: Path) -> None:
    """Refuse, in one sentence, an input that is not a non-empty regular file."""
    if not src.exists():
        raise UsageError(f"{src} does not exist.")
    if src.is_dir():
        raise UsageError(f"{src} is a directory, not a video or image file.")
    if not src.is_file():
        raise UsageError(f"{src} is not a regular file.")
    if src.stat().st_size == 0:
        raise FormatError(f"{src} is empty (0 bytes).")


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` if the block succeeds."""
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"Cannot write {dst}: the folder {folder} does not exist.")
    if dst.is_dir():
        raise UsageError(f"Cannot write {dst}: it is a directory.")
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".partial", dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def redact_array(
    image: np.ndarray, opts: RedactOptions, detector: FaceDetector
) -> tuple[np.ndarray, np.ndarray]:
    """Redact a BGR image in memory; returns the image and the masked boxes."""
    h, w = image.shape[:2]
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    dets = detector.detect_scaled(rgb, opts.threshold, opts.detect_width)
    if w > opts.coarse_width:  # both passes, as a video keyframe pair would
        coarse = detector.detect_scaled(rgb, opts.threshold, opts.coarse_width)
        dets = np.concatenate([dets, coarse])
        dets = dets[nms(dets, 0.3)]
    boxes = expand(dets, opts.margin, w, h)
    out = image.copy()
    hide_bgr(out, boxes, opts.mode, opts.fill_rgb)
    return out, boxes


def _redact_image(
    src: Path, dst: Path, suffix: str, opts: RedactOptions, detector: FaceDetector
) -> RedactResult:
    data = np.fromfile(src, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise FormatError(f"Cannot read {src}: it is damaged, truncated or not an image.")
    out, boxes = redact_array(image, opts, detector)
    ok, buf = cv2.imencode(suffix, out)
    if not ok:
        raise FormatError(f"Cannot encode the redacted image as {suffix}.")
    dst.write_bytes(buf.tobytes())
    h, w = image.shape[:2]
    return RedactResult("image", 1, w, h, 1, len(boxes), 0)


def _sign(src: Path, dst: Path, tmp: Path, c2pa: C2paSigning | None) -> None:
    """Replace the finished temporary output by a C2PA-signed copy of it."""
    if c2pa is None:
        return
    with atomic_output(tmp) as signed:
        embed_c2pa(
            redacted=tmp,
            dst=signed,
            out_suffix=dst.suffix,
            source=src,
            cert_chain_pem=c2pa.cert_chain_pem,
            private_key_pem=c2pa.private_key_pem,
            record=c2pa.record,
        )


def redact_file(
    src: Path,
    dst: Path,
    opts: RedactOptions,
    *,
    detector: FaceDetector | None = None,
    progress: Progress | None = None,
    c2pa: C2paSigning | None = None,
) -> RedactResult:
    """Redact ``src`` into ``dst``: a video (.mp4/.mkv out) or an image (same kind out).

    Metadata (EXIF, GPS, container tags) is not carried over. With ``c2pa``,
    signed C2PA credentials are embedded before the output is renamed into place.
    """
    check_input(src)
    if c2pa is not None:
        check_c2pa(src, dst)
    if src.resolve() == dst.resolve():
        raise UsageError("The output must not overwrite the input.")
    if is_image(src):
        if not is_image(dst):
            raise UsageError(
                f"{src.name} is an image, so the output must be an image too "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})."
            )
        det = detector or FaceDetector(threads=opts.threads)
        with atomic_output(dst) as tmp:
            result = _redact_image(src, tmp, dst.suffix.lower(), opts, det)
            _sign(src, dst, tmp, c2pa)
        return result
    fmt = check_suffix(dst)
    det = detector or FaceDetector(threads=opts.threads)
    with atomic_output(dst) as tmp:
        r = redact_video(src, tmp, fmt, opts, det, progress)
        _sign(src, dst, tmp, c2pa)
    return RedactResult(
        "video", r.frames, r.width, r.height, r.keyframes, r.masked_boxes, r.audio_streams_kept
    )
