"""Release attacks: a "segment" that names other files, wrong content, wrong length, faces left.

Each test logs and archives a segment of ``cam-n1`` just after the city's
minute of footage (at +60 s) and asks for a window over it alone.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from custodes.access.release import segment_path
from custodes.errors import VerificationError
from custodes.fleet.model import format_time
from custodes.fleet.ops import FleetSettings, ingest_segments
from tests.access import gateway_kit
from tests.access.gateway_kit import City

city = gateway_kit.city

AT = 60_000  # the extra segment's start, ms after the city's start


def released(c: City) -> list[dict[str, Any]]:
    return [e for e in c.entries() if e["type"] == "access.released"]


def log_extra(c: City, body: bytes, suffix: str, duration: float = 10) -> Path:
    """Log and archive ``body`` as cam-n1's segment at +60 s (as an agent would)."""
    t = c.start_ms + AT
    stamp = format_time(t)
    folder = c.data / "archive" / "cam-n1" / stamp[:10]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (stamp.replace(":", "-") + suffix)
    path.write_bytes(body)
    item = {
        "camera": "cam-n1",
        "start": stamp,
        "duration": duration,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    settings = FleetSettings.load(c.data)
    rep = c.ledger.write(lambda log: ingest_segments(log, c.fleet, [item], settings))
    assert rep["accepted"] == 1, rep
    return path


def release_extra(c: City, out: Path, length_ms: int = 10_000) -> dict[str, Any]:
    rid = c.access.request(
        c.users["ivan"], c.inp(from_ms=c.start_ms + AT, to_ms=c.start_ms + AT + length_ms)
    )
    c.access.approve(c.users["anna"], rid)
    info: dict[str, Any] = c.access.release(c.users["ivan"], rid, out)
    return info


def refused(c: City, tmp_path: Path, match: str) -> None:
    out = tmp_path / "clip.mp4"
    with pytest.raises(VerificationError, match=match):
        release_extra(c, out)
    assert not out.exists() and released(c) == []
    assert not list(tmp_path.glob(".*"))


def test_a_playlist_naming_another_cameras_file_is_not_released(city: City, tmp_path: Path) -> None:
    c = city
    other = segment_path(c.data, "cam-s1", c.start_ms)
    assert other is not None
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
        f"#EXTINF:10.0,\n{other.resolve()}\n#EXT-X-ENDLIST\n"
    ).encode()
    log_extra(c, playlist, ".m3u8")
    refused(c, tmp_path, "not an MP4, MPEG-TS or Matroska")


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        (".mp4", "ffconcat version 1.0\nfile '{other}'\n"),
        (".ts", "file '{other}'\n"),
        (".mkv", "#EXTM3U\n#EXTINF:10.0,\n{other}\n"),
        (".mp4", "#EXTM3U\n#EXTINF:10.0,\nfile://{other}\n"),
    ],
)
def test_a_list_of_files_under_a_video_suffix_is_not_released(
    city: City, tmp_path: Path, suffix: str, body: str
) -> None:
    c = city
    other = segment_path(c.data, "cam-s1", c.start_ms)
    assert other is not None
    log_extra(c, body.format(other=other.resolve()).encode(), suffix)
    refused(c, tmp_path, "not an MP4, MPEG-TS or Matroska")


def test_a_segment_shorter_than_its_record_is_not_released(city: City, tmp_path: Path) -> None:
    c = city
    body = gateway_kit.segment_bytes(100)  # a real 10 s MP4 ...
    log_extra(c, body, ".mp4", duration=30)  # ... logged as 30 s
    refused(c, tmp_path, "decodes to 10.00 s but is logged as 30.00 s")


def test_a_real_segment_logged_after_the_minute_is_released(city: City, tmp_path: Path) -> None:
    c = city
    log_extra(c, gateway_kit.segment_bytes(101), ".mp4")
    out = tmp_path / "clip.mp4"
    release_extra(c, out, 4_000)
    import av

    with av.open(str(out)) as clip:
        frames = list(clip.decode(video=0))
    assert len(frames) == 40  # 4 s at 10 frames/s, cut frame-exactly
    assert len(released(c)) == 1


# -- the released clip shows no face the detector finds ----------------------------------

FACE_FRAMES = 50  # 2 s at 25 frames/s


@pytest.fixture(scope="module")
def faces_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two seconds of real faces (the redaction evaluation's moving faces) as an MP4."""
    from custodes.redact import evalset
    from tests.redact.media import write_clip

    clip = [f.image for f in evalset.moving_clip(frames=FACE_FRAMES, size=(640, 360), seed=4)]
    path = write_clip(tmp_path_factory.mktemp("faces") / "faces.mp4", clip)
    return path.read_bytes()


def faces_in(path: Path) -> int:
    """Frames of ``path`` where the detector finds a face at the redactor's own threshold."""
    import av

    from custodes.redact.detect import FaceDetector
    from custodes.redact.options import RedactOptions

    opts = RedactOptions()
    det = FaceDetector(threads=2)
    found = 0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            found += bool(len(det.detect_scaled(rgb, opts.threshold, opts.detect_width)))
    return found


def test_the_released_clip_has_no_face_the_detector_finds(
    city: City, tmp_path: Path, faces_mp4: bytes
) -> None:
    c = city
    archived = log_extra(c, faces_mp4, ".mp4", duration=FACE_FRAMES / 25)
    assert faces_in(archived) > FACE_FRAMES // 2  # the footage does show faces
    out = tmp_path / "clip.mp4"
    release_extra(c, out, 2_000)
    assert faces_in(out) == 0
    assert released(c)[-1]["redaction"] == {"faces": True, "plates": False, "method": "blur"}


def test_a_clip_that_skipped_redaction_fails_closed(
    city: City, tmp_path: Path, faces_mp4: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the redaction step replaced by a plain copy."""
    import custodes.redact.pipeline as pipeline

    def plain_copy(src: Path, dst: Path, *_a: Any, **_k: Any) -> None:
        shutil.copyfile(src, dst)

    monkeypatch.setattr(pipeline, "redact_file", plain_copy)
    c = city
    log_extra(c, faces_mp4, ".mp4", duration=FACE_FRAMES / 25)
    out = tmp_path / "clip.mp4"
    with pytest.raises(VerificationError, match="still shows a face"):
        release_extra(c, out, 2_000)
    assert not out.exists() and released(c) == []
    assert not list(tmp_path.glob(".*"))
