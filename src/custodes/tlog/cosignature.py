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

ML-DSA-44 (FIPS 204), key type ``0x06``, which the spec recommends for new
cosigners. It signs not the checkpoint text but a ``subtree/v1`` structure
(:func:`subtree_message`)::

    "subtree/v1\n\0" || u8 len || cosigner name || u64 timestamp
                     || u8 len || origin || u64 start (0) || u64 end (size) || root hash

so extension lines are not covered. The signature line holds the key id, the
8-byte timestamp and the 2,420-byte signature; the verifier key is
``<name>+<keyid>+<base64(0x06 || 1312-byte public key)>`` and the private
key, like the Ed25519 one, ``PRIVATE+KEY+...+<base64(0x06 || 32-byte seed)>``.
:meth:`CosignatureVerifier.from_key` and :meth:`CosignatureSigner.from_key`
read either type, so a caller holding a witness key need not know which.
ML-DSA needs a ``cryptography`` that ships it (50 does); Ed25519 cosignatures do not.
"""

from __future__ import annotations

import time
from typing import Any, Self, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from custodes.errors import CheckpointError, CosignatureError, KeyFormatError
from custodes.tlog.note import (
    MLDSA44_KEY_TYPE,
    NoteSignature,
    Signer,
    Verifier,
    _check_name,
    _format_key,
    _key_type,
    _KeyPair,
    _SigningKey,
    _VerifyingKey,
    key_id,
)

__all__ = [
    "COSIGNATURE_KEY_TYPE",
    "MLDSA44_KEY_TYPE",
    "CosignatureSigner",
    "CosignatureVerifier",
    "MLDSA44CosignatureSigner",
    "MLDSA44CosignatureVerifier",
    "MLDSA44Signer",
    "MLDSA44Verifier",
    "cosigned_message",
    "generate_cosigner_key",
    "subtree_message",
]

COSIGNATURE_KEY_TYPE = 0x04
ALGORITHMS = ("ed25519", "ml-dsa-44")

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

    @classmethod
    def from_key(cls, skey: str) -> Self:
        """The cosigning key ``skey`` encodes: Ed25519 (0x04) or, from this class, ML-DSA-44."""
        if cls is CosignatureSigner and _key_type(skey, private=True) == MLDSA44_KEY_TYPE:
            return cast(Self, MLDSA44CosignatureSigner.from_key(skey))
        return super().from_key(skey)

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

    @classmethod
    def from_key(cls, vkey: str) -> Self:
        """The verifier ``vkey`` encodes: Ed25519 (0x04) or, from this class, ML-DSA-44."""
        if cls is CosignatureVerifier and _key_type(vkey, private=False) == MLDSA44_KEY_TYPE:
            return cast(Self, MLDSA44CosignatureVerifier.from_key(vkey))
        return super().from_key(vkey)

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


# -- ML-DSA-44 ---------------------------------------------------------------------------

_LABEL = b"subtree/v1\n\x00"
_MLDSA_PUBLIC = 1312
_MLDSA_SIGNATURE = 2420


def _mldsa() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa
    except ImportError:  # pragma: no cover - an old cryptography
        raise KeyFormatError(
            "ML-DSA-44 keys need a cryptography release that ships ML-DSA."
        ) from None
    return mldsa


def subtree_message(
    cosigner: str, timestamp: int, origin: str, start: int, end: int, root: bytes
) -> bytes:
    """The ``cosigned_message`` an ML-DSA-44 cosignature signs (tlog-cosignature)."""
    name = cosigner.encode("utf-8")
    log = origin.encode("utf-8")
    if not 1 <= len(name) <= 255 or not 1 <= len(log) <= 255:
        raise CosignatureError("The cosigner name and the origin must be 1 to 255 bytes.")
    if not 0 <= timestamp < _MAX_TIME or not 0 <= start <= end < _MAX_TIME:
        raise CosignatureError("The cosignature time or range is out of bounds.")
    if start and timestamp:
        raise CosignatureError("A subtree cosignature with a start has no timestamp.")
    if len(root) != 32:
        raise CosignatureError("The cosigned root hash must be 32 bytes.")
    return (
        _LABEL
        + bytes([len(name)])
        + name
        + timestamp.to_bytes(8, "big")
        + bytes([len(log)])
        + log
        + start.to_bytes(8, "big")
        + end.to_bytes(8, "big")
        + root
    )


def _checkpoint_message(cosigner: str, timestamp: int, body: str) -> bytes:
    from custodes.tlog.checkpoint import parse_checkpoint

    cp = parse_checkpoint(body)
    return subtree_message(cosigner, timestamp, cp.origin, 0, cp.size, cp.root_hash)


class _MLDSA44SigningKey(_SigningKey):
    """An ML-DSA-44 private key (type 0x06) from its 32-byte seed: what a witness's
    cosigning key and a log's own checkpoint key share."""

    KEY_TYPE = MLDSA44_KEY_TYPE
    __slots__ = ()

    def __init__(self, *, name: str, private_key: Any) -> None:
        _KeyPair.__init__(self, name, private_key.public_key().public_bytes_raw())
        self._key = private_key

    @classmethod
    def _load_seed(cls, seed: bytes) -> Any:
        return _mldsa().MLDSA44PrivateKey.from_seed_bytes(seed)


class _MLDSA44VerifyingKey(_VerifyingKey):
    """An ML-DSA-44 public key (type 0x06) checking timestamped ``subtree/v1``
    signatures: what a witness's and a log's verifier share."""

    KEY_TYPE = MLDSA44_KEY_TYPE
    PUBLIC_SIZE = _MLDSA_PUBLIC
    ALGORITHM = "ML-DSA-44"
    __slots__ = ()

    def __init__(self, *, name: str, public_key: Any) -> None:
        _KeyPair.__init__(self, name, public_key.public_bytes_raw())
        self._key = public_key

    @classmethod
    def _load_public(cls, raw: bytes) -> Any:
        return _mldsa().MLDSA44PublicKey.from_public_bytes(raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (time || ML-DSA-44 signature) covers the checkpoint
        ``message`` as a ``subtree/v1`` message by this key's name."""
        try:
            timestamp = _mldsa_timestamp(signature)
            signed = _checkpoint_message(self._name, timestamp, message.decode("utf-8"))
        except (CosignatureError, CheckpointError, UnicodeDecodeError):
            return False
        try:
            self._key.verify(signature[8:], signed)
        except InvalidSignature:
            return False
        return True


class MLDSA44CosignatureSigner(_MLDSA44SigningKey, CosignatureSigner):
    """A cosigning key for ML-DSA-44 cosignatures (key type 0x06)."""

    __slots__ = ()

    def verifier(self) -> MLDSA44CosignatureVerifier:
        return MLDSA44CosignatureVerifier(name=self._name, public_key=self._key.public_key())

    def cosign(self, checkpoint_body: str, timestamp: int) -> NoteSignature:
        try:
            message = _checkpoint_message(self._name, timestamp, checkpoint_body)
        except CheckpointError as err:
            raise CosignatureError(f"Only a checkpoint can be cosigned: {err}") from None
        signature = self._key.sign(message)
        return NoteSignature(
            name=self._name, key_id=self._key_id, signature=timestamp.to_bytes(8, "big") + signature
        )


class MLDSA44CosignatureVerifier(_MLDSA44VerifyingKey, CosignatureVerifier):
    """A verifier of ML-DSA-44 cosignatures (key type 0x06); implements ``NoteVerifier``."""

    __slots__ = ()

    @staticmethod
    def timestamp_of(signature: bytes) -> int:
        return _mldsa_timestamp(signature)


def _mldsa_timestamp(signature: bytes) -> int:
    if len(signature) != 8 + _MLDSA_SIGNATURE:
        raise CosignatureError(
            f"An ML-DSA-44 cosignature is {8 + _MLDSA_SIGNATURE} bytes, not {len(signature)}."
        )
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp >= _MAX_TIME:
        raise CosignatureError(f"The cosignature time {timestamp} is not below 2**63.")
    return timestamp


# -- ML-DSA-44 log keys ------------------------------------------------------------------


class MLDSA44Signer(_MLDSA44SigningKey, Signer):
    """A log's own ML-DSA-44 checkpoint key (type 0x06), from :meth:`Signer.from_key`.

    tlog-checkpoint has a log sign its checkpoints with ML-DSA-44
    *cosignatures*: :meth:`sign` returns the timestamped ``subtree/v1``
    signature of the checkpoint in the note text (start 0, end its size),
    by the key name, at the current time.  Extension lines are not covered
    by that signature, so a checkpoint holding any is refused.
    """

    __slots__ = ()

    def verifier(self) -> MLDSA44Verifier:
        return MLDSA44Verifier(name=self._name, public_key=self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """The 8-byte timestamp and the 2,420-byte ML-DSA-44 signature of the checkpoint."""
        from custodes.tlog.checkpoint import parse_checkpoint

        try:
            cp = parse_checkpoint(message)
        except CheckpointError as err:
            raise CosignatureError(f"An ML-DSA-44 log key signs only checkpoints: {err}") from None
        if cp.extensions:
            raise CosignatureError(
                "An ML-DSA-44 log key does not sign checkpoint extension lines; drop them."
            )
        timestamp = int(time.time())
        signed = subtree_message(self._name, timestamp, cp.origin, 0, cp.size, cp.root_hash)
        return timestamp.to_bytes(8, "big") + self._key.sign(signed)


class MLDSA44Verifier(_MLDSA44VerifyingKey, Verifier):
    """The verifier of an ML-DSA-44 log key (type 0x06), from :meth:`Verifier.from_key`."""

    __slots__ = ()


def generate_cosigner_key(name: str, algorithm: str = "ed25519") -> tuple[str, str]:
    """A fresh cosigner key pair as ``(signer key, verifier key)`` strings.

    ``algorithm`` is ``"ed25519"`` (type 0x04) or ``"ml-dsa-44"`` (type 0x06).
    """
    _check_name(name)
    if algorithm == "ml-dsa-44":
        private_ml = _mldsa().MLDSA44PrivateKey.generate()
        seed = private_ml.private_bytes_raw()
        public = private_ml.public_key().public_bytes_raw()
        kid = key_id(name, MLDSA44_KEY_TYPE, public)
        return (
            _format_key(name, kid, MLDSA44_KEY_TYPE, seed, private=True),
            _format_key(name, kid, MLDSA44_KEY_TYPE, public, private=False),
        )
    if algorithm != "ed25519":
        raise KeyFormatError(f"Cosigner keys are ed25519 or ml-dsa-44, not {algorithm!r}.")
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    kid = key_id(name, COSIGNATURE_KEY_TYPE, public)
    return (
        _format_key(name, kid, COSIGNATURE_KEY_TYPE, private.private_bytes_raw(), private=True),
        _format_key(name, kid, COSIGNATURE_KEY_TYPE, public, private=False),
    )
