"""A live segment's single pass (:mod:`custodes.redact.live`) on real moving faces: every
frame comes out, timed from the grant's start, with no face the detector finds and none
left unblurred; with the masking broken, the check refuses the segment."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from custodes.errors import VerificationError
from custodes.redact import evalset
from custodes.redact.live import Detectors, encode_segment
from custodes.redact.options import RedactOptions
from tests.redact.media import write_clip

FRAMES = 40  # 1.6 s at 25 frames/s
OFFSET_MS = 12_000  # the segment starts 12 s into the grant


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    frames = list(evalset.moving_clip(frames=FRAMES, size=(640, 360), seed=4))
    path = write_clip(tmp_path_factory.mktemp("live") / "faces.mp4", [f.image for f in frames])
    return path, frames


@pytest.fixture(scope="module")
def detectors() -> Detectors:
    return Detectors(threads=1)


def _decoded(path: Path) -> Iterator[tuple[Any, int]]:
    import av

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            assert frame.pts is not None and frame.time_base is not None
            yield frame, round(float(frame.pts * frame.time_base) * 1000)


def _shown(ts: bytes) -> list[tuple[float, np.ndarray]]:
    import av

    with av.open(io.BytesIO(ts), "r", format="mpegts") as f:
        return [
            (float(fr.pts * fr.time_base), fr.to_ndarray(format="bgr24"))
            for fr in f.decode(video=0)
        ]


def test_every_frame_is_shown_in_time_with_no_face_left(
    clip: tuple[Path, list[Any]], detectors: Detectors
) -> None:
    import cv2

    from custodes.redact.detect import FaceDetector

    path, truth = clip
    opts = RedactOptions()
    got = encode_segment(
        _decoded(path), offset_ms=OFFSET_MS, rate=Fraction(25), opts=opts, detectors=detectors
    )
    assert got.frames == got.checked == FRAMES and got.masked_boxes > FRAMES
    shown = _shown(got.body)
    assert len(shown) == FRAMES
    times = [t for t, _ in shown]
    assert times[0] == pytest.approx(OFFSET_MS / 1000) and times == sorted(times)
    assert times[-1] - times[0] == pytest.approx((FRAMES - 1) / 25, abs=0.01)
    det = FaceDetector(threads=1)
    before = [cv2.cvtColor(f.image, cv2.COLOR_BGR2RGB) for f in truth[::5]]
    assert sum(len(det.detect_scaled(rgb, opts.threshold, 1280)) > 0 for rgb in before) >= 6
    for (_, img), src in zip(shown, truth, strict=True):
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        assert len(det.detect_scaled(rgb, opts.threshold, opts.detect_width)) == 0
        for box in src.faces:  # and no face keeps its detail, found or not
            if box[3] - box[1] >= 24 and box[2] - box[0] >= 8:
                assert evalset.exposure(src.image, img, box) <= 0.5


def test_a_segment_whose_faces_were_not_hidden_is_refused(
    clip: tuple[Path, list[Any]], detectors: Detectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the masking replaced by nothing; the check must catch it."""
    import custodes.redact.live as live

    monkeypatch.setattr(live, "hide_yuv420", lambda *_a, **_k: None)
    path, _ = clip
    with pytest.raises(VerificationError, match="still shows a face"):
        encode_segment(
            _decoded(path),
            offset_ms=0,
            rate=Fraction(25),
            opts=RedactOptions(),
            detectors=detectors,
        )


def test_an_unredacted_segment_is_only_re_encoded(clip: tuple[Path, list[Any]]) -> None:
    path, _ = clip
    got = encode_segment(
        _decoded(path), offset_ms=OFFSET_MS, rate=Fraction(25), opts=None, detectors=Detectors()
    )
    shown = _shown(got.body)
    assert len(shown) == got.frames == FRAMES and got.checked == 0
