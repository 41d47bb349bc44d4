"""Style and types are part of the build: ruff everywhere, mypy --strict on the library."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    out = _run(sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_on_the_verification_library_and_log() -> None:
    out = _run(sys.executable, "-m", "mypy")
    assert out.returncode == 0, out.stdout + out.stderr


def test_tlog_imports_nothing_but_the_standard_library_and_cryptography() -> None:
    code = (
        "import sys; import custodes.tlog; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi','click','psycopg','uvicorn','numpy','httpx','jinja2','starlette'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = _run(sys.executable, "-c", code)
    assert out.returncode == 0, out.stdout
