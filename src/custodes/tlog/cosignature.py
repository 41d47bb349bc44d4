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

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from custodes.errors import CosignatureError, KeyFormatError
from custodes.tlog.note import NoteSignature, _check_name, _format_key, _parse_key, key_id

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


class CosignatureSigner:
    """A witness's Ed25519 cosigning key."""

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self._name = name
        self._key = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self._key_id = key_id(name, COSIGNATURE_KEY_TYPE, self._public)

    @classmethod
    def from_key(cls, skey: str) -> CosignatureSigner:
        """The cosigner a ``PRIVATE+KEY+...`` string with type 0x04 encodes."""
        name, kid, seed = _parse_key(skey, COSIGNATURE_KEY_TYPE, private=True)
        signer = cls(name=name, private_key=Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_id != kid:
            raise KeyFormatError(
                f"The cosigner key id {kid:08x} does not match its key ({signer.key_id:08x})."
            )
        return signer

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def verifier_key(self) -> str:
        """The matching verifier key string (type 0x04)."""
        return _format_key(
            self._name, self._key_id, COSIGNATURE_KEY_TYPE, self._public, private=False
        )

    def verifier(self) -> CosignatureVerifier:
        """The matching :class:`CosignatureVerifier`."""
        return CosignatureVerifier(
            name=self._name, public_key=Ed25519PublicKey.from_public_bytes(self._public)
        )

    def cosign(self, checkpoint_body: str, timestamp: int) -> NoteSignature:
        """The note signature of this witness on ``checkpoint_body`` at ``timestamp``."""
        signature = self._key.sign(cosigned_message(checkpoint_body, timestamp))
        return NoteSignature(
            name=self._name,
            key_id=self._key_id,
            signature=timestamp.to_bytes(8, "big") + signature,
        )

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self._name!r}, key_id=0x{self._key_id:08x})"


class CosignatureVerifier:
    """A witness's cosignature verifier key; implements ``NoteVerifier``."""

    __slots__ = ("_key", "_key_id", "_name")

    def __init__(self, *, name: str, public_key: Ed25519PublicKey) -> None:
        _check_name(name)
        self._name = name
        self._key = public_key
        self._key_id = key_id(name, COSIGNATURE_KEY_TYPE, public_key.public_bytes_raw())

    @classmethod
    def from_key(cls, vkey: str) -> CosignatureVerifier:
        """The verifier a ``<name>+<keyid>+<base64(0x04 || key)>`` string encodes."""
        name, kid, public = _parse_key(vkey, COSIGNATURE_KEY_TYPE, private=False)
        try:
            key = Ed25519PublicKey.from_public_bytes(public)
        except ValueError as err:
            raise KeyFormatError("The cosigner key is not an Ed25519 public key.") from err
        verifier = cls(name=name, public_key=key)
        if verifier.key_id != kid:
            raise KeyFormatError(
                f"The cosigner key id {kid:08x} does not match its key ({verifier.key_id:08x})."
            )
        return verifier

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def key(self) -> str:
        """This verifier as a key string."""
        public = self._key.public_bytes_raw()
        return _format_key(self._name, self._key_id, COSIGNATURE_KEY_TYPE, public, private=False)

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
            body = message.decode("utf-8")
            signed = cosigned_message(body, timestamp)
        except (CosignatureError, UnicodeDecodeError):
            return False
        try:
            self._key.verify(signature[8:], signed)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"CosignatureVerifier(name={self._name!r}, key_id=0x{self._key_id:08x})"


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
