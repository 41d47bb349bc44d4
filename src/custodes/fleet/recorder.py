"""Recorders the agent runs itself: one ffmpeg segment writer per camera, its segment length
short while the camera has a live grant.

``custodes agent --record CAMERA=INPUT`` starts, for each such camera::

    ffmpeg -nostdin [input args] -i INPUT [codec args] -f segment -segment_time N
           -reset_timestamps 1 DIR/CAMERA/rec-RUN-00000.mp4 ...

where ``N`` is ``segment_s`` (the camera's usual length) or, while the server says the
camera has a live grant (its answer to the agent's heartbeats), ``live_segment_s`` (2 to
4 s): the live view shows a segment only once it is closed, so its length is most of the
delay.  A change of length restarts that camera's ffmpeg: SIGINT lets it close the segment
it is writing (an MP4 is complete only once its index is written), then the new one
starts; the footage between the two is lost (about the time
ffmpeg takes to open its input).  The files hold no time in their names, so the agent
takes a segment's end from its file's last write, to the millisecond.

An ffmpeg that exits by itself is started again after :data:`RESTART_S`.  Every ffmpeg
is stopped, and waited for, when the agent stops.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from custodes.errors import UsageError
from custodes.fleet.model import valid_camera_id

__all__ = ["DEFAULT_CODEC_ARGS", "RESTART_S", "Recorders", "parse_record"]

DEFAULT_CODEC_ARGS = "-c copy"
RESTART_S = 5.0
STOP_WAIT_S = 10.0


def parse_record(specs: tuple[str, ...]) -> dict[str, str]:
    """``CAMERA=INPUT`` pairs, checked: camera ids valid and given once each."""
    out: dict[str, str] = {}
    for spec in specs:
        camera, sep, source = spec.partition("=")
        if not sep or not source:
            raise UsageError(f"--record {spec[:80]!r} must be CAMERA=INPUT (an ffmpeg input)")
        if not valid_camera_id(camera):
            raise UsageError(f"--record {camera[:80]!r} is not a valid camera id")
        if camera in out:
            raise UsageError(f"--record names camera {camera} twice")
        out[camera] = source
    return out


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    seconds: float


class Recorders:
    """The ffmpeg segment writers of the cameras the agent records itself."""

    def __init__(
        self,
        watch: Path,
        sources: dict[str, str],
        *,
        segment_s: float,
        live_segment_s: float,
        input_args: str = "",
        codec_args: str = DEFAULT_CODEC_ARGS,
        say: Callable[[str], None] = lambda s: None,
    ) -> None:
        if sources and shutil.which("ffmpeg") is None:
            raise UsageError("--record needs ffmpeg, which is not installed")
        if not 2 <= live_segment_s <= 4:
            raise UsageError("the live segment length must lie between 2 and 4 seconds")
        if not live_segment_s <= segment_s <= 3600:
            raise UsageError(
                "the segment length must lie between the live segment length and 3600 seconds"
            )
        self.watch = watch
        self.sources = sources
        self.segment_s = segment_s
        self.live_segment_s = live_segment_s
        self.input_args = shlex.split(input_args)
        self.codec_args = shlex.split(codec_args)
        self.say = say
        self.live: frozenset[str] = frozenset()
        self._running: dict[str, _Running] = {}
        self._down_at: dict[str, float] = {}

    def seconds(self, camera: str) -> float:
        """The segment length ``camera`` should be recorded with now."""
        return self.live_segment_s if camera in self.live else self.segment_s

    def _command(self, camera: str, seconds: float) -> list[str]:
        folder = self.watch / camera
        folder.mkdir(parents=True, exist_ok=True)
        run = secrets.token_hex(4)
        return [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            *self.input_args, "-i", self.sources[camera], *self.codec_args,
            "-f", "segment", "-segment_time", f"{seconds:g}", "-reset_timestamps", "1",
            str(folder / f"rec-{run}-%05d.mp4"),
        ]  # fmt: skip

    def _start(self, camera: str) -> None:
        seconds = self.seconds(camera)
        cmd = self._command(camera, seconds)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self._running[camera] = _Running(proc, seconds)

    def _stop(self, camera: str) -> None:
        import signal

        run = self._running.pop(camera, None)
        if run is None:
            return
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)  # ffmpeg closes its segment, then exits
            try:
                run.proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()

    def update(self, live: frozenset[str] | None = None) -> None:
        """Take the server's word on which cameras have a live grant (if given), and start,
        restart or keep each ffmpeg accordingly."""
        if live is not None:
            became = sorted((live ^ self.live) & set(self.sources))
            self.live = live
            for camera in became:
                state = "has a live grant" if camera in live else "has no live grant now"
                self.say(f"camera {camera} {state}: {self.seconds(camera):g}-s segments")
        now = time.monotonic()
        for camera in self.sources:
            run = self._running.get(camera)
            if run is not None and run.proc.poll() is not None:
                self.say(f"the recorder of camera {camera} stopped (exit {run.proc.returncode})")
                self._running.pop(camera)
                self._down_at[camera] = now
                run = None
            if run is not None and run.seconds != self.seconds(camera):
                self._stop(camera)
                run = None
            if run is None and now - self._down_at.get(camera, -RESTART_S) >= RESTART_S:
                self._start(camera)

    def running(self) -> set[str]:
        """The cameras whose ffmpeg runs now (the agent hears them)."""
        return {c for c, r in self._running.items() if r.proc.poll() is None}

    def close(self) -> None:
        """Stop every ffmpeg and wait for it."""
        for camera in list(self._running):
            self._stop(camera)
