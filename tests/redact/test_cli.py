"""``custodes redact`` on video and images, audio, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from custodes.cli.redact_cmd import redact_cmd  # noqa: E402
from custodes.redact import evalset  # noqa: E402

from .media import read_frames, stream_types, write_clip  # noqa: E402


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(redact_cmd, [*args])
    return result.exit_code, result.stdout, result.stderr


def plain_frames(n: int = 12, w: int = 160, h: int = 96) -> list[np.ndarray]:
    return [np.full((h, w, 3), (i * 17) % 256, np.uint8) for i in range(n)]


def assert_clean_failure(code: int, err: str, out_dir: Path, before: set[str]) -> None:
    """Non-zero exit, one sentence, no traceback, and nothing left in the output folder."""
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("custodes: ") and lines[0].endswith("."), err
    assert "Traceback" not in err
    assert {p.name for p in out_dir.iterdir()} == before


@pytest.fixture()
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    frames = plain_frames(30)
    good = {
        "ok.mp4": write_clip(d / "ok.mp4", frames),
        "fast.mp4": write_clip(d / "fast.mp4", frames, options={"movflags": "faststart"}),
        "ok.mkv": write_clip(d / "ok.mkv", frames),
        "audio.mp4": write_clip(d / "audio.mp4", frames, audio=True),
        "ffv1.mkv": write_clip(d / "ffv1.mkv", frames, codec="ffv1"),
    }
    out = dict(good)
    for name in ("ok.mp4", "fast.mp4", "ok.mkv"):
        data = good[name].read_bytes()
        trunc = d / f"truncated-{name}"
        trunc.write_bytes(data[: len(data) * 2 // 3])
        out[trunc.name] = trunc
    (d / "empty.mp4").write_bytes(b"")
    out["empty.mp4"] = d / "empty.mp4"
    (d / "folder.mp4").mkdir()
    out["folder.mp4"] = d / "folder.mp4"
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    out["broken.png"] = d / "broken.png"
    return out


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("truncated-ok.mp4", "damaged or truncated"),
        ("truncated-fast.mp4", "truncated"),
        ("truncated-ok.mkv", "truncated"),
        ("ffv1.mkv", "ffv1 video codec"),
        ("empty.mp4", "is empty"),
        ("folder.mp4", "is a directory"),
        ("missing.mp4", "does not exist"),
        ("broken.png", "not an image"),
    ],
)
def test_bad_input_fails_cleanly(
    clips: dict[str, Path], out_dir: Path, tmp_path: Path, name: str, words: str
) -> None:
    src = clips.get(name, tmp_path / name)
    dst = out_dir / ("out.png" if name.endswith(".png") else "out.mp4")
    code, _, err = run(str(src), str(dst))
    assert_clean_failure(code, err, out_dir, set())
    assert words in err


def test_output_folder_must_exist(clips: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run(str(clips["ok.mp4"]), str(tmp_path / "nowhere" / "out.mp4"))
    assert code != 0 and "does not exist" in err


def test_video_in_image_out_is_refused(clips: dict[str, Path], out_dir: Path) -> None:
    code, _, err = run(str(clips["ok.mp4"]), str(out_dir / "out.gif"))
    assert_clean_failure(code, err, out_dir, set())


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_round_trip(clips: dict[str, Path], out_dir: Path, suffix: str) -> None:
    dst = out_dir / f"out{suffix}"
    code, out, err = run(str(clips["ok.mp4"]), str(dst), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["frames"] == 30 and record["kind"] == "video"
    assert len(read_frames(dst)) == 30
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [dst.name, dst.name + ".manifest.json"]
    )


def test_audio_is_dropped_by_default(clips: dict[str, Path], out_dir: Path) -> None:
    assert stream_types(clips["audio.mp4"]) == ["video", "audio"]
    dst = out_dir / "quiet.mp4"
    code, _, err = run(str(clips["audio.mp4"]), str(dst))
    assert code == 0, err
    assert stream_types(dst) == ["video"]


def test_audio_is_kept_with_the_flag(clips: dict[str, Path], out_dir: Path) -> None:
    dst = out_dir / "loud.mkv"
    code, out, err = run(str(clips["audio.mp4"]), str(dst), "--keep-audio", "--json")
    assert code == 0, err
    assert sorted(stream_types(dst)) == ["audio", "video"]
    assert json.loads(out)["audio_streams_kept"] == 1


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_redaction(tmp_path: Path, out_dir: Path, suffix: str) -> None:
    import cv2

    sample = next(
        s
        for s in evalset.composite_set(positives=40, negatives=0, seed=3)
        if any(b[3] - b[1] >= 48 for b in s.faces)
    )
    big = [b for b in sample.faces if b[3] - b[1] >= 48]  # what any detector must find
    src = tmp_path / f"in{suffix}"
    cv2.imwrite(str(src), sample.image)
    dst = out_dir / f"out{suffix}"
    code, _, err = run(str(src), str(dst), "--mode", "pixelate")
    assert code == 0, err
    before = cv2.imread(str(src))
    after = cv2.imread(str(dst))
    assert after.shape == before.shape
    for box in big:
        assert evalset.exposure(before, after, box) < 0.5
    manifest = json.loads((out_dir / f"out{suffix}.manifest.json").read_text())
    assert manifest["output"]["kind"] == "image"
    assert manifest["redaction"]["mode"] == "pixelate"


def test_help_explains() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for words in ("never recognises", "--keep-audio", "--mode", "--threshold", "--margin"):
        assert words in out
