"""A composite evaluation set for face redaction, built only from shipped images.

Nothing here comes from the detector under test: every true box is where
this module pasted a face, computed from a box drawn by hand on the source
image (:data:`HAND_BOXES`) or, for the LFW thumbnails that ship with
scikit-image, the whole thumbnail.

Sources (all shipped inside PyPI packages, nothing downloaded):

- faces: ``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain),
  ``skimage.data.camera()`` (the cameraman), matplotlib's sample
  ``grace_hopper.jpg`` (US Navy, public domain), and the 100 face thumbnails
  of ``skimage.data.lfw_subset()``;
- backgrounds and negatives: the other scikit-image sample images
  (coffee, rocket, brick, grass, gravel, Hubble, motorcycle, coins, page,
  text, horse, the cat ``chelsea`` as a hard negative, ...).

Two products:

- :func:`composite_set`: still 1280x720 images with faces 12-256 px high at
  known boxes, with blur, noise, lighting changes and JPEG compression, plus
  negatives (no face at all);
- :func:`moving_clip`: frames of faces that move, grow, enter and leave
  the frame and cut in, with the true box of each face in each frame.

And the metrics: :func:`coverage` (how much of a true box a mask covers) and
:func:`exposure` (whether a face region still carries its original detail
after redaction: the "unblurred" test).

This module needs scikit-image and matplotlib, the development extras; the
redaction path never imports it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "BUCKETS",
    "HAND_BOXES",
    "MAGENTA",
    "ClipFrame",
    "Sample",
    "bucket_of",
    "composite_set",
    "coverage",
    "exposure",
    "magenta_mask",
    "moving_clip",
    "score",
]

Box = tuple[float, float, float, float]

#: Face boxes drawn by hand on the source images: (x0, y0, x1, y1), forehead
#: to chin and cheek to cheek, in source pixels.
HAND_BOXES: dict[str, Box] = {
    "astronaut": (178, 68, 270, 185),
    "grace_hopper": (165, 150, 365, 335),
    "camera": (183, 108, 252, 192),
}

#: Face-height buckets (px) that recall is reported in: [lo, hi).
BUCKETS: tuple[tuple[int, int], ...] = (
    (12, 16),
    (16, 24),
    (24, 32),
    (32, 48),
    (48, 64),
    (64, 128),
    (128, 257),
)

_BACKGROUNDS = (
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "motorcycle_left",
    "coins",
    "page",
    "text",
    "horse",
    "immunohistochemistry",
    "retina",
    "chelsea",
    "moon",
)
_DISTRACTORS = ("chelsea", "coffee", "rocket", "coins", "text", "horse", "logo", "clock")


def bucket_of(height: float) -> tuple[int, int] | None:
    """The bucket a face of this height (px) falls in, or None."""
    for lo, hi in BUCKETS:
        if lo <= height < hi:
            return (lo, hi)
    return None


@dataclasses.dataclass(frozen=True)
class Sample:
    """One composite still: a BGR image and the true face boxes in it."""

    name: str
    image: np.ndarray
    faces: tuple[Box, ...]


@dataclasses.dataclass(frozen=True)
class ClipFrame:
    """One frame of a moving-face clip and the true (visible) box of each face."""

    image: np.ndarray
    faces: tuple[Box, ...]


@dataclasses.dataclass(frozen=True)
class _Source:
    name: str
    image: np.ndarray  # BGR uint8
    box: Box  # face box in image
    context: float  # how much context around the face may be pasted, in face sizes


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = (np.clip(img.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)


@cache
def _faces() -> tuple[_Source, ...]:
    import skimage.data as data

    out = [
        _Source("astronaut", _bgr(data.astronaut()), HAND_BOXES["astronaut"], 0.5),
        _Source("camera", _bgr(data.camera()), HAND_BOXES["camera"], 0.4),
    ]
    grace = _grace_hopper()
    if grace is not None:
        out.append(_Source("grace_hopper", grace, HAND_BOXES["grace_hopper"], 0.35))
    lfw = data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    for i, face in enumerate(lfw):
        img = (np.clip(face, 0.0, 1.0) * 255).astype(np.uint8)
        out.append(_Source(f"lfw{i:03d}", _bgr(img), (0, 0, 25, 25), 0.0))
    return tuple(out)


def _grace_hopper() -> np.ndarray | None:
    try:
        import matplotlib.cbook as cbook
    except ImportError:
        return None
    path = Path(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return img


@cache
def _named(name: str) -> np.ndarray:
    import skimage.data as data

    if name == "motorcycle_left":
        return _bgr(data.stereo_motorcycle()[0])
    return _bgr(getattr(data, name)())


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = _named(_BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))])
    ih, iw = img.shape[:2]
    # A random crop with the output aspect ratio, then resized.
    scale = rng.uniform(0.5, 1.0)
    cw = min(iw, int(ih * w / h))
    ch = int(cw * h / w)
    cw, ch = max(8, int(cw * scale)), max(8, int(ch * scale))
    x = int(rng.integers(0, iw - cw + 1))
    y = int(rng.integers(0, ih - ch + 1))
    out = cv2.resize(img[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _patch(src: _Source, height: int, rng: np.random.Generator) -> tuple[np.ndarray, Box]:
    """Cut the face with its context, scale it so the face is ``height`` px.

    Returns the patch (BGRA, alpha feathered) and the face box in the patch.
    """
    x0, y0, x1, y1 = src.box
    fw, fh = x1 - x0, y1 - y0
    c = src.context
    ih, iw = src.image.shape[:2]
    cx0, cy0 = max(0, int(x0 - c * fw)), max(0, int(y0 - c * fh))
    cx1, cy1 = min(iw, int(math.ceil(x1 + c * fw))), min(ih, int(math.ceil(y1 + c * fh)))
    crop = src.image[cy0:cy1, cx0:cx1]
    s = height / fh
    aspect = rng.uniform(0.92, 1.08)
    pw = max(2, round((cx1 - cx0) * s * aspect))
    ph = max(2, round((cy1 - cy0) * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    patch = cv2.resize(crop, (pw, ph), interpolation=interp)
    sx, sy = pw / (cx1 - cx0), ph / (cy1 - cy0)
    box = ((x0 - cx0) * sx, (y0 - cy0) * sy, (x1 - cx0) * sx, (y1 - cy0) * sy)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
        box = (pw - box[2], box[1], pw - box[0], box[3])
    alpha = _feather(ph, pw, box)
    return np.dstack([np.ascontiguousarray(patch), alpha]), box


def _feather(ph: int, pw: int, box: Box) -> np.ndarray:
    """Alpha: 255 over the face box, fading to 0 at the patch edge."""
    ys = np.arange(ph, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(pw, dtype=np.float32)[None, :] + 0.5
    x0, y0, x1, y1 = box
    # Distance outside the face box, relative to the context available.
    dx = np.maximum(np.maximum(x0 - xs, xs - x1), 0) / max(1.0, min(x0, pw - x1))
    dy = np.maximum(np.maximum(y0 - ys, ys - y1), 0) / max(1.0, min(y0, ph - y1))
    d = np.maximum(dx, dy)
    alpha = np.clip(1.5 - 1.5 * d, 0.0, 1.0)
    return (alpha * 255).astype(np.uint8)


def _augment(patch: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """Lighting, blur and noise on the colour channels of a BGRA patch."""
    rgb = patch[:, :, :3].astype(np.float32)
    gain = rng.uniform(0.55, 1.4)
    gamma = rng.uniform(0.7, 1.5)
    cast = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    rgb = 255.0 * (np.clip(rgb * gain * cast, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.35:
        sigma = rng.uniform(0.5, max(0.6, height / 40))
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    if rng.random() < 0.35:
        rgb = rgb + rng.normal(0, rng.uniform(3, 12), rgb.shape).astype(np.float32)
    out = patch.copy()
    out[:, :, :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    return out


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend a BGRA patch onto the canvas at (x, y), clipped to the canvas."""
    h, w = canvas.shape[:2]
    ph, pw = patch.shape[:2]
    ax0, ay0, ax1, ay1 = max(0, x), max(0, y), min(w, x + pw), min(h, y + ph)
    if ax0 >= ax1 or ay0 >= ay1:
        return
    p = patch[ay0 - y : ay1 - y, ax0 - x : ax1 - x]
    a = p[:, :, 3:4].astype(np.float32) / 255.0
    region = canvas[ay0:ay1, ax0:ax1].astype(np.float32)
    canvas[ay0:ay1, ax0:ax1] = (p[:, :, :3] * a + region * (1 - a)).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if out is None:
        raise RuntimeError("OpenCV could not round-trip an image through JPEG")
    return np.asarray(out)


def _overlaps(a: Box, others: list[Box], pad: float) -> bool:
    return any(
        a[0] - pad < b[2] and b[0] - pad < a[2] and a[1] - pad < b[3] and b[1] - pad < a[3]
        for b in others
    )


def composite_set(
    *,
    positives: int = 240,
    negatives: int = 60,
    seed: int = 0,
    size: tuple[int, int] = (1280, 720),
) -> Iterator[Sample]:
    """Composite stills: ``positives`` images with 1-3 faces, ``negatives`` with none.

    Face heights cycle through :data:`BUCKETS` so each bucket gets about the
    same number of faces; LFW thumbnails (25 px) are used up to 48 px only.
    Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    faces = _faces()
    hires = [f for f in faces if not f.name.startswith("lfw")]
    lfw = [f for f in faces if f.name.startswith("lfw")]
    w, h = size
    k = 0
    for i in range(positives):
        canvas = _background(rng, w, h)
        if rng.random() < 0.5:
            canvas = _distract(canvas, rng, 1)
        boxes: list[Box] = []
        for _ in range(int(rng.integers(1, 4))):
            lo, hi = BUCKETS[k % len(BUCKETS)]
            height = int(rng.integers(lo, hi))
            pool = lfw if height < 48 and rng.random() < 0.6 else hires
            src = pool[int(rng.integers(len(pool)))]
            patch, fbox = _patch(src, height, rng)
            patch = _augment(patch, height, rng)
            ph, pw = patch.shape[:2]
            for _try in range(30):
                x = int(rng.integers(-int(fbox[0]), max(1, w - int(fbox[2]))))
                y = int(rng.integers(-int(fbox[1]), max(1, h - int(fbox[3]))))
                gbox = (x + fbox[0], y + fbox[1], x + fbox[2], y + fbox[3])
                if not _overlaps(gbox, boxes, pad=0.5 * height):
                    break
            else:
                continue
            _paste(canvas, patch, x, y)
            boxes.append(gbox)
            k += 1
        canvas = _finish(canvas, rng)
        yield Sample(f"pos{i:04d}", canvas, tuple(boxes))
    for i in range(negatives):
        canvas = _distract(_background(rng, w, h), rng, int(rng.integers(1, 4)))
        yield Sample(f"neg{i:04d}", _finish(canvas, rng), ())


def _distract(canvas: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Paste n face-free objects (a cat's face, coins, text, ...)."""
    h, w = canvas.shape[:2]
    for _ in range(n):
        img = _named(_DISTRACTORS[int(rng.integers(len(_DISTRACTORS)))])
        ih, iw = img.shape[:2]
        target = int(rng.integers(32, 300))
        s = target / max(ih, iw)
        pw, ph = max(4, int(iw * s)), max(4, int(ih * s))
        small = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA)
        alpha = _feather(ph, pw, (pw * 0.2, ph * 0.2, pw * 0.8, ph * 0.8))
        x, y = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
        _paste(canvas, np.dstack([small, alpha]), x, y)
    return canvas


def _finish(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global lighting, sensor noise and JPEG compression."""
    img = canvas.astype(np.float32) * rng.uniform(0.7, 1.2) + rng.uniform(-15, 15)
    if rng.random() < 0.5:
        img = img + rng.normal(0, rng.uniform(1, 6), img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.75:
        out = _jpeg(out, int(rng.integers(25, 96)))
    return out


# -- moving-face clips ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Mover:
    src: _Source
    start: int  # first frame the face is in the scene
    stop: int  # one past the last frame
    path: tuple[tuple[float, float], tuple[float, float]]  # face centre at start and at stop
    heights: tuple[float, float]  # face height at start and at stop
    wobble: float  # amplitude of a sideways sine, in face heights


def moving_clip(
    *,
    frames: int = 48,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    min_height: int = 28,
) -> Iterator[ClipFrame]:
    """Frames of faces moving through a still scene, with their true boxes.

    Three faces cross the frame in three horizontal lanes (so that they never
    occlude one another), entering through one side edge and leaving through
    the other, growing or shrinking and bobbing up and down; the top lane runs
    along the top edge, cutting the face off. A fourth face cuts in and out
    abruptly, in the middle lane while that lane's crosser is away.
    The reported box is the part of the face box inside the frame; faces
    wholly outside are not reported. Face heights stay in [min_height, h/5].
    """
    rng = np.random.default_rng(seed)
    w, h = size
    max_height = max(min_height + 1, h // 5)
    hires = [f for f in _faces() if not f.name.startswith("lfw")]
    bg = _background(rng, w, h)
    lanes = ((0.08, 0.16), (0.45, 0.55), (0.78, 0.86))
    movers = []
    for i, (lo, hi) in enumerate(lanes):
        h0 = float(rng.uniform(min_height, max_height))
        h1 = float(np.clip(h0 * rng.uniform(0.6, 1.6), min_height, max_height))
        y0, y1 = rng.uniform(lo, hi) * h, rng.uniform(lo, hi) * h
        xa, xb = -0.6 * h0, w + 0.6 * h1
        p0, p1 = ((xa, y0), (xb, y1)) if i % 2 == 0 else ((xb, y0), (xa, y1))
        wobble = float(rng.uniform(0.0, 0.15))
        movers.append(_Mover(hires[i % len(hires)], 0, frames, (p0, p1), (h0, h1), wobble))
    # The cut-in face: left in the middle lane, while that lane's crosser (right to
    # left) is still on the right.
    hc = float(rng.uniform(min_height, max_height))
    pc = (rng.uniform(0.12, 0.2) * w, 0.5 * h)
    movers.append(_Mover(hires[0], frames // 4, frames // 2, (pc, pc), (hc, hc), 0.0))
    patches = [
        _patch(m.src, 256, np.random.default_rng(seed + 7 + j)) for j, m in enumerate(movers)
    ]
    for t in range(frames):
        canvas = bg.copy()
        boxes: list[Box] = []
        for m, (base, bbox) in zip(movers, patches, strict=True):
            if not m.start <= t < m.stop:
                continue
            u = (t - m.start) / max(1, m.stop - m.start - 1)
            fh = m.heights[0] + u * (m.heights[1] - m.heights[0])
            cx = m.path[0][0] + u * (m.path[1][0] - m.path[0][0])
            cy = m.path[0][1] + u * (m.path[1][1] - m.path[0][1])
            cy += m.wobble * fh * math.sin(2 * math.pi * 1.5 * u)
            s = fh / (bbox[3] - bbox[1])
            pw, ph = max(2, round(base.shape[1] * s)), max(2, round(base.shape[0] * s))
            patch = cv2.resize(base, (pw, ph), interpolation=cv2.INTER_AREA)
            fx0, fy0, fx1, fy1 = (v * s for v in bbox)
            x = round(cx - (fx0 + fx1) / 2)
            y = round(cy - (fy0 + fy1) / 2)
            _paste(canvas, patch, x, y)
            vis = (max(0.0, x + fx0), max(0.0, y + fy0), min(w, x + fx1), min(h, y + fy1))
            if vis[2] > vis[0] and vis[3] > vis[1]:
                boxes.append(vis)
        noise = rng.normal(0, 2.0, canvas.shape).astype(np.float32)
        canvas = np.clip(canvas.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        yield ClipFrame(canvas, tuple(boxes))


# -- metrics ----------------------------------------------------------------


def coverage(mask: np.ndarray, box: Box) -> float:
    """The fraction of the (integer-rounded) box that a boolean mask covers."""
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = int(round(box[2])), int(round(box[3]))
    region = mask[y0:y1, x0:x1]
    return float(region.mean()) if region.size else 0.0


def _detail(gray: np.ndarray, sigma: float) -> np.ndarray:
    g = gray.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), sigma)


def _kept(a: np.ndarray, b: np.ndarray) -> float:
    """The share of a's detail that b reproduces: <a, b> / <a, a>, clipped to [0, 1]."""
    den = float((a * a).sum())
    return min(1.0, max(0.0, float((a * b).sum()) / den)) if den > 1e-6 else 0.0


def exposure(original: np.ndarray, redacted: np.ndarray, box: Box) -> float:
    """How much of a face's own detail survives redaction, from 0 (none) to 1.

    The metric: take the face region in both frames (grey) and keep its
    detail, the region minus a Gaussian blur of it (sigma = height/10, at
    least 1 px): the eyes, nose, mouth and edges that make a face a face. The
    share of the original detail that the redacted frame reproduces is
    ``<d_orig, d_red> / <d_orig, d_orig>`` (the regression slope of one on
    the other, clipped to [0, 1]); it is computed over the whole region and
    over each of its four quadrants (when each is at least 12 px square),
    and the result is the largest of the five. A face left as it was scores
    near 1 (0.9 or more after lossy re-encoding); a blurred, pixelated or
    filled face scores near 0; a face half covered scores high on its
    uncovered quadrants.
    """
    x0, y0 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
    a = cv2.cvtColor(original[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    b = cv2.cvtColor(redacted[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    if a.size == 0:
        return 0.0
    sigma = max(1.0, (y1 - y0) / 10)
    da, db = _detail(a, sigma), _detail(b, sigma)
    best = _kept(da, db)
    hh, hw = da.shape[0] // 2, da.shape[1] // 2
    if hh >= 12 and hw >= 12:  # quadrants big enough to measure
        for sy in (slice(0, hh), slice(hh, None)):
            for sx in (slice(0, hw), slice(hw, None)):
                best = max(best, _kept(da[sy, sx], db[sy, sx]))
    return best


#: The fill colour (RGB) used to read back where a tool drew its masks.
MAGENTA = (255, 0, 255)


def magenta_mask(bgr: np.ndarray) -> np.ndarray:
    """Pixels a tool filled with :data:`MAGENTA` (exactly, give or take 8 per channel)."""
    b, g, r = (bgr[:, :, i].astype(np.int16) for i in range(3))
    return (r >= 247) & (g <= 8) & (b >= 247)


def score(
    samples: list[Sample], masks: list[np.ndarray], *, hidden_at: float = 0.8
) -> dict[str, object]:
    """Recall per bucket and false positives of some masks over a composite set.

    A true face counts as hidden when the mask covers at least ``hidden_at``
    of its box. A false positive is a connected region of the mask that
    touches no true face box. Returns a JSON-ready dict: ``recall`` per
    bucket ("lo-hi": [hidden, total]), ``recall_24`` (faces 24 px and up),
    ``recall_all``, ``false_positives`` (regions) and ``negatives_with_fp``
    (face-free images with any mask).
    """
    hit: dict[tuple[int, int], int] = {b: 0 for b in BUCKETS}
    tot: dict[tuple[int, int], int] = {b: 0 for b in BUCKETS}
    fps = 0
    neg_fp = 0
    for s, m in zip(samples, masks, strict=True):
        for box in s.faces:
            b = bucket_of(box[3] - box[1])
            if b is None:
                continue
            tot[b] += 1
            hit[b] += coverage(m, box) >= hidden_at
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        own = 0
        for i in range(1, n):
            x, y, w, h = stats[i, :4]
            if not any(
                x < bx1 and bx0 < x + w and y < by1 and by0 < y + h
                for bx0, by0, bx1, by1 in s.faces
            ):
                own += 1
        fps += own
        neg_fp += bool(own) and not s.faces
    big = [b for b in BUCKETS if b[0] >= 24]
    return {
        "recall": {f"{lo}-{hi - 1}": [hit[(lo, hi)], tot[(lo, hi)]] for lo, hi in BUCKETS},
        "recall_24": sum(hit[b] for b in big) / max(1, sum(tot[b] for b in big)),
        "recall_all": sum(hit.values()) / max(1, sum(tot.values())),
        "faces": sum(tot.values()),
        "images": len(samples),
        "negatives": sum(1 for s in samples if not s.faces),
        "false_positives": fps,
        "negatives_with_fp": neg_fp,
    }
