"""Which container a segment file is, read from its bytes, never from its name.

A recorder writes MP4 (plain or fragmented), MPEG-TS or Matroska.  Anything
else (an HLS playlist, an ffconcat list, a text file that names other files)
is refused by the archive when it is stored and by the release when it is
read, whatever its suffix: a "segment" that refers to other files would let
footage of other cameras leave under this segment's digest.

:func:`sniff` looks at the structure, not only a magic number: the top-level
MP4 boxes must chain exactly to the end of the file, every MPEG-TS packet
must start with the sync byte, and a Matroska file must open with an EBML
header whose DocType is ``matroska`` or ``webm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from custodes.errors import FormatError

if TYPE_CHECKING:
    from custodes.custody.stream import Header

__all__ = [
    "DEMUXERS",
    "SEALED_SUFFIX",
    "SUFFIXES",
    "Container",
    "check_container",
    "check_sealed",
    "sealed_header",
    "sniff",
]

Container = Literal["mp4", "mpegts", "matroska"]

#: The ffmpeg demuxer that reads each container, and only it.
DEMUXERS: dict[Container, str] = {"mp4": "mov", "mpegts": "mpegts", "matroska": "matroska"}
#: Suffixes a file of each container may be stored under.
SUFFIXES: dict[Container, frozenset[str]] = {
    "mp4": frozenset({".mp4", ".m4s", ".m4v"}),
    "mpegts": frozenset({".ts"}),
    "matroska": frozenset({".mkv", ".webm"}),
}

_MP4_BOXES = frozenset(
    {
        b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"skip", b"sidx", b"mfra",
        b"uuid", b"wide", b"meta", b"emsg", b"prft", b"ssix", b"pdin",
    }
)  # fmt: skip
#: Appended to a segment's suffix when the archive holds its custody ciphertext.
SEALED_SUFFIX = ".enc"
_TS_PACKET = 188
_EBML = b"\x1a\x45\xdf\xa3"


def _mp4(path: Path, size: int) -> bool:
    pos = 0
    with open(path, "rb") as f:
        first = True
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return False
            n = int.from_bytes(head[:4], "big")
            kind = head[4:8]
            if n == 1:
                if len(head) < 16:
                    return False
                n = int.from_bytes(head[8:16], "big")
                if n < 16:
                    return False
            elif n == 0:
                n = size - pos  # the last box runs to the end
            elif n < 8:
                return False
            if kind not in _MP4_BOXES or (first and kind not in (b"ftyp", b"styp", b"moov")):
                return False
            first = False
            pos += n
    return pos == size


def _mpegts(path: Path, size: int) -> bool:
    if size < _TS_PACKET or size % _TS_PACKET:
        return False
    with open(path, "rb") as f:
        while chunk := f.read(_TS_PACKET * 4096):
            if any(chunk[i] != 0x47 for i in range(0, len(chunk), _TS_PACKET)):
                return False
    return True


def _vint(buf: bytes, pos: int) -> tuple[int, int]:
    """An EBML variable-length integer at ``pos``: (value, length)."""
    b = buf[pos]
    for length in range(1, 9):
        if b & (0x80 >> (length - 1)):
            value = b & (0xFF >> length)
            for i in range(1, length):
                value = (value << 8) | buf[pos + i]
            return value, length
    raise ValueError("not an EBML integer")


def _matroska(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.startswith(_EBML):
        return False
    try:
        n, k = _vint(head, 4)
        body = head[4 + k : 4 + k + n]
        pos = 0
        while pos < len(body):
            ident = body[pos : pos + 2]
            n, k = _vint(body, pos + 2)
            value = body[pos + 2 + k : pos + 2 + k + n]
            if ident == b"\x42\x82":  # DocType
                return value in (b"matroska", b"webm")
            pos += 2 + k + n
    except (IndexError, ValueError):
        return False
    return False


def sniff(path: Path) -> Container | None:
    """The container ``path`` holds, from its content, or None if it is none of a recorder's."""
    size = path.stat().st_size
    if size < 8:
        return None
    if _matroska(path):
        return "matroska"
    if _mpegts(path, size):
        return "mpegts"
    if _mp4(path, size):
        return "mp4"
    return None


def check_container(path: Path, suffix: str | None = None) -> Container:
    """The container of ``path``; FormatError if it is not one a recorder writes, or if
    ``suffix`` is given and does not name that container."""
    kind = sniff(path)
    if kind is None:
        raise FormatError(
            "the file is not a recorded segment: only MP4, MPEG-TS and Matroska files are"
            " archived (playlists, concat lists and other files that name files are refused)"
        )
    if suffix is not None and suffix.lower() not in SUFFIXES[kind]:
        raise FormatError(
            f"the file holds {kind} but is named {suffix!r};"
            f" use one of {', '.join(sorted(SUFFIXES[kind]))}"
        )
    return kind


def sealed_header(path: Path) -> Header | None:
    """The custody stream header (:mod:`custodes.custody.stream`) that ``path`` opens with,
    or None if it is not a segment ciphertext of a format we read."""
    from custodes.custody.errors import CustodyFormatError
    from custodes.custody.stream import read_header

    try:
        with open(path, "rb") as f:
            return read_header(f)
    except CustodyFormatError:
        return None


def check_sealed(path: Path, epoch: str, suffix: str | None = None) -> Header:
    """The header of ``path``, a custody ciphertext for ``epoch``; FormatError otherwise.

    Only the header is read: the AEAD is checked when the segment is opened, and the
    stored file's digest is the one the segment record logs.  ``suffix`` (the recorded
    file's) must still be one a recorder writes.
    """
    header = sealed_header(path)
    if header is None:
        raise FormatError(
            f"the segment is logged as encrypted (epoch {epoch}); the file is not a custody"
            " ciphertext"
        )
    if header.epoch != epoch:
        raise FormatError(
            f"the ciphertext is for epoch {header.epoch}; the segment is logged for {epoch}"
        )
    if suffix is not None and not any(suffix.lower() in v for v in SUFFIXES.values()):
        raise FormatError(f"{suffix!r} is not a suffix a recorder writes")
    return header
