"""Sealed request details: committed to in the public log, encrypted in the private store.

A request's details (case reference, justification, cameras, place, window)
are sealed at the moment the request is made:

1. a fresh 32-byte random salt is drawn;
2. the log entry carries ``commitment = SHA-256(salt || canonical details)``
   (:func:`custodes.access.entries.commitment`), which says nothing about them;
3. the salt and the details are encrypted with AES-256-GCM under the
   instance's sealing key and kept in the private store (``ciphertext``).

An auditor opens the ciphertext; revealing publishes the salt and the details,
and anyone can check them against the commitment with :func:`check_commitment`.

Two sealed formats, told apart by their first byte:

* version 1, an instance without custody (no ``custody init``): ``0x01 || nonce (12) ||
  AES-GCM(salt (32) || canonical details)`` under the instance's sealing key
  (:meth:`custodes.access.identity.Identities.sealer`), which sits beside ``access.db``:
  whoever copies the data directory opens every case, so such an instance says it keeps
  the details unencrypted to anyone with its files;
* version 2, under custody (:func:`seal_to_custodians`): encrypted to the custodians of the
  day's epoch key (:mod:`custodes.custody.sealed`); nothing in the data directory opens it,
  and the gateway reads the details only with T custodians' partials, each given for a
  logged, witnessed ``access.details_read`` (or release).  Rows sealed in version 1 before
  custody was set up still open with the sealing key.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custodes.access.entries import commitment
from custodes.errors import FormatError, VerificationError
from custodes.records.canonical import canonicalize

if TYPE_CHECKING:
    from custodes.custody.keys import EpochPublic

__all__ = [
    "Sealed",
    "Sealer",
    "check_commitment",
    "custody_sealed",
    "open_plain",
    "seal_to_custodians",
]

_VERSION = b"\x01"
_NONCE = 12
_SALT = 32


@dataclass(frozen=True)
class Sealed:
    salt: bytes
    commitment: str
    ciphertext: bytes
    logged: dict[str, str] | None = None
    """Under custody, what ``access.requested`` carries as ``sealed``: the epoch and the
    ephemeral key (public values, so custodians take them from the log)."""


class Sealer:
    """Seals and opens request details with one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise FormatError("a sealing key is 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, details: dict[str, Any]) -> Sealed:
        salt = secrets.token_bytes(_SALT)
        nonce = secrets.token_bytes(_NONCE)
        plain = salt + canonicalize(details)
        ciphertext = _VERSION + nonce + self._aead.encrypt(nonce, plain, _VERSION)
        return Sealed(salt=salt, commitment=commitment(salt, details), ciphertext=ciphertext)

    def open(self, ciphertext: bytes) -> tuple[bytes, dict[str, Any]]:
        """(salt, details) from a ciphertext this key sealed; refuses anything else."""
        if len(ciphertext) < 1 + _NONCE + 16 + _SALT or ciphertext[:1] != _VERSION:
            raise FormatError("the sealed details are not in the sealed format")
        nonce, body = ciphertext[1 : 1 + _NONCE], ciphertext[1 + _NONCE :]
        try:
            plain = self._aead.decrypt(nonce, body, _VERSION)
        except InvalidTag:
            raise VerificationError(
                "the sealed details do not open with this instance's sealing key"
            ) from None
        return open_plain(plain)


def open_plain(plain: bytes) -> tuple[bytes, dict[str, Any]]:
    """(salt, details) from the decrypted body of either format."""
    if len(plain) <= _SALT:
        raise FormatError("the sealed details are cut short")
    try:
        details = json.loads(plain[_SALT:])
    except ValueError:
        raise FormatError("the sealed details are not JSON") from None
    if not isinstance(details, dict):
        raise FormatError("the sealed details are not a JSON object")
    return plain[:_SALT], details


def seal_to_custodians(public: EpochPublic, request: str, details: dict[str, Any]) -> Sealed:
    """Seal ``details`` of request ``request`` to the custodians of ``public``'s epoch."""
    from custodes.custody.group import b64encode
    from custodes.custody.sealed import seal_details

    salt = secrets.token_bytes(_SALT)
    sealed = seal_details(public, request, salt + canonicalize(details))
    logged = {"epoch": sealed.epoch, "ephemeral": b64encode(sealed.ephemeral.encode())}
    return Sealed(salt, commitment(salt, details), sealed.encode(), logged)


def custody_sealed(ciphertext: bytes) -> bool:
    """The blob is sealed to the custodians (version 2), not with the instance's key."""
    return ciphertext[:1] == b"\x02"


def check_commitment(commitment_hex: str, salt_hex: str, details: dict[str, Any]) -> bool:
    """True if ``details`` with ``salt_hex`` hash to the commitment a log entry made."""
    try:
        salt = bytes.fromhex(salt_hex)
    except (ValueError, TypeError):
        return False
    try:
        return secrets.compare_digest(commitment(salt, details), commitment_hex.lower())
    except (TypeError, ValueError, FormatError):
        return False
