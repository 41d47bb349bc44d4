"""The archive stores only the containers a recorder writes, judged by content, not suffix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from custodes.errors import FormatError
from custodes.fleet.archive import DirArchive
from custodes.fleet.containers import sniff

T = 1_800_000_000_000


def real(tmp_path: Path, fmt: str, suffix: str) -> Path:
    path = tmp_path / f"real{suffix}"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            *(["-movflags", "frag_keyframe+empty_moov"] if suffix == ".m4s" else []),
            "-f", fmt, str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("fmt", "suffix", "kind"),
    [
        ("mp4", ".mp4", "mp4"),
        ("mp4", ".m4s", "mp4"),
        ("mpegts", ".ts", "mpegts"),
        ("matroska", ".mkv", "matroska"),
    ],
)
def test_recorder_containers_are_stored(tmp_path: Path, fmt: str, suffix: str, kind: str) -> None:
    src = real(tmp_path, fmt, suffix)
    assert sniff(src) == kind
    where = DirArchive(tmp_path / "archive").store(src, "cam-1", T, suffix)
    assert (tmp_path / where).is_file() and not src.exists()


PLAYLIST = b"#EXTM3U\n#EXTINF:10.0,\n/data/archive/cam-2/2027-01-15/x.ts\n#EXT-X-ENDLIST\n"


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        (".m3u8", PLAYLIST),  # the attack as found: a playlist naming another camera's file
        (".ts", PLAYLIST),
        (".mp4", PLAYLIST),
        (".mp4", b"ffconcat version 1.0\nfile '/data/archive/cam-2/x.mp4'\n"),
        (".mkv", b"file '/data/archive/cam-2/x.mp4'\n"),
        (".mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 8 + b"trailing junk"),  # boxes off
        (".ts", b"\x47" + b"\x00" * 186),  # not whole packets
    ],
)
def test_other_files_are_refused_whatever_their_suffix(
    tmp_path: Path, suffix: str, body: bytes
) -> None:
    src = tmp_path / f"upload{suffix}"
    src.write_bytes(body)
    assert sniff(src) is None
    with pytest.raises(FormatError, match="not a recorded segment"):
        DirArchive(tmp_path / "archive").store(src, "cam-1", T, suffix)
    assert not src.exists() and not (tmp_path / "archive").exists()


def test_a_container_under_another_containers_suffix_is_refused(tmp_path: Path) -> None:
    src = real(tmp_path, "mpegts", ".ts")
    with pytest.raises(FormatError, match="holds mpegts but is named '.mp4'"):
        DirArchive(tmp_path / "archive").store(src, "cam-1", T, ".mp4")
