"""The agent's journal forgets what is done and deleted, and nothing else."""

from __future__ import annotations

from pathlib import Path

from custodes.fleet.agent import Journal


def test_prune_forgets_only_files_that_are_sent_and_gone(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    files = {name: tmp_path / f"{name}.mp4" for name in ("sent-gone", "sent-here", "pending-gone")}
    for name, path in files.items():
        path.write_bytes(b"x")
        j.add(path, "cam-1", {"camera": "cam-1", "name": name})
    j.mark([(str(files["sent-gone"]), "sent", None), (str(files["sent-here"]), "sent", None)])
    files["sent-gone"].unlink()
    files["pending-gone"].unlink()
    assert j.prune(upload=False) == 1
    assert j.known() == {str(files["sent-here"]), str(files["pending-gone"])}
    # With uploads on, a sent file not yet uploaded is kept even when deleted.
    files["sent-here"].unlink()
    assert j.prune(upload=True) == 0
    j.mark_uploaded(str(files["sent-here"]), 1)
    assert j.prune(upload=True) == 1
