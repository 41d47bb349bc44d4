"""The parameters of one redaction, recorded verbatim in the export manifest."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from custodes.errors import UsageError

__all__ = ["MODES", "Mode", "RedactOptions"]

Mode = Literal["blur", "pixelate", "fill"]
MODES: tuple[Mode, ...] = ("blur", "pixelate", "fill")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RedactOptions:
    """How to redact.

    - ``mode``: ``blur``, ``pixelate`` or ``fill`` (a solid ``fill_rgb`` box).
    - ``threshold``: detector score above which a face is masked (0-1); lower
      hides more, including more things that are not faces.
    - ``margin``: how far each mask reaches beyond the detected face, as a
      fraction of the face's width and height, on every side.
    - ``keep_audio``: copy the audio streams; off by default, voices identify.
    - ``detect_every``: run the detector on one frame in this many, at
      ``coarse_width`` (fast; finds faces of about 48 px and up in 720p);
    - ``full_every``: and on one frame in this many at ``detect_width`` (slow;
      finds the small faces too). The tracker covers the frames in between
      (see :mod:`custodes.redact.track`). Still images get both passes.
    - ``detect_width``, ``coarse_width``: frames wider than this are scaled
      down to it for that pass (masks are always drawn at full resolution).
    - ``hold``: frames a mask is held before a face's first and after its
      last detection.
    - ``crf``, ``preset``: libx264 quality and speed.
    - ``threads``: CPU threads for the detector.
    """

    mode: Mode = "blur"
    threshold: float = 0.2
    margin: float = 0.3
    keep_audio: bool = False
    detect_every: int = 3
    full_every: int = 9
    detect_width: int = 1280
    coarse_width: int = 640
    hold: int = 12
    crf: int = 23
    preset: str = "veryfast"
    fill_rgb: tuple[int, int, int] = (0, 0, 0)
    threads: int = 2

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(
                f"Unknown redaction mode {self.mode!r}: use one of {', '.join(MODES)}."
            )
        if not 0.0 < self.threshold < 1.0:
            raise UsageError("The detection threshold must lie strictly between 0 and 1.")
        if not 0.0 <= self.margin <= 2.0:
            raise UsageError("The margin must lie between 0 and 2 (a fraction of the face size).")
        if not 1 <= self.detect_every <= 30:
            raise UsageError("detect_every must lie between 1 and 30 frames.")
        if not 1 <= self.full_every <= 60 or self.full_every % self.detect_every:
            raise UsageError("full_every must be a multiple of detect_every, up to 60 frames.")
        if self.detect_width < 64 or self.coarse_width < 64:
            raise UsageError("detect_width and coarse_width must be at least 64 pixels.")
        if not 0 <= self.hold <= 250:
            raise UsageError("hold must lie between 0 and 250 frames.")
        if self.hold < self.full_every:
            raise UsageError("hold must be at least full_every, or faces slip between detections.")
        if not 0 <= self.crf <= 51:
            raise UsageError("crf must lie between 0 and 51.")
        if not 1 <= self.threads <= 64:
            raise UsageError("threads must lie between 1 and 64.")

    def as_record(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict, for the manifest."""
        record = dataclasses.asdict(self)
        record["fill_rgb"] = list(self.fill_rgb)
        del record["threads"]  # does not change the output
        return record
