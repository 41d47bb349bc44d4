"""The tracker's temporal coverage and the masks, on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest

from custodes.redact.mask import hide_bgr, hide_yuv420, rgb_to_yuv  # noqa: E402
from custodes.redact.track import Tracker, expand  # noqa: E402


def box(x: float, y: float, s: float = 20.0) -> np.ndarray:
    return np.array([[x, y, x + s, y + s, 0.9]])


def covers(boxes: np.ndarray, target: np.ndarray) -> bool:
    t = target[0, :4]
    return any(b[0] <= t[0] and b[1] <= t[1] and b[2] >= t[2] and b[3] >= t[3] for b in boxes)


def test_interpolates_between_detections() -> None:
    tr = Tracker(hold=6, max_gap=6)
    for f in (0, 4, 8):
        tr.update(f, box(100 + 10 * f, 50))
    assert len(tr.tracks) == 1
    for f in range(9):
        assert covers(tr.boxes_at(f), box(100 + 10 * f, 50))


def test_bridges_a_missed_detection() -> None:
    tr = Tracker(hold=8, max_gap=8)
    tr.update(0, box(100, 50))
    tr.update(2, box(110, 50))
    tr.update(4, np.zeros((0, 5)))  # the detector missed the face
    tr.update(6, box(130, 50))
    assert len(tr.tracks) == 1
    assert covers(tr.boxes_at(4), box(120, 50))


def test_holds_backward_for_a_face_entering_through_the_edge() -> None:
    tr = Tracker(hold=6, max_gap=6)
    tr.update(4, box(0, 50))  # first seen at the left edge, moving right
    tr.update(6, box(12, 50))
    for f in (0, 1, 2, 3):  # still partly outside the frame
        b = tr.boxes_at(f)
        assert len(b) and b[:, 0].min() <= 0 and b[:, 2].max() >= 20 - 6 * (4 - f)


def test_holds_forward_and_then_lets_go() -> None:
    tr = Tracker(hold=5, max_gap=5)
    tr.update(0, box(100, 50))
    tr.update(2, box(104, 50))
    for f in (4, 6, 8):
        tr.update(f, np.zeros((0, 5)))
    assert covers(tr.boxes_at(5), box(110, 50))  # kept going at its speed
    assert covers(tr.boxes_at(5), box(104, 50))  # or stopped where last seen
    assert len(tr.boxes_at(8)) == 0  # hold over
    tr.forget_before(20)
    assert tr.tracks == []


def test_links_a_small_fast_face() -> None:
    tr = Tracker(hold=12, max_gap=12)
    tr.update(0, box(600, 100, 24))
    tr.update(2, box(564, 100, 24))  # one and a half face widths in two frames
    tr.update(4, box(528, 100, 24))
    assert len(tr.tracks) == 1
    assert covers(tr.boxes_at(1), box(582, 100, 24))
    assert covers(tr.boxes_at(6), box(492, 100, 24))  # and on, after the last detection


def test_two_faces_stay_apart() -> None:
    tr = Tracker(hold=6, max_gap=6)
    tr.update(0, np.concatenate([box(100, 50), box(300, 50)]))
    tr.update(2, np.concatenate([box(304, 50), box(104, 50)]))
    assert sorted(len(t.frames) for t in tr.tracks) == [2, 2]


def test_expand_clips_to_the_frame() -> None:
    out = expand(np.array([[0.0, 0.0, 10.0, 20.0]]), 0.5, 12, 100)
    assert out.tolist() == [[0.0, 0.0, 12.0, 30.0]]


@pytest.mark.parametrize("mode", ["blur", "pixelate", "fill"])
def test_masks_touch_only_their_boxes(mode: str) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    out = img.copy()
    hide_bgr(out, np.array([[10.2, 20.7, 30.0, 41.0]]), mode)  # type: ignore[arg-type]
    changed = np.any(out != img, axis=2)
    ys, xs = np.nonzero(changed)
    assert ys.min() >= 20 and ys.max() < 41 and xs.min() >= 10 and xs.max() < 30
    assert changed[21:40, 11:29].mean() > 0.9
    y, u, v = (rng.integers(0, 255, s, dtype=np.uint8) for s in ((60, 80), (30, 40), (30, 40)))
    planes = (y.copy(), u.copy(), v.copy())
    hide_yuv420(planes, np.array([[11.0, 21.0, 29.0, 39.0]]), mode)  # type: ignore[arg-type]
    ys, xs = np.nonzero(planes[0] != y)
    assert ys.min() >= 20 and ys.max() < 40 and xs.min() >= 10 and xs.max() < 30


def test_fill_colour_in_yuv() -> None:
    assert rgb_to_yuv((0, 0, 0)) == (16, 128, 128)
    assert rgb_to_yuv((255, 255, 255)) == (235, 128, 128)
