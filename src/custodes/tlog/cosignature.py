"""Witness cosignatures (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``).

A witness that has checked a checkpoint is consistent with everything it saw
before adds a note signature of its own. It signs, with Ed25519, the message::

    cosignature/v1
    time 1679315147
    example.org/log
    1000
    dGJwSlo3ALPiE0APMSRnGuTC+tUF0L4CqUgyC5uRDq0=

that is, a header line, ``time`` and the POSIX timestamp in canonical decimal,
then the checkpoint body (with any extension lines). The signature line holds
the 4-byte key id, the 8-byte big-endian timestamp, then the 64-byte
signature (76 bytes in all)::

    — witness.example/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5...

Keys. The key id uses type byte ``0x04``: ``SHA-256(name || "\\n" || 0x04 ||
public key)[:4]``. The verifier key is the C2SP vkey encoding with type
``0x04``, ``<name>+<keyid>+<base64(0x04 || 32-byte public key)>``. The spec
defines no private key encoding; we mirror the note signer key and write
``PRIVATE+KEY+<name>+<keyid>+<base64(0x04 || 32-byte seed)>``, so a cosigner
key can never be mistaken for a log's note key (type ``0x01``) or the other way
round.

Timestamps are below ``2**63``; a signature line whose timestamp is not is
malformed (:class:`CosignatureError`), and never verifies.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from custodes.errors import CosignatureError
from custodes.tlog.note import (
    NoteSignature,
    _check_name,
    _format_key,
    _SigningKey,
    _VerifyingKey,
    key_id,
)

__all__ = [
    "COSIGNATURE_KEY_TYPE",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosigned_message",
    "generate_cosigner_key",
]

COSIGNATURE_KEY_TYPE = 0x04

_HEADER = "cosignature/v1\n"
_MAX_TIME = 1 << 63
_SIGNATURE_SIZE = 8 + 64


def cosigned_message(checkpoint_body: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signature signs."""
    if not 0 <= timestamp < _MAX_TIME:
        raise CosignatureError(f"The cosignature time {timestamp} is not in 0..2**63-1.")
    if not checkpoint_body.endswith("\n"):
        raise CosignatureError("The cosigned checkpoint body must end with a newline.")
    try:
        body = checkpoint_body.encode("utf-8")
    except UnicodeEncodeError as err:
        raise CosignatureError("The cosigned checkpoint body is not valid Unicode.") from err
    return f"{_HEADER}time {timestamp}\n".encode("ascii") + body


class CosignatureSigner(_SigningKey):
    """A witness's Ed25519 cosigning key (key type 0x04)."""

    KEY_TYPE = COSIGNATURE_KEY_TYPE
    LABEL = "cosigner"
    __slots__ = ()

    def verifier(self) -> CosignatureVerifier:
        """The matching :class:`CosignatureVerifier`."""
        return CosignatureVerifier(name=self._name, public_key=self._key.public_key())

    def cosign(self, checkpoint_body: str, timestamp: int) -> NoteSignature:
        """The note signature of this witness on ``checkpoint_body`` at ``timestamp``."""
        signature = self._key.sign(cosigned_message(checkpoint_body, timestamp))
        return NoteSignature(
            name=self._name,
            key_id=self._key_id,
            signature=timestamp.to_bytes(8, "big") + signature,
        )


class CosignatureVerifier(_VerifyingKey):
    """A witness's cosignature verifier key; implements ``NoteVerifier``."""

    KEY_TYPE = COSIGNATURE_KEY_TYPE
    LABEL = "cosigner"
    __slots__ = ()

    @staticmethod
    def timestamp_of(signature: bytes) -> int:
        """The timestamp a cosignature (the bytes after the key id) claims."""
        if len(signature) != _SIGNATURE_SIZE:
            raise CosignatureError(
                f"A cosignature is {_SIGNATURE_SIZE} bytes (time and Ed25519 signature), "
                f"not {len(signature)}."
            )
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp >= _MAX_TIME:
            raise CosignatureError(f"The cosignature time {timestamp} is not below 2**63.")
        return timestamp

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` cosigns the checkpoint body ``message``."""
        try:
            timestamp = self.timestamp_of(signature)
            signed = cosigned_message(message.decode("utf-8"), timestamp)
        except (CosignatureError, UnicodeDecodeError):
            return False
        return self._verify_raw(signed, signature[8:])


def generate_cosigner_key(name: str) -> tuple[str, str]:
    """A fresh cosigner key pair as ``(signer key, verifier key)`` strings (type 0x04)."""
    _check_name(name)
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    kid = key_id(name, COSIGNATURE_KEY_TYPE, public)
    return (
        _format_key(name, kid, COSIGNATURE_KEY_TYPE, private.private_bytes_raw(), private=True),
        _format_key(name, kid, COSIGNATURE_KEY_TYPE, public, private=False),
    )
