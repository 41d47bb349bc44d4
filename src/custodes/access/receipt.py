"""A release receipt: proof, for whoever holds a released clip, that its release is in the log.

``custodes access release ID --out clip.mp4`` also writes
``clip.mp4.release.json``::

    {"format": "custodes-release-receipt/1", "request": ID,
     "clip": {"sha256": ..., "bytes": ...},
     "entry": {"index": N, "json": <the access.released entry, canonical JSON>},
     "checkpoint": <a signed checkpoint note covering N>,
     "inclusion": [<base64 hashes>]}

:func:`check_receipt` (``custodes access check-receipt``) checks, with only
the log's verifier key: the checkpoint's signature; that the entry is at
index N of that tree (RFC 9162 inclusion proof); that the entry is the
release of that request (under custody, its ``access.exported``, which names
the clip cut after the custodians opened the footage); and that the clip's
SHA-256 and size are the ones the entry logged.  A court, or the person
filmed, can then tell exactly which release a clip came from and that it was
recorded before it left.

A release of several cameras is an archive (:mod:`custodes.access.archive`): its
entry logs the digest of the archive's ``manifest.json``, the receipt names that, and
the receipt travels inside the zip as ``release.json`` and ``release.tlog-proof``.
Given an archive as the clip, :func:`check_receipt` checks the manifest against the
entry, every file against the manifest, and that the zip holds nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from custodes.access.archive import MANIFEST, check_archive, is_archive
from custodes.errors import FormatError, NotFoundError, ProofError, VerificationError
from custodes.tlog import Verifier, check_inclusion, leaf_hash, open_checkpoint, parse_checkpoint
from custodes.tlog import parse_note as _parse_note

__all__ = ["RECEIPT_FORMAT", "as_tlog_proof", "check_receipt", "fetch_receipt"]

RECEIPT_FORMAT = "custodes-release-receipt/1"
#: The entries that name a released clip: the release itself, or under custody (where the
#: release is logged before the footage is opened) the ``access.exported`` that follows it.
_NAMING = ("access.released", "access.exported")


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _manifest_digest(archive: Path) -> tuple[str, int]:
    """The digest and size of an archive's manifest, which its release logs."""
    import zipfile

    try:
        with zipfile.ZipFile(archive) as z, z.open(MANIFEST) as f:
            raw = f.read(1 << 22)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise FormatError(f"{archive} is not a release archive ({err})") from None
    return hashlib.sha256(raw).hexdigest(), len(raw)


def fetch_receipt(
    get: Callable[[str], bytes], rid: str, index: int, clip: Path, *, wait_s: float = 30.0
) -> dict[str, Any]:
    """Build the receipt from a log server (``get(path)`` reads ``/log/<path>``).

    Waits up to ``wait_s`` for a published checkpoint that covers ``index``.
    """
    deadline = time.monotonic() + wait_s
    while True:
        note = get("checkpoint")
        size = parse_checkpoint(_parse_note(note).text).size
        if size > index:
            break
        if time.monotonic() > deadline:
            raise NotFoundError(
                f"no published checkpoint covers the release (index {index}) after {wait_s:g} s"
            )
        time.sleep(0.2)
    entry = get(f"entry/{index}")
    proof = json.loads(get(f"proof/inclusion?index={index}&size={size}"))["proof"]
    sha, n = _manifest_digest(clip) if is_archive(clip) else _digest(clip)
    return {
        "format": RECEIPT_FORMAT,
        "request": rid,
        "clip": {"sha256": sha, "bytes": n},
        "entry": {"index": index, "json": entry.decode("utf-8")},
        "checkpoint": note.decode("utf-8"),
        "inclusion": proof,
    }


def as_tlog_proof(receipt: dict[str, Any]) -> bytes:
    """The same receipt as a ``c2sp.org/tlog-proof@v1`` file, the entry as its extra data
    (``check-receipt`` reads either)."""
    from custodes.tlog.proof import TlogProof, format_proof

    return format_proof(
        TlogProof(
            index=int(receipt["entry"]["index"]),
            inclusion=tuple(base64.b64decode(h, validate=True) for h in receipt["inclusion"]),
            checkpoint=str(receipt["checkpoint"]).encode("utf-8"),
            extra=str(receipt["entry"]["json"]).encode("utf-8"),
        )
    )


def check_receipt(receipt: dict[str, Any], clip: Path | None, vkey: str) -> dict[str, Any]:
    """Check a receipt (and the clip, when given); returns the release entry."""
    try:
        if receipt.get("format") != RECEIPT_FORMAT:
            raise FormatError(f"this is not a {RECEIPT_FORMAT} file")
        index = int(receipt["entry"]["index"])
        raw = str(receipt["entry"]["json"]).encode("utf-8")
        proof = [base64.b64decode(h, validate=True) for h in receipt["inclusion"]]
        note = str(receipt["checkpoint"]).encode("utf-8")
        rid = str(receipt["request"])
        stated = receipt["clip"]
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(f"the receipt is missing or mangles a field ({err})") from None
    signed = open_checkpoint(note, Verifier.from_key(vkey))
    cp = signed.checkpoint
    check_inclusion(proof, index=index, size=cp.size, leaf=leaf_hash(raw), root=cp.root_hash)
    try:
        entry = json.loads(raw)
    except ValueError:
        raise FormatError("the receipt's entry is not JSON") from None
    if entry.get("type") not in _NAMING or entry.get("request") != rid:
        raise ProofError(f"the entry at index {index} is not the release of request {rid}")
    if not isinstance(entry.get("output"), dict):
        raise ProofError(
            f"the entry at index {index} is a release under custody, which names no clip;"
            " the receipt must give its access.exported entry"
        )
    logged = entry.get("output") or {}
    if stated != {"sha256": logged.get("sha256"), "bytes": logged.get("bytes")}:
        raise ProofError("the receipt's clip digest is not the one the release entry logged")
    if clip is not None and is_archive(clip):
        check_archive(clip, str(logged.get("sha256")), logged.get("bytes"))
    elif clip is not None:
        sha, n = _digest(clip)
        if (sha, n) != (logged.get("sha256"), logged.get("bytes")):
            raise VerificationError(
                f"{clip} (sha256 {sha}, {n} bytes) is not the clip this release logged"
                f" (sha256 {logged.get('sha256')}, {logged.get('bytes')} bytes)"
            )
    out: dict[str, Any] = entry
    return out
