"""One demo city per test session, built once and shared by every xdist worker.

Building the small demo city with its footage takes about two minutes, most of it the
releases' redaction.  Several test files check that same city; each used to build its
own.  Now the first worker that needs it builds it (through the CLI, as `make demo`
does) under a lock in the session's shared temporary folder, and the others wait for
that one build.  The built city is never touched again: every user gets its own copy
(``private_copy``), so a test that writes to its city cannot change another's.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

#: The size every shared-city test checks: 40 cameras (43 with the landmarks), one day.
SMALL = ("--cameras", "40", "--days", "1", "--requests", "20")


def _session_root(factory: pytest.TempPathFactory) -> Path:
    """A folder this session's workers share (each worker's base folder is inside it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared(
    factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """``build(folder)``'s folder and facts, built once this session under ``name``.

    A build that failed is not retried by the next worker: each gets the first error.
    """
    root = _session_root(factory)
    done, failed = root / f"{name}.json", root / f"{name}.failed"
    city = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists() and not failed.exists():
            try:
                facts = build(city)
            except BaseException as err:
                failed.write_text(f"{type(err).__name__}: {err}")
                raise
            done.write_text(json.dumps(facts))
    if failed.exists():
        pytest.fail(f"the shared {name} failed to build: {failed.read_text()}")
    facts = json.loads(done.read_text())
    assert isinstance(facts, dict)
    return city, facts


def private_copy(src: Path, dst: Path) -> Path:
    """A copy of a shared city that one test (or module) may change as it likes."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def demo_city(factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The small demo city, built by ``custodes demo-city --json`` (read only: copy it)."""

    def build(data: Path) -> dict[str, Any]:
        out = run_cli("demo-city", *SMALL, "--json", data=data, timeout=600)
        facts = json.loads(out.stdout)
        assert isinstance(facts, dict)
        return facts

    return shared(factory, "demo-city", build)
