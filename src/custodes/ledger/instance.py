"""A custodes instance: one data directory holding a log's key, config and lock.

Layout of ``DIR``::

    custodes.json        origin, store URL, where the checkpoint lock lives
    keys/log.key         the log's signer key (mode 0600): Ed25519, or ML-DSA-44
    keys/log.vkey        its verifier key, to hand to anyone who verifies
    log.db               the SQLite store (the embedded default)
    lock/checkpoint      the last signed checkpoint, outside the store
    writer.lock          held (flock) by the one process that writes

Everything in ``DIR`` is its owner's alone: folders 0700, files 0600.
Opening an instance (:meth:`Instance.init`, :meth:`Instance.load`) sets the
process umask to 077, so whatever the process writes afterwards is born
private, and tightens (once, with a warning logged) any group or other bits
it finds on what is already there.

The store may instead be PostgreSQL (``--store postgresql://...``); the key,
config and checkpoint lock stay in the data directory either way, so that a
restore of the database does not reach the lock.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from custodes.errors import InstanceExistsError, NotInitialisedError, UsageError
from custodes.ledger.lock import CheckpointLock, WriterLock, atomic_write
from custodes.ledger.log import Log
from custodes.ledger.open_store import open_store
from custodes.ledger.reader import LogReader
from custodes.ledger.store import LogStore
from custodes.tlog import LOG_ALGORITHMS, Signer, generate_key

__all__ = ["Instance", "default_origin", "private_umask", "tighten_modes"]

CONFIG = "custodes.json"
SQLITE_FILE = "log.db"
PRIVATE_UMASK = 0o077
_log = logging.getLogger(__name__)
_ORIGIN_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/:")


def private_umask() -> None:
    """Make everything this process creates from now on readable by its owner only."""
    os.umask(PRIVATE_UMASK)


def tighten_modes(path: Path) -> int:
    """Remove group and other bits from ``path`` and all beneath it; return how many changed.

    Symbolic links are neither followed nor changed.
    """
    changed = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in [".", *dirs, *files]:
            target = os.path.join(root, name)
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
                continue
            os.chmod(target, stat.S_IMODE(st.st_mode) & ~0o077)
            changed += 1
    if changed:
        _log.warning(
            "removed group and other permissions from %d file(s) and folder(s) in %s",
            changed,
            path,
        )
    return changed


def default_origin() -> str:
    """A unique origin: this host's name, then a random suffix (schema-less URL form)."""
    host = "".join(c for c in socket.gethostname().lower() if c.isalnum() or c in ".-")
    return f"{host or 'localhost'}/custodes/{secrets.token_hex(4)}"


_tightened: set[Path] = set()
"""Data directories whose modes this process already checked (once is enough)."""


@dataclass(frozen=True, kw_only=True)
class Instance:
    path: Path
    origin: str
    store_url: str
    lock_path: Path
    witnesses: tuple[tuple[str, str], ...] = ()
    """(base URL, cosigner verifier key) of each witness this log publishes through."""
    witness_quorum: int = 0
    witness_timeout_s: float = 5.0

    # -- creating and loading ----------------------------------------------

    @classmethod
    def init(
        cls,
        path: Path,
        *,
        origin: str | None = None,
        store: str | None = None,
        algorithm: str = "ed25519",
    ) -> Instance:
        """Make a new instance; refuses to touch an existing one.

        ``algorithm`` is the log key's: ``ed25519`` (default) or ``ml-dsa-44``
        (checkpoints signed as ML-DSA-44 cosignatures, per tlog-checkpoint).
        """
        if algorithm not in LOG_ALGORITHMS:
            raise UsageError(
                f"the log key algorithm {algorithm!r} is not one of: {', '.join(LOG_ALGORITHMS)}"
            )
        origin = origin or default_origin()
        if not origin or any(c not in _ORIGIN_OK for c in origin):
            raise UsageError(
                f"the origin {origin!r} must be a schema-less URL such as example.org/log"
            )
        if (path / CONFIG).exists() or (path / SQLITE_FILE).exists():
            raise InstanceExistsError(f"{path} already holds a custodes instance; not overwriting")
        private_umask()
        created_dir = not path.exists()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        tighten_modes(path)
        store_url = store or "sqlite"
        inst = cls(
            path=path.resolve(),
            origin=origin,
            store_url=store_url,
            lock_path=(path / "lock" / "checkpoint").resolve(),
        )
        try:
            skey, vkey = generate_key(origin, algorithm)
            atomic_write(path / "keys" / "log.key", skey.encode() + b"\n", mode=0o600)
            atomic_write(path / "keys" / "log.vkey", vkey.encode() + b"\n")
            st = inst.open_store(create=True)
            try:
                if st.next_index() or st.integrated().checkpoint is not None:
                    raise InstanceExistsError(
                        "the store already holds a log; give a new database or schema"
                    )
            finally:
                st.close()
            config = {
                "version": 1,
                "origin": origin,
                "store": store_url,
                "lock": "lock/checkpoint",  # relative to the data directory
            }
            atomic_write(path / CONFIG, json.dumps(config, indent=2).encode() + b"\n")
            with inst.open_log() as log:
                log.integrate()  # sign the empty tree, so the log has a checkpoint at once
        except BaseException:
            _undo(path, created_dir)
            raise
        return inst

    @classmethod
    def load(cls, path: Path) -> Instance:
        private_umask()
        try:
            raw = (path / CONFIG).read_bytes()
        except FileNotFoundError:
            raise NotInitialisedError(
                f"{path} holds no custodes instance; create one with 'custodes --data {path} init'"
            ) from None
        if path.resolve() not in _tightened:
            _tightened.add(path.resolve())
            tighten_modes(path)
        try:
            cfg = json.loads(raw)
            witnesses = tuple((str(w["url"]), str(w["vkey"])) for w in cfg.get("witnesses", []))
            return cls(
                path=path.resolve(),
                origin=str(cfg["origin"]),
                store_url=str(cfg["store"]),
                lock_path=path.resolve() / cfg["lock"],
                witnesses=witnesses,
                witness_quorum=int(cfg.get("witness_quorum", len(witnesses))),
                witness_timeout_s=float(cfg.get("witness_timeout_s", 5.0)),
            )
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{path / CONFIG} is damaged; restore it from a backup") from None

    def add_witness(self, url: str, vkey: str, *, quorum: int | None = None) -> Instance:
        """Publish through one more witness; ``quorum`` defaults to all of them."""
        from custodes.tlog import CosignatureVerifier

        CosignatureVerifier.from_key(vkey)  # refuse a malformed key before writing
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"the witness URL {url!r} must start with http:// or https://")
        cfg = json.loads((self.path / CONFIG).read_bytes())
        known = [w for w in cfg.get("witnesses", []) if w["vkey"] != vkey]
        known.append({"url": url, "vkey": vkey})
        q = quorum if quorum is not None else len(known)
        if not 1 <= q <= len(known):
            raise UsageError(f"the quorum must be between 1 and {len(known)} witnesses")
        cfg["witnesses"], cfg["witness_quorum"] = known, q
        atomic_write(self.path / CONFIG, json.dumps(cfg, indent=2).encode() + b"\n")
        return Instance.load(self.path)

    @property
    def published_path(self) -> Path:
        """Where the last checkpoint enough witnesses cosigned is kept."""
        return self.path / "published" / "checkpoint"

    # -- using -------------------------------------------------------------

    @property
    def verifier_key(self) -> str:
        return (self.path / "keys" / "log.vkey").read_text().strip()

    def signer(self) -> Signer:
        return Signer.from_key((self.path / "keys" / "log.key").read_text().strip())

    def open_store(self, *, create: bool = False) -> LogStore:
        if self.store_url == "sqlite":
            return open_store(self.path / SQLITE_FILE, create=create)
        return open_store(self.store_url, create=create)

    def writer_lock(self, hint: str = "") -> WriterLock:
        return WriterLock(self.path / "writer.lock").acquire(hint=hint)

    def open_log(self, *, hint: str = "") -> OpenLog:
        """Become the writer: take the directory lock, open the store and the log."""
        lock = self.writer_lock(hint)
        try:
            store = self.open_store()
        except BaseException:
            lock.release()
            raise
        try:
            log = Log.open(
                store,
                self.signer(),
                CheckpointLock(self.lock_path),
                store_factory=self.open_store,
            )
        except BaseException:
            store.close()
            lock.release()
            raise
        return OpenLog(log, lock)

    def reader(self) -> LogReader:
        """Read-only access; needs no writer lock."""
        return LogReader(self.open_store())


class OpenLog:
    """A :class:`Log` together with the writer lock it holds; a context manager."""

    def __init__(self, log: Log, lock: WriterLock) -> None:
        self.log = log
        self._lock = lock

    def close(self) -> None:
        self.log.store.close()
        self._lock.release()

    def __enter__(self) -> Log:
        return self.log

    def __exit__(self, *exc: object) -> None:
        self.close()


def _undo(path: Path, created_dir: bool) -> None:
    """Remove what a failed ``init`` wrote, leaving the directory as it was."""
    if created_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in (CONFIG, SQLITE_FILE, f"{SQLITE_FILE}-wal", f"{SQLITE_FILE}-shm", "writer.lock"):
        try:
            os.unlink(path / name)
        except FileNotFoundError:
            pass
    for sub in ("keys", "lock"):
        shutil.rmtree(path / sub, ignore_errors=True)
