"""Shared fixtures for custodes.tlog: the independent vectors in ../shared/vectors/tlog.

The vectors live beside the repository (``<repo>/../shared/vectors/tlog``), or
wherever ``CUSTODES_VECTORS`` points. Missing vectors fail the run: they are
the only evidence that we agree with an independent implementation.
"""

from __future__ import annotations

import base64
import json

import pytest

from custodes.tlog import MemoryTree, leaf_hash

from .helpers import Log1000, vectors_dir


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.fixture(scope="session")
def log1000() -> Log1000:
    """The decoded ``log1000`` vectors (fails when they are missing)."""
    root = vectors_dir() / "log1000"
    path = root / "vectors.json"
    if not path.is_file():
        pytest.fail(
            f"The tlog vectors are missing: {path} does not exist. Set CUSTODES_VECTORS "
            "to the shared vectors directory."
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    checkpoint = (root / "checkpoint").read_bytes()
    assert checkpoint.decode("utf-8") == data["checkpoint"]
    return Log1000(
        root=root,
        entries=[_b64(e) for e in data["entries_b64"]],
        leaf_hashes=[_b64(h) for h in data["leaf_hashes_b64"]],
        roots={int(size): _b64(h) for size, h in data["root_by_size_b64"].items()},
        inclusion=[
            (p["index"], p["tree_size"], [_b64(h) for h in p["proof"]])
            for p in data["inclusion_proofs"]
        ],
        consistency=[
            (p["old_size"], p["new_size"], [_b64(h) for h in p["proof"]])
            for p in data["consistency_proofs"]
        ],
        signer_key=data["signer_key"],
        verifier_key=data["verifier_key"],
        origin=data["origin"],
        checkpoint=checkpoint,
    )


@pytest.fixture(scope="session")
def tree1000(log1000: Log1000) -> MemoryTree:
    """A MemoryTree of the 1,000 vector entries, hashed by us."""
    return MemoryTree(leaf_hash(e) for e in log1000.entries)
