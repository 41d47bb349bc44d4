"""The sequencer on a real store: integration in worker processes agrees with one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custodes.ledger import log as log_module
from custodes.ledger.instance import Instance
from custodes.tlog import MemoryTree, Verifier, leaf_hash, open_checkpoint


@pytest.mark.parametrize("parallel", [False, True])
def test_parallel_integration_gives_the_same_tree(
    tmp_path: Path, parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "PARALLEL_MIN", 1000 if parallel else 10**12)
    monkeypatch.setattr(log_module, "READ_CHUNK", 4096)  # many spans, odd ends
    inst = Instance.init(tmp_path / "d", origin="par.example/log")
    tree = MemoryTree()
    with inst.open_log() as log:
        for batch in (77, 5000, 40_003):  # unaligned starts and ends
            entries = [json.dumps({"n": tree.size + i}).encode() for i in range(batch)]
            log.append(entries)
            for e in entries:
                tree.append(leaf_hash(e))
            note = log.integrate()
            cp = open_checkpoint(note, Verifier.from_key(inst.verifier_key)).checkpoint
            assert (cp.size, cp.root_hash) == (tree.size, tree.root())
            assert log.inclusion_proof(cp.size - 1, cp.size) == tree.prove_inclusion(cp.size - 1)
    with inst.open_log() as log:  # and the tiles it stored rebuild the same state
        assert log.root(tree.size) == tree.root()


def test_large_integration_commits_in_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "COMMIT_EVERY", 10_000)
    inst = Instance.init(tmp_path / "d", origin="steps.example/log")
    with inst.open_log() as log:
        log.append(json.dumps({"n": i}).encode() for i in range(35_000))
        seen: list[int] = []
        log.integrate(progress=seen.append)
        assert sum(seen) == 35_000
        assert log.size() == 35_000
