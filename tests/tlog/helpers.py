"""Helpers for the custodes.tlog tests: where the vectors are, and their decoded form."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def vectors_dir() -> Path:
    """Where the tlog vectors are.

    ``CUSTODES_VECTORS`` may name the shared vectors directory (holding
    ``tlog/``) or the ``tlog`` directory itself.
    """
    env = os.environ.get("CUSTODES_VECTORS")
    if env:
        base = Path(env)
        return base / "tlog" if (base / "tlog").is_dir() else base
    return Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "tlog"


@dataclass(frozen=True)
class Log1000:
    """The ``log1000`` vectors, decoded."""

    root: Path
    entries: list[bytes]
    leaf_hashes: list[bytes]
    roots: dict[int, bytes]
    inclusion: list[tuple[int, int, list[bytes]]]  # (index, size, proof)
    consistency: list[tuple[int, int, list[bytes]]]  # (old, new, proof)
    signer_key: str
    verifier_key: str
    origin: str
    checkpoint: bytes


def assert_sentence(err: BaseException) -> None:
    """An error message is one clear sentence: capitalised, ending in a full stop."""
    message = str(err)
    assert message[:1].isupper(), message
    assert message.endswith("."), message
    assert "\n" not in message, message
