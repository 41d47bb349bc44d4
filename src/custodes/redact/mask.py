"""Hiding boxes: blur, pixelate or fill, on BGR images and on YUV 4:2:0 planes.

Video is masked in the decoder's own YUV 4:2:0 planes, so a frame is never
converted to RGB and back just to be masked. The luma plane is masked at
full resolution and the two chroma planes at half, over the same region
rounded outwards to even pixels.

Blur and pixelate both keep only a few samples across each box (see
``CELLS``): a face is reduced to a handful of averages before it is drawn
again, which no deconvolution can undo. Blur then smooths those samples;
pixelate shows them as blocks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from custodes.redact.options import MODES, Mode

__all__ = [
    "CELLS",
    "MODES",
    "PIXEL_CELLS",
    "merge_overlapping",
    "Mode",
    "hide_bgr",
    "hide_yuv420",
    "rgb_to_yuv",
]


#: Samples kept across the longer side of a box (margin included): blur smooths
#: them, pixelate shows them as blocks, which keep a little more, hence fewer.
CELLS = 6
PIXEL_CELLS = 4


def rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, U, V for an RGB colour (what libx264 expects)."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return (round(y), round(u), round(v))


def _hide(region: np.ndarray, mode: Mode, fill: int | tuple[int, ...], cells: int) -> None:
    """Hide one region of one image or plane, in place."""
    h, w = region.shape[:2]
    if h == 0 or w == 0:
        return
    if mode == "fill":
        region[...] = fill
        return
    step = max(h, w) / cells
    sw, sh = max(1, round(w / step)), max(1, round(h / step))
    small = cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)
    if mode == "pixelate":
        region[...] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        return
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(1, int(step) | 1)
    region[...] = cv2.blur(big, (k, k), borderType=cv2.BORDER_REPLICATE)


def hide_bgr(
    image: np.ndarray,
    boxes: np.ndarray,
    mode: Mode,
    fill_rgb: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Hide boxes (N x 4, pixel coordinates) in a BGR or grey image, in place."""
    h, w = image.shape[:2]
    fill: int | tuple[int, ...]
    fill = tuple(reversed(fill_rgb)) if image.ndim == 3 else rgb_to_yuv(fill_rgb)[0]
    cells = PIXEL_CELLS if mode == "pixelate" else CELLS
    for x0, y0, x1, y1 in _pixels(boxes, w, h, even=False):
        _hide(image[y0:y1, x0:x1], mode, fill, cells)


def hide_yuv420(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray],
    boxes: np.ndarray,
    mode: Mode,
    fill_rgb: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Hide boxes in the Y, U and V planes of one 4:2:0 frame, in place."""
    yp, up, vp = planes
    h, w = yp.shape
    fy, fu, fv = rgb_to_yuv(fill_rgb)
    cells = PIXEL_CELLS if mode == "pixelate" else CELLS
    for x0, y0, x1, y1 in _pixels(boxes, w, h, even=True):
        _hide(yp[y0:y1, x0:x1], mode, fy, cells)
        cx0, cy0, cx1, cy1 = x0 // 2, y0 // 2, -(-x1 // 2), -(-y1 // 2)
        _hide(up[cy0:cy1, cx0:cx1], mode, fu, cells)
        _hide(vp[cy0:cy1, cx0:cx1], mode, fv, cells)


def merge_overlapping(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Replace boxes that overlap by their bounding box, until none overlap.

    Hiding two overlapping boxes one after the other would pixelate (or
    blur) the overlap on two grids, leaving finer detail than either; one
    box per region keeps every region as coarse as its whole.
    """
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def _pixels(boxes: np.ndarray, w: int, h: int, *, even: bool) -> list[tuple[int, int, int, int]]:
    """Boxes rounded outwards to whole (even, for 4:2:0) pixels, clipped, merged."""
    out = []
    for x0f, y0f, x1f, y1f in boxes[:, :4]:
        x0, y0 = max(0, math.floor(x0f)), max(0, math.floor(y0f))
        x1, y1 = min(w, math.ceil(x1f)), min(h, math.ceil(y1f))
        if even:
            x0, y0 = x0 & ~1, y0 & ~1
            x1, y1 = min(w, x1 + (x1 & 1)), min(h, y1 + (y1 & 1))
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1, y1))
    return merge_overlapping(out)
