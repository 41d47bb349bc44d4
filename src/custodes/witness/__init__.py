"""custodes.witness: an independent witness that cosigns checkpoints (C2SP tlog-witness).

A witness remembers, for each log it is configured with, the latest
checkpoint it cosigned. It cosigns a new checkpoint only if the log signed
it and a consistency proof shows it extends that one, and it records the new
checkpoint (in one compare-and-swap transaction) before it answers, so it
never cosigns two checkpoints of one log that are inconsistent with each
other, even across crashes.

Files in the data directory: ``witness.key`` (the cosigning key, mode 0600)
and ``witness.db`` (SQLite: the logs and the state of each).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from custodes.errors import InstanceExistsError, NotInitialisedError, UsageError
from custodes.tlog import CosignatureSigner, Verifier, generate_cosigner_key
from custodes.witness.core import Reply, Witness, parse_request
from custodes.witness.store import Advance, LogState, WitnessStore

__all__ = [
    "Advance",
    "LogState",
    "Reply",
    "Witness",
    "WitnessStore",
    "add_log",
    "init_witness",
    "open_witness",
    "parse_request",
]

KEY_FILE = "witness.key"
DB_FILE = "witness.db"


def init_witness(data: Path, name: str, algorithm: str = "ed25519") -> str:
    """Make a witness in ``data``; return its cosignature verifier key. Never overwrites.

    ``algorithm`` is ``ed25519`` or ``ml-dsa-44`` (which tlog-witness recommends).
    """
    key_path = data / KEY_FILE
    if key_path.exists() or (data / DB_FILE).exists():
        raise InstanceExistsError(f"{data} already holds a witness; it is never overwritten.")
    skey, vkey = generate_cosigner_key(name, algorithm)
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(skey + "\n")
        f.flush()
        os.fsync(f.fileno())
    WitnessStore(data / DB_FILE).close()
    return vkey


def _signer(data: Path) -> CosignatureSigner:
    try:
        skey = (data / KEY_FILE).read_text().strip()
    except FileNotFoundError:
        raise NotInitialisedError(
            f"{data} holds no witness; run 'custodes --data {data} witness init' first."
        ) from None
    return CosignatureSigner.from_key(skey)


def add_log(data: Path, origin: str, vkey: str | Sequence[str]) -> None:
    """Witness the log ``origin`` whose checkpoints the keys ``vkey`` verify.

    A log may have several keys (each is trusted), and a key's name need not be
    the origin (tlog-checkpoint says only that it SHOULD be).  Adding a log
    again adds the keys it does not have yet.
    """
    _signer(data)
    keys = [vkey] if isinstance(vkey, str) else list(vkey)
    if not keys:
        raise UsageError("A log needs at least one verifier key.")
    if not origin or "\n" in origin:
        raise UsageError(f"{origin!r} is not a checkpoint origin.")
    for k in keys:
        Verifier.from_key(k)  # refuses what is not a verifier key
    store = WitnessStore(data / DB_FILE)
    try:
        store.add_log(origin, keys)
    finally:
        store.close()


def open_witness(
    data: Path, *, fault: Callable[[str], None] | None = None
) -> tuple[Witness, WitnessStore]:
    """The witness of ``data`` with its state loaded, and its store."""
    signer = _signer(data)
    store = WitnessStore(data / DB_FILE, fault=fault)
    return Witness.from_states(signer, store.logs()), store
