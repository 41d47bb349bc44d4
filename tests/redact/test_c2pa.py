"""C2PA credentials, signed offline with a local certificate authority."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from custodes.cli.redact_cmd import redact_cmd  # noqa: E402
from custodes.redact.manifest import verify_export  # noqa: E402
from custodes.redact.provenance import read_c2pa  # noqa: E402

from .media import make_ca, write_clip  # noqa: E402


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(redact_cmd, [*args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_ca(tmp_path_factory.mktemp("ca"))


def check_credentials(path: Path) -> None:
    store = read_c2pa(path)
    active = store["manifests"][store["active_manifest"]]
    labels = [a["label"] for a in active["assertions"]]
    assert "org.custodes.redaction" in labels
    record = next(a["data"] for a in active["assertions"] if a["label"] == "org.custodes.redaction")
    assert record["redaction"]["mode"] == "blur"
    assert record["detector"]["model"].startswith("centerface")
    assert active["ingredients"][0]["relationship"] == "parentOf"
    # Signed and intact; the local CA is simply not on the reader's trust list.
    failures = store["validation_results"]["activeManifest"]["failure"]
    assert [f["code"] for f in failures] == ["signingCredential.untrusted"]


def test_mp4_gets_credentials_and_manifest_names_the_signed_file(
    tmp_path: Path, ca: tuple[Path, Path]
) -> None:
    frames = [np.full((96, 160, 3), i * 9 % 256, np.uint8) for i in range(10)]
    src = write_clip(tmp_path / "in.mp4", frames)
    dst = tmp_path / "out.mp4"
    code, _, err = run(str(src), str(dst), "--c2pa-cert", str(ca[0]), "--c2pa-key", str(ca[1]))
    assert code == 0, err
    check_credentials(dst)
    assert verify_export(dst).ok  # the sidecar's digest is of the file with credentials
    assert json.loads((tmp_path / "out.mp4.manifest.json").read_text())["output"]["c2pa"] is True


def test_image_gets_credentials(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    import cv2

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.full((64, 64, 3), 90, np.uint8))
    dst = tmp_path / "out.jpg"
    code, _, err = run(str(src), str(dst), "--c2pa-cert", str(ca[0]), "--c2pa-key", str(ca[1]))
    assert code == 0, err
    check_credentials(dst)


def test_self_signed_certificate_is_refused(tmp_path: Path) -> None:
    chain, key = make_ca(tmp_path, self_signed=True)
    src = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(src), np.full((64, 64, 3), 90, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run(
        str(src), str(out / "x.png"), "--c2pa-cert", str(chain), "--c2pa-key", str(key)
    )
    assert code == 1 and "C2PA signing failed" in err
    assert list(out.iterdir()) == []


def test_matroska_cannot_carry_credentials(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    frames = [np.zeros((96, 160, 3), np.uint8)] * 3
    src = write_clip(tmp_path / "in.mp4", frames)
    code, _, err = run(
        str(src), str(tmp_path / "o.mkv"), "--c2pa-cert", str(ca[0]), "--c2pa-key", str(ca[1])
    )
    assert code == 1 and "C2PA" in err


def test_cert_without_key_is_refused(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    code, _, err = run(str(src), str(tmp_path / "o.png"), "--c2pa-cert", str(ca[0]))
    assert code == 1 and "both" in err
