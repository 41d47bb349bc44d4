"""Every error custodes raises on purpose, in one tree.

::

    CustodesError
    ├── FormatError                 malformed input: a parser refused it
    │   ├── NoteError               signed note (C2SP signed-note)
    │   ├── KeyFormatError          note key encodings (signer / verifier keys)
    │   ├── CheckpointError         checkpoint body (C2SP tlog-checkpoint)
    │   ├── TileError               hash tile or tile path (C2SP tlog-tiles)
    │   ├── BundleError             entry bundle (C2SP tlog-tiles)
    │   ├── CosignatureError        cosignature/v1 signature line
    │   └── EntryError              a JSON Lines entry; carries ``line``
    ├── VerificationError           well-formed, but does not verify
    │   ├── SignatureError          no trusted key verified the note
    │   ├── ProofError              an inclusion or consistency proof failed
    │   └── InconsistentLogError    fork or rollback; carries both checkpoints
    ├── StoreError                  the durable store failed or refused
    │   ├── StoreUnavailableError   cannot write: callers fail closed (HTTP 503)
    │   ├── RollbackError           store is older than the last signed checkpoint
    │   ├── ConflictError           compare-and-swap lost; another writer moved
    │   └── PushbackError           overloaded: retry later (HTTP 503 + Retry-After)
    └── UsageError                  the operator asked for something impossible
        ├── InstanceExistsError     ``init`` over an existing instance
        ├── NotInitialisedError     no instance in the data directory
        ├── WriterBusyError         another process holds the data directory
        └── NotFoundError           no such entry, tile, or object

Errors that prove misbehaviour carry their evidence: an
:class:`InconsistentLogError` holds both signed checkpoints (and the proof
where one was offered), so a client can publish it.

The HTTP status for each class is decided in one place,
:func:`http_status`, and what an HTTP client is told in one other,
:func:`public_message`: the sentence with every server path replaced by
words (the server logs the full sentence).

This module imports only the standard library, so that the verification
library can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "BundleError",
    "CheckpointError",
    "ConflictError",
    "CosignatureError",
    "CustodesError",
    "EntryError",
    "FormatError",
    "CacheMismatchError",
    "InconsistentLogError",
    "InstanceExistsError",
    "KeyFormatError",
    "NotFoundError",
    "NotInitialisedError",
    "NoteError",
    "ProofError",
    "PushbackError",
    "RollbackError",
    "SignatureError",
    "StoreError",
    "StoreUnavailableError",
    "TileError",
    "UsageError",
    "VerificationError",
    "WriterBusyError",
    "http_status",
    "public_message",
]


class CustodesError(Exception):
    """The root of every error custodes raises on purpose.

    ``str(err)`` is one sentence a person can act on.
    """


class FormatError(CustodesError):
    """Input that a strict parser refused."""


class NoteError(FormatError):
    """A signed note that is not well formed."""


class KeyFormatError(FormatError):
    """A signer or verifier key string that is not well formed."""


class CheckpointError(FormatError):
    """A checkpoint body that is not well formed."""


class TileError(FormatError):
    """A hash tile, or a tile path, that is not well formed."""


class BundleError(FormatError):
    """An entry bundle that is not well formed."""


class CosignatureError(FormatError):
    """A cosignature that is not well formed."""


class EntryError(FormatError):
    """A log entry that cannot be appended; ``line`` is 1-based, or None."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.reason = message


class VerificationError(CustodesError):
    """Well-formed data that does not verify."""


class SignatureError(VerificationError):
    """No trusted key verified the signed note."""


class ProofError(VerificationError):
    """An inclusion or consistency proof does not verify."""


class InconsistentLogError(VerificationError):
    """Two signed checkpoints that cannot both be true of one append-only log.

    This is evidence of a fork (two views of one log) or a rollback (a log
    that lost entries it had already committed to).  Both signed notes are
    kept verbatim so the evidence can be published.
    """

    def __init__(
        self,
        message: str,
        *,
        old_checkpoint: bytes,
        new_checkpoint: bytes,
        proof: tuple[bytes, ...] = (),
    ) -> None:
        super().__init__(message)
        self.old_checkpoint = old_checkpoint
        self.new_checkpoint = new_checkpoint
        self.proof = proof

    def evidence(self) -> str:
        """The two checkpoints as text, for a person or an alert."""
        old = self.old_checkpoint.decode("utf-8", "replace")
        new = self.new_checkpoint.decode("utf-8", "replace")
        return f"--- checkpoint seen before\n{old}--- checkpoint seen now\n{new}"


class CacheMismatchError(VerificationError):
    """A private table (``access.db``, the identity store, ``policy.json``) disagrees with
    the log, which is the only authority: the action stops and an alert is raised."""


class StoreError(CustodesError):
    """The durable store failed or refused an operation."""


class StoreUnavailableError(StoreError):
    """The store cannot be written now; callers must fail closed."""


class RollbackError(StoreError):
    """The store is older than the last checkpoint this log signed.

    Raised at start-up after a restore from an old backup. ``lock_checkpoint``
    is the signed checkpoint kept outside the store.
    """

    def __init__(self, message: str, *, lock_checkpoint: bytes, store_size: int) -> None:
        super().__init__(message)
        self.lock_checkpoint = lock_checkpoint
        self.store_size = store_size


class ConflictError(StoreError):
    """A compare-and-swap found the store moved by someone else."""


class PushbackError(StoreError):
    """Too much pending work; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UsageError(CustodesError):
    """The operator asked for something that cannot be done."""


class InstanceExistsError(UsageError):
    """``init`` would overwrite an existing instance."""


class NotInitialisedError(UsageError):
    """The data directory holds no custodes instance."""


class WriterBusyError(UsageError):
    """Another process is the writer for this data directory."""


class NotFoundError(UsageError):
    """No such entry, tile, or object."""


_STATUS: tuple[tuple[type[CustodesError], int], ...] = (
    (NotFoundError, 404),
    (PushbackError, 503),
    (StoreUnavailableError, 503),
    (WriterBusyError, 409),
    (ConflictError, 409),
    (InconsistentLogError, 409),
    (CacheMismatchError, 409),
    (VerificationError, 422),
    (FormatError, 400),
    (UsageError, 400),
    (StoreError, 500),
)


def http_status(err: CustodesError) -> int:
    """The one mapping from an error class to an HTTP status code."""
    for cls, status in _STATUS:
        if isinstance(err, cls):
            return status
    return 500


# An absolute path of two or more parts (``/srv/custodes/fleet.db``); URL paths
# in messages (``/access/requests/...``) start with one of our route names instead.
_PATH = re.compile(
    r"(?<![\w.:/~-])/(?:home|tmp|var|srv|opt|usr|etc|root|mnt|media|data|run|work|private|Users"
    r"|Volumes|nix|proc|dev|sys|lib|bin|snap)(?:/[^\s'\"`,;:()<>\[\]{}]*)+"
)


def public_message(err: BaseException, roots: Iterable[str | object] = ()) -> str:
    """``str(err)`` for a client: paths under ``roots`` (the data directory) and
    other absolute server paths are replaced by words; nothing else changes."""
    text = str(err)
    for root in sorted({str(r) for r in roots if str(r) not in ("", "/")}, key=len, reverse=True):
        text = re.sub(
            re.escape(root.rstrip("/")) + r"(?:/[^\s'\"`,;:()<>\[\]{}]*)?",
            "a file in the data directory",
            text,
        )
    text = _PATH.sub("a file on the server", text)
    return text.replace("'a file in the data directory'", "a file in the data directory").replace(
        "'a file on the server'", "a file on the server"
    )
