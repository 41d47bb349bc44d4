"""Export manifests and ``custodes verify-export``, against a tiny in-memory log."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from custodes.cli.redact_cmd import verify_export_cmd
from custodes.errors import FormatError
from custodes.records.canonical import canonicalize
from custodes.redact.manifest import (
    Release,
    add_release,
    build_manifest,
    file_digest,
    manifest_path,
    read_manifest,
    verify_export,
    write_manifest,
)
from custodes.tlog import (
    Checkpoint,
    MemoryTree,
    Signer,
    generate_key,
    leaf_hash,
    sign_checkpoint,
)

ORIGIN = "example.org/custodes-test"


def verify(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(verify_export_cmd, [*args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    """A fake exported file with its manifest (no release record yet)."""
    out = tmp_path / "export.mp4"
    out.write_bytes(np.random.default_rng(0).bytes(5000))
    m = build_manifest(
        out,
        sources=[{"sha256": "ab" * 32, "name": "seg-1.mp4"}],
        redaction={"mode": "blur", "threshold": 0.2},
        detector={"model": "centerface", "sha256": "cd" * 32},
        details={"kind": "video"},
    )
    write_manifest(manifest_path(out), m)
    return out


def log_with_release(digest: str, *, extra: int = 6, index: int = 3) -> tuple[Release, str]:
    """A log of ``extra`` entries, the one at ``index`` releasing ``digest``."""
    skey, vkey = generate_key(ORIGIN)
    signer = Signer.from_key(skey)
    entries = []
    for i in range(extra):
        if i == index:
            obj: dict[str, Any] = {"type": "access.released", "v": 1, "output": {"sha256": digest}}
        else:
            obj = {"type": "segment.recorded", "v": 1, "n": i}
        entries.append(canonicalize(obj))
    tree = MemoryTree(leaf_hash(e) for e in entries)
    size = tree.size
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root_hash=tree.root(size)), signer)
    proof = tuple(tree.prove_inclusion(index, size))
    return Release(
        origin=ORIGIN, index=index, entry=entries[index], proof=proof, checkpoint=note
    ), vkey


def test_manifest_records_what_was_exported(export: Path) -> None:
    m = read_manifest(manifest_path(export))
    digest, size = file_digest(export)
    assert m["output"]["sha256"] == digest and m["output"]["size"] == size
    assert m["sources"][0]["sha256"] == "ab" * 32
    assert m["tool"]["name"] == "custodes" and m["tool"]["version"]
    assert m["detector"]["sha256"] == "cd" * 32
    assert "release" not in m


def test_verify_export_checks_the_digest(export: Path) -> None:
    code, out, _ = verify(str(export))
    assert code == 0 and "verified" in out
    export.write_bytes(export.read_bytes() + b"x")
    code, out, _ = verify(str(export), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert [s["name"] for s in report["steps"] if s["ok"] is False] == ["digest"]


def test_release_record_verifies_against_the_log(export: Path) -> None:
    release, vkey = log_with_release(file_digest(export)[0])
    add_release(manifest_path(export), release)
    code, out, err = verify(str(export), "--vkey", vkey, "--json")
    assert code == 0, out + err
    steps = {s["name"]: s["ok"] for s in json.loads(out)["steps"]}
    assert steps == {
        "manifest": True,
        "digest": True,
        "checkpoint": True,
        "leaf": True,
        "inclusion": True,
        "entry": True,
    }


def test_release_without_key_is_reported_unchecked(export: Path) -> None:
    release, _ = log_with_release(file_digest(export)[0])
    add_release(manifest_path(export), release)
    report = verify_export(export)
    assert report.ok
    assert [s.ok for s in report.steps if s.name == "release"] == [None]


def test_key_without_release_fails(export: Path) -> None:
    _, vkey = generate_key(ORIGIN)
    code, out, _ = verify(str(export), "--vkey", vkey)
    assert code == 1 and "no release record" in out


def test_wrong_log_key_fails(export: Path) -> None:
    release, _ = log_with_release(file_digest(export)[0])
    add_release(manifest_path(export), release)
    _, other = generate_key(ORIGIN)
    report = verify_export(export, vkey=other)
    assert not report.ok
    assert [s.name for s in report.steps if s.ok is False] == ["checkpoint"]


def test_every_flipped_proof_bit_fails(export: Path) -> None:
    release, vkey = log_with_release(file_digest(export)[0], extra=11, index=6)
    mpath = manifest_path(export)
    add_release(mpath, release)
    clean = mpath.read_text()
    for i in range(len(release.proof)):
        for byte in (0, 31):
            m = json.loads(clean)
            raw = bytearray(base64.b64decode(m["release"]["proof"][i]))
            raw[byte] ^= 1
            m["release"]["proof"][i] = base64.b64encode(bytes(raw)).decode()
            mpath.write_text(json.dumps(m))
            report = verify_export(export, vkey=vkey)
            assert [s.name for s in report.steps if s.ok is False] == ["inclusion"]


def test_wrong_index_fails(export: Path) -> None:
    release, vkey = log_with_release(file_digest(export)[0])
    m = add_release(manifest_path(export), release)
    m["release"]["index"] = 2
    manifest_path(export).write_text(json.dumps(m))
    assert not verify_export(export, vkey=vkey).ok


def test_entry_must_name_this_file(export: Path) -> None:
    release, vkey = log_with_release("ee" * 32)  # an entry releasing some other file
    add_release(manifest_path(export), release)
    report = verify_export(export, vkey=vkey)
    assert [s.name for s in report.steps if s.ok is False] == ["entry"]


def test_swapped_entry_fails_at_the_leaf(export: Path) -> None:
    release, vkey = log_with_release(file_digest(export)[0])
    m = add_release(manifest_path(export), release)
    m["release"]["entry"] = base64.b64encode(canonicalize({"type": "x", "v": 1})).decode()
    manifest_path(export).write_text(json.dumps(m))
    report = verify_export(export, vkey=vkey)
    assert [s.name for s in report.steps if s.ok is False] == ["leaf"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.pop("output"),
        lambda m: m["output"].update(sha256="ABC"),
        lambda m: m.update(format="something-else"),
        lambda m: m["sources"].append("not an object"),
    ],
)
def test_malformed_manifest_is_refused(export: Path, damage: Any) -> None:
    m = json.loads(manifest_path(export).read_text())
    damage(m)
    manifest_path(export).write_text(json.dumps(m))
    with pytest.raises(FormatError):
        verify_export(export)
    code, _, err = verify(str(export))
    assert code == 1 and err.startswith("custodes: ") and "Traceback" not in err


def test_bad_base64_in_release_is_refused(export: Path) -> None:
    release, vkey = log_with_release(file_digest(export)[0])
    m = add_release(manifest_path(export), release)
    m["release"]["proof"][0] = "not base64!"
    manifest_path(export).write_text(json.dumps(m))
    with pytest.raises(FormatError):
        verify_export(export, vkey=vkey)


def test_duplicate_keys_are_refused(export: Path) -> None:
    text = manifest_path(export).read_text()
    manifest_path(export).write_text(text.replace('"format"', '"format": "x", "format"', 1))
    with pytest.raises(FormatError):
        read_manifest(manifest_path(export))


def test_missing_manifest(tmp_path: Path) -> None:
    f = tmp_path / "lonely.mp4"
    f.write_bytes(b"x")
    code, _, err = verify(str(f))
    assert code == 1 and "no manifest" in err


def test_help_explains() -> None:
    code, out, _ = verify("--help")
    assert code == 0 and "--vkey" in out and "--json" in out
