"""The README's ``verify --state`` (and the monitor's ``--state``), given a state file they
cannot use (issue 15, item 19): one sentence that names the file, no traceback, and nothing
of the file changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def tiles(tmp_path: Path) -> tuple[Path, str]:
    """A scratch log of one entry, exported as tiles: (tiles, verifier key)."""
    data = tmp_path / "scratch"
    vkey = run_cli("init", "--origin", "scratch.example/log", data=data).stdout.decode()
    entry = b'{"type": "note", "time": "2026-11-02T10:00:00Z", "text": "hello"}\n'
    run_cli("log", "append", "-", data=data, input=entry)
    run_cli("log", "checkpoint", data=data)
    out = tmp_path / "tiles"
    run_cli("log", "export", str(out), data=data)
    return out, vkey.strip().splitlines()[-1]


def _one_sentence(err: bytes) -> str:
    text = err.decode().strip()
    assert "Traceback" not in text and "\n" not in text, text
    assert text.startswith("custodes: "), text
    return text


def test_verify_names_a_state_file_it_cannot_read_or_write(
    tiles: tuple[Path, str], tmp_path: Path
) -> None:
    source, vkey = tiles
    notes = tmp_path / "my-view.checkpoint"
    notes.write_text("a shopping list, not a checkpoint\n")
    bad = run_cli("verify", "--vkey", vkey, "--source", str(source), "--state", str(notes),
                  check=False)  # fmt: skip
    assert bad.returncode != 0
    said = _one_sentence(bad.stderr)
    assert f"the state file {notes} holds no checkpoint of this log" in said
    assert notes.read_text() == "a shopping list, not a checkpoint\n"

    # Another log's checkpoint (signed by another key) is not this log's either.
    other = tmp_path / "other"
    run_cli("init", "--origin", "other.example/log", data=other)
    run_cli(
        "log",
        "append",
        "-",
        data=other,
        input=b'{"type": "note", "time": "2026-11-02T10:00:00Z"}\n',
    )
    cp = run_cli("log", "checkpoint", data=other).stdout
    theirs = tmp_path / "theirs.checkpoint"
    theirs.write_bytes(cp)
    bad = run_cli("verify", "--vkey", vkey, "--source", str(source), "--state", str(theirs),
                  check=False)  # fmt: skip
    assert f"the state file {theirs} holds no checkpoint of this log" in _one_sentence(bad.stderr)

    nowhere = tmp_path / "no-such-folder" / "my-view.checkpoint"
    bad = run_cli("verify", "--vkey", vkey, "--source", str(source), "--state", str(nowhere),
                  check=False)  # fmt: skip
    assert bad.returncode != 0
    said = _one_sentence(bad.stderr)
    assert f"the state file {nowhere} cannot be written: No such file or directory" in said

    good = tmp_path / "view.checkpoint"
    run_cli("verify", "--vkey", vkey, "--source", str(source), "--state", str(good))
    assert good.read_bytes().startswith(b"scratch.example/log\n1\n")


def test_the_monitor_names_a_state_file_it_cannot_write(
    tiles: tuple[Path, str], tmp_path: Path
) -> None:
    source, vkey = tiles
    nowhere = tmp_path / "no-such-folder" / "monitor.state"
    bad = run_cli("monitor", "--vkey", vkey, "--source", str(source), "--state", str(nowhere),
                  "--once", check=False)  # fmt: skip
    assert bad.returncode != 0
    said = _one_sentence(bad.stderr)
    assert f"The monitor state file {nowhere} cannot be written: No such file or directory" in said
