"""No face left unblurred, frame by frame, across moving-face clips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from custodes.redact import evalset  # noqa: E402
from custodes.redact.options import RedactOptions  # noqa: E402
from custodes.redact.pipeline import redact_file  # noqa: E402

from .media import read_frames, write_clip  # noqa: E402

#: A face region keeping more than this share of its detail is "unblurred".
EXPOSED = 0.5


def check_clip(tmp_path: Path, detector: Any, seed: int, mode: str) -> tuple[int, int]:
    clip = list(evalset.moving_clip(frames=48, size=(640, 360), seed=seed))
    src = write_clip(tmp_path / f"in{seed}.mp4", [c.image for c in clip])
    dst = tmp_path / f"out{seed}-{mode}.mp4"
    redact_file(src, dst, RedactOptions(mode=mode), detector=detector)  # type: ignore[arg-type]
    before, after = read_frames(src), read_frames(dst)
    assert len(after) == len(before) == len(clip)
    checked = 0
    unblurred = []
    for i, (cf, a, b) in enumerate(zip(clip, before, after, strict=True)):
        for box in cf.faces:
            if box[3] - box[1] < 24 or box[2] - box[0] < 8:
                continue
            checked += 1
            # The metric sees a face left alone as exposed ...
            assert evalset.exposure(cf.image, a, box) > 0.8
            # ... and the redacted output must not.
            if (x := evalset.exposure(a, b, box)) > EXPOSED:
                unblurred.append((i, [round(v) for v in box], round(x, 2)))
    assert not unblurred, f"faces left unblurred (frame, box, exposure): {unblurred}"
    return checked, len(clip)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_face_unblurred_in_any_frame(tmp_path: Path, detector: Any, seed: int) -> None:
    checked, frames = check_clip(tmp_path, detector, seed, "blur")
    assert checked > 2 * frames  # several faces in most frames, entering and leaving


@pytest.mark.parametrize("mode", ["pixelate", "fill"])
def test_other_modes_hide_every_face_too(tmp_path: Path, detector: Any, mode: str) -> None:
    check_clip(tmp_path, detector, 3, mode)
