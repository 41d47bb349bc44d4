"""Checkpoints (C2SP tlog-checkpoint): a log's signed tree head.

A checkpoint body is three or more non-empty lines, each ending in a newline:
the origin (the log's name), the tree size in canonical decimal, the root
hash in base64, then optional extension lines::

    example.org/custodes/test-log
    1000
    dGJwSlo3ALPiE0APMSRnGuTC+tUF0L4CqUgyC5uRDq0=

The log signs the body as a note (see :mod:`custodes.tlog.note`) with a key
whose name is the origin (custodes always does; a reader accepts another name,
since the spec only says SHOULD); witnesses add cosignatures::

    example.org/custodes/test-log
    1000
    dGJwSlo3ALPiE0APMSRnGuTC+tUF0L4CqUgyC5uRDq0=

    — example.org/custodes/test-log 0bTlh8F9dTGviK9B911PnAuWi4/RM6r48CyP...
    — witness.example/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI...

Parsing is strict: the size is ``0`` or a non-zero digit then digits, below
``2**63`` (no spaces, signs, underscores or leading zeros); the root is
canonical base64 of exactly 32 bytes; the origin is non-empty; no line holds
a control character; the body is at most :data:`MAX_CHECKPOINT_SIZE` bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from custodes.errors import (
    CheckpointError,
    InconsistentLogError,
    ProofError,
    SignatureError,
)
from custodes.tlog._text import CONTROL, decode_base64, encode_base64, parse_decimal
from custodes.tlog.cosignature import CosignatureVerifier
from custodes.tlog.merkle import EMPTY_ROOT, HASH_SIZE, check_consistency
from custodes.tlog.note import NoteVerifier, OpenedNote, Signer, open_note, sign_note

__all__ = [
    "MAX_CHECKPOINT_SIZE",
    "Checkpoint",
    "SignedCheckpoint",
    "check_checkpoint_consistency",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

MAX_CHECKPOINT_SIZE = 64 * 1024
_MAX_TREE_SIZE = 1 << 63


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A tree head: which log, how many entries, and the root hash.

    Construction checks every field, so a Checkpoint always formats.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("A checkpoint origin must be a non-empty string.")
        if "\n" in self.origin or CONTROL.search(self.origin):
            raise CheckpointError("A checkpoint origin must not contain control characters.")
        if not isinstance(self.size, int) or not 0 <= self.size < _MAX_TREE_SIZE:
            raise CheckpointError(f"A checkpoint size must be in 0..2**63-1, not {self.size!r}.")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointError("A checkpoint root hash must be 32 bytes.")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("Checkpoint extension lines must be a tuple of strings.")
        for line in self.extensions:
            if not isinstance(line, str) or not line:
                raise CheckpointError("A checkpoint extension line must be a non-empty string.")
            if "\n" in line or CONTROL.search(line):
                raise CheckpointError(
                    "A checkpoint extension line must not contain control characters."
                )
        try:
            size = len(format_checkpoint(self).encode("utf-8"))
        except UnicodeEncodeError as err:
            raise CheckpointError("A checkpoint must be valid Unicode text.") from err
        if size > MAX_CHECKPOINT_SIZE:
            raise CheckpointError(f"A checkpoint body must be at most {MAX_CHECKPOINT_SIZE} bytes.")


def format_checkpoint(cp: Checkpoint) -> str:
    """The checkpoint body: origin, size, base64 root, extension lines, each with a newline."""
    lines = [cp.origin, str(cp.size), encode_base64(cp.root_hash), *cp.extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """The checkpoint a body encodes; raises :class:`CheckpointError` on any deviation."""
    if isinstance(text, bytes | bytearray | memoryview):
        if len(text) > MAX_CHECKPOINT_SIZE:
            raise CheckpointError(f"A checkpoint body is at most {MAX_CHECKPOINT_SIZE} bytes.")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise CheckpointError("A checkpoint body must be valid UTF-8.") from err
    if not isinstance(text, str):
        raise CheckpointError("A checkpoint body must be text or bytes.")
    if len(text) > MAX_CHECKPOINT_SIZE:
        raise CheckpointError(f"A checkpoint body is at most {MAX_CHECKPOINT_SIZE} bytes.")
    if not text.endswith("\n"):
        raise CheckpointError("A checkpoint body must end with a newline.")
    if CONTROL.search(text):
        raise CheckpointError("A checkpoint body must not contain control characters.")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            "A checkpoint body needs three lines: origin, tree size and root hash."
        )
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise CheckpointError("A checkpoint origin must not be empty.")
    size = parse_decimal(size_text, _MAX_TREE_SIZE)
    if size is None:
        raise CheckpointError(
            f"The checkpoint size {size_text!r} is not a canonical decimal below 2**63."
        )
    root = decode_base64(root_text)
    if root is None:
        raise CheckpointError("The checkpoint root hash is not canonical base64.")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"The checkpoint root hash is {len(root)} bytes, not 32.")
    if any(not line for line in extensions):
        raise CheckpointError("A checkpoint extension line must not be empty.")
    return Checkpoint(origin=origin, size=size, root_hash=root, extensions=tuple(extensions))


@dataclass(frozen=True, kw_only=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the note it came in.

    ``raw`` is the signed note exactly as received (the evidence to publish);
    ``cosignatures`` maps each trusted witness whose cosignature verified to
    the time it claims.
    """

    checkpoint: Checkpoint
    note: OpenedNote
    raw: bytes
    cosignatures: dict[str, int] = field(default_factory=dict)


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> bytes:
    """The signed note of ``cp`` by the log key ``signer`` (whose name must be the origin)."""
    if signer.name != cp.origin:
        raise CheckpointError(
            f"The signer's key name {signer.name!r} is not the checkpoint origin {cp.origin!r}."
        )
    return sign_note(format_checkpoint(cp), signer)


def open_checkpoint(
    message: bytes,
    verifier: NoteVerifier,
    *,
    cosigners: Sequence[CosignatureVerifier] = (),
) -> SignedCheckpoint:
    """Verify a signed checkpoint from the log of ``verifier``.

    Steps:

    (1) Open the note with the log key and the witness keys: a bad signature
        by any of them, or no trusted signature at all, raises SignatureError.
    (2) Require the log key's own signature among those verified.
    (3) Parse the body as a checkpoint (CheckpointError).  The origin need not
        be the log key's name: tlog-checkpoint only says it SHOULD be, and the
        caller named the key to trust (custodes signs only with matching names).
    (4) Collect the time of each verified cosignature.
    """
    # (1)
    note = open_note(bytes(message), [verifier, *cosigners])
    # (2)
    if not any(s.name == verifier.name and s.key_id == verifier.key_id for s in note.verified):
        raise SignatureError(
            f"The checkpoint carries no signature by the log key {verifier.name}+"
            f"{verifier.key_id:08x}."
        )
    # (3)
    checkpoint = parse_checkpoint(note.text)
    # (4)
    witnesses = {(c.name, c.key_id): c for c in cosigners}
    times: dict[str, int] = {}
    for sig in note.verified:
        witness = witnesses.get((sig.name, sig.key_id))
        if witness is not None:
            times[sig.name] = witness.timestamp_of(sig.signature)
    return SignedCheckpoint(
        checkpoint=checkpoint, note=note, raw=bytes(message), cosignatures=times
    )


def check_checkpoint_consistency(
    old: SignedCheckpoint, new: SignedCheckpoint, proof: Sequence[bytes]
) -> None:
    """Check that ``new`` extends ``old``; raise :class:`InconsistentLogError` with the evidence.

    A smaller new tree is a rollback; an equal size with another root, or a
    proof that fails, is a fork. Checkpoints of two different logs cannot be
    compared (:class:`CheckpointError`).
    """
    a, b = old.checkpoint, new.checkpoint
    if a.origin != b.origin:
        raise CheckpointError(
            f"Checkpoints of different logs ({a.origin!r}, {b.origin!r}) cannot be compared."
        )

    def evidence(message: str) -> InconsistentLogError:
        return InconsistentLogError(
            message,
            old_checkpoint=old.raw,
            new_checkpoint=new.raw,
            proof=tuple(bytes(h) for h in proof),
        )

    if b.size < a.size:
        raise evidence(f"Rollback: the log {a.origin} shrank from {a.size} entries to {b.size}.")
    if b.size == a.size and b.root_hash != a.root_hash:
        raise evidence(f"Fork: the log {a.origin} signed two roots for size {a.size}.")
    if a.size == 0:
        if a.root_hash != EMPTY_ROOT:
            raise evidence(f"The log {a.origin} signed a size-0 checkpoint with a non-empty root.")
        if proof:
            raise evidence(
                f"A consistency proof from size 0 is empty, but {len(proof)} hashes came."
            )
        return
    try:
        check_consistency(
            proof,
            old_size=a.size,
            new_size=b.size,
            old_root=a.root_hash,
            new_root=b.root_hash,
        )
    except ProofError as err:
        raise evidence(
            f"Fork: the log {a.origin} at size {b.size} is not consistent with its "
            f"checkpoint at size {a.size}. {err}"
        ) from err
