"""Temporal coverage: tracks of face boxes, and the boxes to mask in every frame.

The detector runs on some frames only (keyframes) and sometimes misses a
face. Export is offline, so a frame is masked only once the detections a
little *after* it are known (the lookahead), which lets us:

1. **Interpolate** between two detections of one track: a face moving from
   box A at frame a to box B at frame b is masked at the linear
   interpolation in between, padded by a quarter of the motion, so that a
   curved path stays covered. On a frame with a detection, the mask is the
   union of that box and the interpolation of its neighbours, which mends a
   box the detector got too small (a face cut by the frame edge).
2. **Hold forward** for ``hold`` frames after a track's last detection: the
   mask is the union of the last box and that box moved on at the track's
   velocity, so a face that stops and a face that keeps going (out through
   the frame edge) are both covered.
3. **Hold backward** for ``hold`` frames before its first detection, the
   same way: a face that enters through the frame edge, or cuts in between
   two keyframes, is masked in the frames before the detector first saw it.

Matching keyframe detections to tracks is greedy on the IoU between each
detection and the track's predicted box, with a centre-distance fallback
for small fast faces (see :func:`_affinity`). A track survives ``max_gap`` frames without a match.
Tracks are anonymous: a track is a run of boxes, never a person, and it is
forgotten once its frames are written.
"""

from __future__ import annotations

import bisect
import dataclasses

import numpy as np

__all__ = ["Track", "Tracker", "expand", "iou_matrix"]


@dataclasses.dataclass
class Track:
    """One run of boxes believed to be the same face, in keyframe order."""

    frames: list[int]
    boxes: list[np.ndarray]  # each (4,) float64: x0, y0, x1, y1

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def velocity(self, k: int) -> np.ndarray:
        """Per-frame box motion (4,) at detection k, from it and a neighbour."""
        n = len(self.frames)
        if n < 2:
            return np.zeros(4)
        k %= n
        i, j = (k - 1, k) if k > 0 else (0, 1)
        dt = self.frames[j] - self.frames[i]
        v = (self.boxes[j] - self.boxes[i]) / max(1, dt)
        size = max(self.boxes[j][2] - self.boxes[j][0], self.boxes[j][3] - self.boxes[j][1])
        cap = max(size, 1.0)  # no face crosses more than its own size in one frame
        return np.clip(v, -cap, cap)

    def predict(self, frame: int) -> np.ndarray:
        return self.boxes[-1] + self.velocity(-1) * (frame - self.last)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N x 4) with every box in b (M x 4)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def expand(boxes: np.ndarray, margin: float, width: int, height: int) -> np.ndarray:
    """Grow boxes (N x 4) by ``margin`` of their size on every side; clip to the frame."""
    if boxes.size == 0:
        return np.zeros((0, 4))
    b = boxes[:, :4].astype(np.float64)
    dw = (b[:, 2] - b[:, 0]) * margin
    dh = (b[:, 3] - b[:, 1]) * margin
    out = np.stack([b[:, 0] - dw, b[:, 1] - dh, b[:, 2] + dw, b[:, 3] + dh], axis=1)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


class Tracker:
    """Tracks built from keyframe detections, queried frame by frame.

    Feed :meth:`update` with keyframes in increasing order; ask
    :meth:`boxes_at` for any frame no later than the last keyframe minus
    ``hold`` (the caller's lookahead), in increasing order.
    """

    def __init__(self, *, hold: int, max_gap: int) -> None:
        self.hold = hold
        self.max_gap = max_gap
        self._open: list[Track] = []
        self._closed: list[Track] = []

    @property
    def tracks(self) -> list[Track]:
        return self._closed + self._open

    def update(self, frame: int, detections: np.ndarray) -> None:
        """Add one keyframe's detections (N x 4 or N x 5, frame coordinates)."""
        still: list[Track] = []
        for t in self._open:
            (still if frame - t.last <= self.max_gap else self._closed).append(t)
        self._open = still
        dets = detections[:, :4].astype(np.float64)
        unmatched = set(range(len(dets)))
        if self._open and len(dets):
            score = np.stack([_affinity(t, frame, dets) for t in self._open])
            taken: set[int] = set()
            for flat in np.argsort(-score, axis=None):
                ti, di = np.unravel_index(flat, score.shape)
                if score[ti, di] <= 0:
                    break
                if ti in taken or di not in unmatched:
                    continue
                taken.add(int(ti))
                unmatched.discard(int(di))
                self._open[ti].frames.append(frame)
                self._open[ti].boxes.append(dets[di])
        for di in sorted(unmatched):
            self._open.append(Track([frame], [dets[di]]))

    def regions(
        self, frame: int, *, below: float, width: int, height: int
    ) -> list[tuple[int, int, int, int]]:
        """Where to look for the open tracks shorter than ``below`` px in ``frame``.

        Each region is the predicted box grown by 1.5 times its size plus
        its motion since the last detection on every side, clipped to the
        frame; regions are whole pixels.
        """
        out = []
        for t in self._open:
            box = t.predict(frame)
            bw, bh = box[2] - box[0], box[3] - box[1]
            if max(bw, bh) >= below:
                continue
            dt = frame - t.last
            reach = 1.5 * max(bw, bh, 8.0) * (1 + (0.5 * dt if len(t.frames) == 1 else 0))
            x0, y0 = max(0, int(box[0] - reach)), max(0, int(box[1] - reach))
            x1, y1 = min(width, int(box[2] + reach) + 1), min(height, int(box[3] + reach) + 1)
            if x1 - x0 >= 8 and y1 - y0 >= 8:
                out.append((x0, y0, x1, y1))
        return out

    def forget_before(self, frame: int) -> None:
        """Drop closed tracks that can no longer cover ``frame`` or later."""
        self._closed = [t for t in self._closed if t.last + self.hold >= frame]

    def boxes_at(self, frame: int) -> np.ndarray:
        """The boxes (N x 4) to mask in ``frame``, before the margin."""
        out = [b for t in self.tracks if (b := self._box(t, frame)) is not None]
        return np.stack(out) if out else np.zeros((0, 4))

    def _box(self, t: Track, j: int) -> np.ndarray | None:
        """The union of every estimate of where track t is in frame j, or None."""
        i = bisect.bisect_left(t.frames, j)
        exact = i < len(t.frames) and t.frames[i] == j
        after = i + 1 if exact else i  # first detection after j
        before = i - 1  # last detection before j
        found: list[np.ndarray] = []
        if exact:
            found.append(t.boxes[i])
        if before >= 0 and after < len(t.frames):  # between two detections
            fa, fb = t.frames[before], t.frames[after]
            a, b = t.boxes[before], t.boxes[after]
            u = (j - fa) / (fb - fa)
            d = np.abs(b - a)
            px, py = 0.25 * max(d[0], d[2]), 0.25 * max(d[1], d[3])
            found.append(a + u * (b - a) + np.array([-px, -py, px, py]))
        else:
            if before >= 0 and j - t.frames[before] <= self.hold:  # after the last one
                found.append(_hold(t.boxes[before], t.velocity(before), j - t.frames[before]))
            if after < len(t.frames) and t.frames[after] - j <= self.hold:  # before the first
                found.append(_hold(t.boxes[after], -t.velocity(after), t.frames[after] - j))
        if not found:
            return None
        stack = np.stack(found)
        return np.concatenate([stack[:, :2].min(axis=0), stack[:, 2:].max(axis=0)])


def _affinity(t: Track, frame: int, dets: np.ndarray) -> np.ndarray:
    """How well each detection continues track t (> 0 to be a candidate).

    The IoU with the track's predicted box, or failing that a bonus for a
    centre close to the predicted one relative to the face size: within
    (0.6 + 0.1 dt) sizes when the track's velocity is known, and within
    (0.6 + 0.8 dt) sizes when it has one detection only, dt being the frames
    since its last detection; the sizes may differ by a factor of 1.6 at most.
    """
    dt = frame - t.last
    pred = t.predict(frame)[None, :]
    iou = iou_matrix(pred, dets)[0]
    size = max(pred[0, 2] - pred[0, 0], pred[0, 3] - pred[0, 1], 1.0)
    dsize = np.maximum(dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1])
    ratio = np.maximum(dsize, size) / np.maximum(np.minimum(dsize, size), 1.0)
    pc = (pred[0, :2] + pred[0, 2:]) / 2
    dc = (dets[:, :2] + dets[:, 2:]) / 2
    dist = np.linalg.norm(dc - pc, axis=1) / size
    reach = 0.6 + (0.1 if len(t.frames) > 1 else 0.8) * dt
    near = np.where((dist < reach) & (ratio < 1.6), 0.1 * (1.0 - dist / reach), 0.0)
    best = np.where(iou >= 0.1, iou + 0.1, near)
    return np.where(ratio < 1.6, best, 0.0)


def _hold(box: np.ndarray, velocity: np.ndarray, dt: int) -> np.ndarray:
    """Union of a box where it was and where it would be after dt frames, a little grown."""
    moved = box + velocity * dt
    out = np.concatenate([np.minimum(box[:2], moved[:2]), np.maximum(box[2:], moved[2:])])
    grow = 0.02 * dt * np.array([out[2] - out[0], out[3] - out[1]])
    return out + np.concatenate([-grow, grow])
