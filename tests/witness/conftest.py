from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.witness.helpers import FakeLog


@pytest.fixture
def log() -> FakeLog:
    return FakeLog()


@pytest.fixture
def witness(tmp_path: Path, log: FakeLog) -> tuple[Path, str]:
    """A witness data dir that witnesses ``log``: (data dir, witness vkey)."""
    data = tmp_path / "witness"
    out = run_cli("witness", "init", "--name", "witness.test/w1", data=data)
    vkey = out.stdout.decode().strip().splitlines()[-1]
    run_cli("witness", "add-log", "--origin", log.origin, "--vkey", log.vkey, data=data)
    return data, vkey
