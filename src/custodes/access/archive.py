"""A release of several cameras: one MP4 per camera in one zip, with its manifest and receipt.

A release of one camera is one MP4, as it always was.  A release of several is an
archive (a zip, stored, not compressed: the MP4s are compressed already)::

    cam-n1_2026-12-04T10-00-05Z.mp4      one file per camera, named by camera and the
    cam-n2_2026-12-04T10-00-05Z.mp4      time its cut starts (safe characters only)
    manifest.json                        what the log's entry binds
    release.json, release.tlog-proof     the receipt (added when it is handed out)

``manifest.json`` (``custodes-release-manifest/1``) names the request, the redaction
and, for each file, its camera, start, end, SHA-256 and size.  The release entry's
``output`` is the manifest's own SHA-256 and size, with ``"manifest": {"files": N,
"bytes": total}`` saying so, so that the one logged digest binds every file.  The
receipt cannot be inside what its digest names, so it names the manifest, and sits
beside it in the zip.

:func:`check_archive` is what ``custodes access check-receipt`` and the download
paths run: the manifest's digest is the logged one, every file is the one the
manifest lists (digest and size), and the zip holds nothing else (no second copy of a
name, no folder, no file the manifest does not list, besides the receipt).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from custodes.errors import FormatError, VerificationError

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "RECEIPT_NAMES",
    "ArchiveFile",
    "add_receipt",
    "check_archive",
    "file_name",
    "is_archive",
    "read_receipt",
    "write_archive",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "custodes-release-manifest/1"
#: The receipt's names inside an archive (JSON and c2sp.org/tlog-proof).
RECEIPT_NAMES = ("release.json", "release.tlog-proof")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.mp4")
#: More members than this is not an archive custodes wrote (a zip bomb of names).
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class ArchiveFile:
    """One camera's cut: its name in the archive and where it lies now."""

    path: Path
    camera: str
    start: str
    end: str


def file_name(camera: str, start: str, taken: set[str]) -> str:
    """``CAMERA_2026-12-04T10-00-05Z.mp4``: safe characters only, unique within ``taken``."""
    stem = f"{_SAFE.sub('-', camera).lstrip('.-') or 'camera'}_{start.replace(':', '-')}"
    stem = _SAFE.sub("-", stem)[:140]
    name, n = f"{stem}.mp4", 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}.mp4"
    taken.add(name)
    return name


def _sha256(f: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def write_archive(
    out: Path, request: str, redaction: dict[str, Any], files: list[ArchiveFile]
) -> dict[str, Any]:
    """Write the zip of ``files`` and their manifest at ``out``; returns the release's
    ``output`` (the manifest's digest and size, and what it covers)."""
    taken: set[str] = set()
    listed: list[dict[str, Any]] = []
    for f in files:
        with open(f.path, "rb") as fh:
            sha, size = _sha256(fh)
        listed.append({"name": file_name(f.camera, f.start, taken), "camera": f.camera,
                       "start": f.start, "end": f.end, "sha256": sha, "bytes": size,
                       "redaction": redaction})  # fmt: skip
    manifest = {"format": MANIFEST_FORMAT, "request": request, "files": listed}
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        for f, item in zip(files, listed, strict=True):
            z.write(f.path, item["name"])
        z.writestr(MANIFEST, raw)
    return {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "manifest": {"files": len(listed), "bytes": sum(i["bytes"] for i in listed)},
    }


def is_archive(path: Path) -> bool:
    """The file is a zip (by its first bytes), so a release archive if anything."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise FormatError(f"{path} is not a readable zip archive ({err})") from None


def check_archive(path: Path, sha256: str, size: int | None) -> dict[str, Any]:
    """Check a release archive against the digest its entry logged; returns the manifest.

    (1) the zip's names are unique, plain and few; (2) ``manifest.json`` hashes to the
    logged digest and size; (3) every name besides the manifest and the receipt is a
    file the manifest lists, and every listed file is there; (4) each file's SHA-256 and
    size are the manifest's.  Any failure raises :class:`VerificationError`."""
    with _open(path) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        # (1)
        if len(infos) > MAX_MEMBERS:
            raise VerificationError(f"{path} holds {len(infos)} entries, too many for a release")
        if len(set(names)) != len(names):
            raise VerificationError(f"{path} holds a name twice, so it is not a release archive")
        if MANIFEST not in names:
            raise VerificationError(f"{path} holds no {MANIFEST}, so it is not a release archive")
        # (2)
        with z.open(MANIFEST) as f:
            raw = f.read(1 << 22)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256 or (size is not None and len(raw) != size):
            raise VerificationError(
                f"the {MANIFEST} of {path} (sha256 {digest}, {len(raw)} bytes) is not the one"
                f" the release logged (sha256 {sha256}, {size} bytes)"
            )
        try:
            manifest = json.loads(raw)
            listed = {str(i["name"]): i for i in manifest["files"]}
        except (ValueError, KeyError, TypeError):
            raise FormatError(f"the {MANIFEST} of {path} is not a release manifest") from None
        # (3)
        extra = sorted(set(names) - set(listed) - {MANIFEST, *RECEIPT_NAMES})
        if extra:
            raise VerificationError(
                f"{path} holds {extra[0]}, which the manifest does not list, so it is not"
                " the archive that was released"
            )
        missing = sorted(set(listed) - set(names))
        if missing:
            raise VerificationError(f"{path} lacks {missing[0]}, which the manifest lists")
        # (4)
        for name, item in listed.items():
            if not _NAME.fullmatch(name):
                raise VerificationError(f"the manifest names a file {name!r} custodes never writes")
            with z.open(name) as f:
                got, n = _sha256(f)
            if (got, n) != (item.get("sha256"), item.get("bytes")):
                raise VerificationError(
                    f"{name} in {path} (sha256 {got}, {n} bytes) is not the file the manifest"
                    f" lists (sha256 {item.get('sha256')}, {item.get('bytes')} bytes)"
                )
    out: dict[str, Any] = manifest
    return out


def read_receipt(path: Path) -> bytes | None:
    """The receipt inside an archive (the tlog-proof form first), or None."""
    with _open(path) as z:
        names = z.namelist()
        for name in reversed(RECEIPT_NAMES):
            if name in names:
                with z.open(name) as f:
                    return f.read(1 << 22)
    return None


def add_receipt(archive: Path, receipt: dict[str, Any], tlog_proof: bytes) -> None:
    """Add the receipt to ``archive``, in both forms (its other entries are unchanged)."""
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as z:
        names = set(z.namelist())
        if names & set(RECEIPT_NAMES):
            raise FormatError(f"{archive} holds a receipt already")
        z.writestr(RECEIPT_NAMES[0], json.dumps(receipt, indent=2) + "\n")
        z.writestr(RECEIPT_NAMES[1], tlog_proof)
