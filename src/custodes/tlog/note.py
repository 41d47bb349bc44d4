"""Signed notes (C2SP signed-note) with Ed25519 keys, or ML-DSA-44 log keys.

A note is UTF-8 text ending in a newline, a blank line, then one or more
signature lines: an em dash (U+2014), a space, the key name, a space, and the
base64 of the 4-byte big-endian key id followed by the signature::

    example.org/log
    1000
    dGJwSlo3ALPiE0APMSRnGuTC+tUF0L4CqUgyC5uRDq0=

    — example.org/log 0bTlh8F9dTGviK9B911PnAuWi4/RM6r48CyPosFg8RX5...

The text is everything up to and including the newline before the last blank
line; it may itself hold blank lines. No ASCII control character other than
newline may appear anywhere.

Keys. The key id is the first four bytes of ``SHA-256(name || "\\n" || type
|| public key)``, read big-endian; Ed25519 note keys have type ``0x01``.
Keys travel as text, the key id in 8 lowercase hex digits::

    verifier key  <name>+<keyid>+<base64(0x01 || 32-byte public key)>
    signer key    PRIVATE+KEY+<name>+<keyid>+<base64(0x01 || 32-byte seed)>

e.g. ``example.org/log+d1b4e587+ATNr21+ESASWFPAZv0ehc+eUhYsTZmyJs+TpZdHH9p0L``
(the base64 may itself contain ``+``; the name may not).

ML-DSA-44 log keys. signed-note assigns no plain ML-DSA-44 note signature;
tlog-checkpoint has a log sign its checkpoints with an ML-DSA-44 *cosignature*
(type ``0x06``, the timestamped ``subtree/v1`` message of tlog-cosignature),
so a log key may be of that type, with the same key strings as an ML-DSA-44
cosigner: ``<name>+<keyid>+<base64(0x06 || 1312-byte public key)>`` and
``PRIVATE+KEY+<name>+<keyid>+<base64(0x06 || 32-byte seed)>``.
:meth:`Signer.from_key` and :meth:`Verifier.from_key` read either type (the
ML-DSA-44 classes live in :mod:`custodes.tlog.cosignature`), and
:func:`generate_key` makes either; such a signature does not cover extension
lines, so custodes signs none with it.

Opening. :func:`parse_note` checks syntax only and returns a :class:`Note`;
a signature line whose base64 is not canonical is set aside as unreadable
(signed-note has verifiers ignore signatures of unknown keys, and such a line
names no key we could check), while custodes itself writes only canonical
base64.
:func:`open_note` also verifies, and returns an :class:`OpenedNote`, a Note
that splits its signatures into ``verified`` (by a trusted key) and
``unverified`` (by keys it does not know, which the spec says to ignore). A
signature by a trusted key that fails to verify rejects the whole note, and
so does a note that no trusted key signed: both raise :class:`SignatureError`.
Limits: at most :data:`MAX_SIGNATURES` (100) signature lines and
:data:`MAX_NOTE_SIZE` (1 MiB) in all; the spec asks for at least 16.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self, cast, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from custodes.errors import KeyFormatError, NoteError, SignatureError
from custodes.tlog._text import (
    CONTROL,
    decode_base64,
    encode_base64,
    is_valid_key_name,
)

__all__ = [
    "ED25519_KEY_TYPE",
    "LOG_ALGORITHMS",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "NoteVerifier",
    "OpenedNote",
    "Signer",
    "Verifier",
    "format_note",
    "generate_key",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

ED25519_KEY_TYPE = 0x01
MLDSA44_KEY_TYPE = 0x06
LOG_ALGORITHMS = ("ed25519", "ml-dsa-44")
"""The signature algorithms a log key may use (:func:`generate_key`)."""
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1 << 20

_DASH = "\u2014 "
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_ED25519_SIZE = 32
_SIGNATURE_SIZE = 64


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    """The uint32 key id: SHA-256(name || "\\n" || type || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


# -- key encodings (shared with cosignature.py) ----------------------------------


def _format_key(name: str, kid: int, key_type: int, material: bytes, *, private: bool) -> str:
    prefix = _PRIVATE_PREFIX if private else ""
    return f"{prefix}{name}+{kid:08x}+{encode_base64(bytes([key_type]) + material)}"


def _parse_key(
    text: str, key_type: int, *, private: bool, size: int = _ED25519_SIZE
) -> tuple[str, int, bytes]:
    """Split a key string into ``(name, key id, size bytes of key material)``.

    The key id is not checked here (a private key needs its public half for
    that); callers compare it with :func:`key_id`.
    """
    kind = "signer" if private else "verifier"
    if not isinstance(text, str):
        raise KeyFormatError(f"A {kind} key must be text.")
    if private:
        if not text.startswith(_PRIVATE_PREFIX):
            raise KeyFormatError("A signer key must start with 'PRIVATE+KEY+'.")
        text = text[len(_PRIVATE_PREFIX) :]
    elif text.startswith(_PRIVATE_PREFIX):
        raise KeyFormatError("This is a signer (private) key, not a verifier key.")
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError(f"A {kind} key must have the form <name>+<key id>+<base64 key>.")
    name, hex_id, b64 = parts
    if not is_valid_key_name(name):
        raise KeyFormatError(
            f"The {kind} key name {name!r} is not valid: it must be non-empty, "
            "without spaces, '+' or control characters."
        )
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise KeyFormatError(f"The {kind} key id {hex_id!r} is not 8 lowercase hexadecimal digits.")
    raw = decode_base64(b64)
    if raw is None:
        raise KeyFormatError(f"The {kind} key material is not canonical base64.")
    if len(raw) != 1 + size:
        raise KeyFormatError(
            f"The {kind} key material is {len(raw)} bytes; expected a type byte and {size} bytes."
        )
    if raw[0] != key_type:
        raise KeyFormatError(
            f"The {kind} key has type 0x{raw[0]:02x}, but 0x{key_type:02x} is needed here."
        )
    return name, int(hex_id, 16), raw[1:]


def _key_type(text: str, *, private: bool) -> int | None:
    """The type byte a key string claims, read loosely (its parser checks it strictly)."""
    if not isinstance(text, str):
        return None
    if private:
        text = text.removeprefix(_PRIVATE_PREFIX)
    parts = text.split("+", 2)
    if len(parts) != 3 or len(parts[2]) < 4:
        return None
    try:
        return base64.b64decode(parts[2][:4], validate=True)[0]
    except (binascii.Error, ValueError, IndexError):
        return None


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise KeyFormatError(
            f"The key name {name!r} is not valid: it must be non-empty, without spaces, "
            "'+' or control characters."
        )


# -- signers and verifiers ------------------------------------------------------------


@runtime_checkable
class NoteVerifier(Protocol):
    """What :func:`open_note` needs of a trusted key."""

    @property
    def name(self) -> str:
        """The key name, as in signature lines."""
        ...

    @property
    def key_id(self) -> int:
        """The uint32 key id."""
        ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key id) signs the note text ``message``."""
        ...


class _KeyPair:
    """What a signing key and a verifying key of one key type share.

    Subclasses set ``KEY_TYPE`` (the signed-note key type byte) and ``LABEL``
    (the word used in error messages).
    """

    KEY_TYPE = ED25519_KEY_TYPE
    LABEL = "signer"
    __slots__ = ("_key_id", "_name", "_public")

    def __init__(self, name: str, public: bytes) -> None:
        _check_name(name)
        self._name = name
        self._public = public
        self._key_id = key_id(name, self.KEY_TYPE, public)

    def _check_id(self, kid: int) -> None:
        if self._key_id != kid:
            raise KeyFormatError(
                f"The {self.LABEL} key id {kid:08x} does not match its key ({self._key_id:08x})."
            )

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    def _public_key_string(self) -> str:
        return _format_key(self._name, self._key_id, self.KEY_TYPE, self._public, private=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id=0x{self._key_id:08x})"


class _SigningKey(_KeyPair):
    __slots__ = ("_key",)

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(name, private_key.public_key().public_bytes_raw())
        self._key = private_key

    @classmethod
    def from_key(cls, skey: str) -> Self:
        """The signing key a ``PRIVATE+KEY+<name>+<id>+<base64>`` string encodes."""
        name, kid, seed = _parse_key(skey, cls.KEY_TYPE, private=True)
        signer = cls(name=name, private_key=cls._load_seed(seed))
        signer._check_id(kid)
        return signer

    @classmethod
    def _load_seed(cls, seed: bytes) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(seed)

    @property
    def verifier_key(self) -> str:
        """The matching verifier key string."""
        return self._public_key_string()


class _VerifyingKey(_KeyPair):
    PUBLIC_SIZE = _ED25519_SIZE
    ALGORITHM = "Ed25519"
    __slots__ = ("_key",)

    @classmethod
    def _load_public(cls, raw: bytes) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(raw)

    def __init__(self, *, name: str, public_key: Ed25519PublicKey) -> None:
        super().__init__(name, public_key.public_bytes_raw())
        self._key = public_key

    @classmethod
    def from_key(cls, vkey: str) -> Self:
        """The verifier a ``<name>+<keyid>+<base64>`` string encodes."""
        name, kid, public = _parse_key(vkey, cls.KEY_TYPE, private=False, size=cls.PUBLIC_SIZE)
        try:
            key = cls._load_public(public)
        except ValueError as err:
            raise KeyFormatError(
                f"The {cls.LABEL} key is not an {cls.ALGORITHM} public key."
            ) from err
        verifier = cls(name=name, public_key=key)
        verifier._check_id(kid)
        return verifier

    @property
    def key(self) -> str:
        """This verifier as a key string."""
        return self._public_key_string()

    def _verify_raw(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer(_SigningKey):
    """An Ed25519 note signing key (or, from :meth:`from_key`, an ML-DSA-44 log key)."""

    __slots__ = ()

    @classmethod
    def from_key(cls, skey: str) -> Self:
        """The signing key ``skey`` encodes: Ed25519 (0x01) or, from this class, ML-DSA-44."""
        if cls is Signer and _key_type(skey, private=True) == MLDSA44_KEY_TYPE:
            from custodes.tlog.cosignature import MLDSA44Signer

            return cast(Self, MLDSA44Signer.from_key(skey))
        return super().from_key(skey)

    def verifier(self) -> Verifier:
        """The matching :class:`Verifier`."""
        return Verifier(name=self._name, public_key=self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)


class Verifier(_VerifyingKey):
    """An Ed25519 note verifier key; implements :class:`NoteVerifier`."""

    LABEL = "verifier"
    __slots__ = ()

    @classmethod
    def from_key(cls, vkey: str) -> Self:
        """The verifier ``vkey`` encodes: Ed25519 (0x01) or, from this class, ML-DSA-44."""
        if cls is Verifier and _key_type(vkey, private=False) == MLDSA44_KEY_TYPE:
            from custodes.tlog.cosignature import MLDSA44Verifier

            return cast(Self, MLDSA44Verifier.from_key(vkey))
        return super().from_key(vkey)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return len(signature) == _SIGNATURE_SIZE and self._verify_raw(message, signature)


def generate_key(name: str, algorithm: str = "ed25519") -> tuple[str, str]:
    """A fresh log key pair as ``(signer key, verifier key)`` strings.

    ``algorithm`` is ``"ed25519"`` (type 0x01, the default) or ``"ml-dsa-44"``
    (type 0x06, checkpoints signed as ML-DSA-44 cosignatures).
    """
    _check_name(name)
    if algorithm == "ml-dsa-44":
        from custodes.tlog.cosignature import generate_cosigner_key

        return generate_cosigner_key(name, "ml-dsa-44")
    if algorithm != "ed25519":
        raise KeyFormatError(f"Log keys are ed25519 or ml-dsa-44, not {algorithm!r}.")
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes_raw()
    kid = key_id(name, ED25519_KEY_TYPE, public)
    return (
        _format_key(name, kid, ED25519_KEY_TYPE, seed, private=True),
        _format_key(name, kid, ED25519_KEY_TYPE, public, private=False),
    )


# -- notes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id, and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed note: its text (with the final newline) and its signature lines.

    ``signatures`` holds every line whose signature is canonical base64 of a
    key id and at least one byte; ``unreadable`` the other lines, whole
    (without the newline).  Such a line cannot be matched to a key, so it is
    a signature by an unknown key, which signed-note says to ignore;
    :func:`open_note` ignores it unless it names a trusted key and its first
    bytes give that key's id.
    """

    text: str
    signatures: tuple[NoteSignature, ...]
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OpenedNote(Note):
    """A note that :func:`open_note` verified.

    ``verified`` holds the signatures of trusted keys (each key once);
    ``unverified`` those of unknown keys, which carry no meaning.
    """

    verified: tuple[NoteSignature, ...] = field(default=())
    unverified: tuple[NoteSignature, ...] = field(default=())


def _check_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise NoteError("A note text must be a string.")
    if not text.endswith("\n"):
        raise NoteError("A note text must end with a newline.")
    if CONTROL.search(text):
        raise NoteError("A note text must not contain control characters other than newline.")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise NoteError("A note text must be valid Unicode (it holds a lone surrogate).") from err


def _signature_line(sig: NoteSignature) -> str:
    if not is_valid_key_name(sig.name):
        raise NoteError(
            f"The signature name {sig.name!r} is not valid: it must be non-empty, "
            "without spaces, '+' or control characters."
        )
    if not 0 <= sig.key_id < 1 << 32:
        raise NoteError(f"The key id {sig.key_id} of {sig.name!r} is not a uint32.")
    if not sig.signature:
        raise NoteError(f"The signature by {sig.name!r} is empty.")
    raw = sig.key_id.to_bytes(4, "big") + sig.signature
    return f"{_DASH}{sig.name} {encode_base64(raw)}\n"


def format_note(text: str, signatures: Sequence[NoteSignature]) -> bytes:
    """The signed note of ``text`` with these signature lines, in order."""
    body = _check_text(text)
    if not signatures:
        raise NoteError("A signed note needs at least one signature.")
    if len(signatures) > MAX_SIGNATURES:
        raise NoteError(
            f"A note may carry at most {MAX_SIGNATURES} signatures, not {len(signatures)}."
        )
    lines = "".join(_signature_line(sig) for sig in signatures)
    message = body + b"\n" + lines.encode("utf-8")
    if len(message) > MAX_NOTE_SIZE:
        raise NoteError(f"The signed note would be larger than {MAX_NOTE_SIZE} bytes.")
    return message


def parse_note(message: bytes) -> Note:
    """The text and signature lines of a signed note; syntax only, nothing is verified."""
    if not isinstance(message, bytes | bytearray | memoryview):
        raise NoteError("A signed note must be bytes.")
    if len(message) > MAX_NOTE_SIZE:
        raise NoteError(f"The signed note is larger than {MAX_NOTE_SIZE} bytes.")
    try:
        decoded = bytes(message).decode("utf-8")
    except UnicodeDecodeError as err:
        raise NoteError("The signed note is not valid UTF-8.") from err
    if CONTROL.search(decoded):
        raise NoteError("The signed note contains a control character other than newline.")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("The signed note has no blank line before its signatures.")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise NoteError("The signed note has no signature lines after its blank line.")
    if not block.endswith("\n"):
        raise NoteError("The signed note's last signature line does not end with a newline.")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(
            f"The signed note has {len(lines)} signature lines; at most "
            f"{MAX_SIGNATURES} are accepted."
        )
    parsed = [_parse_signature_line(line) for line in lines]
    return Note(
        text=text,
        signatures=tuple(sig for sig in parsed if isinstance(sig, NoteSignature)),
        unreadable=tuple(sig for sig in parsed if isinstance(sig, str)),
    )


def _parse_signature_line(line: str) -> NoteSignature | str:
    """The signature on ``line``, or ``line`` itself if its base64 is not canonical."""
    if not line.startswith(_DASH):
        raise NoteError("A signature line must start with an em dash (U+2014) and a space.")
    name, space, b64 = line[len(_DASH) :].partition(" ")
    if not space:
        raise NoteError("A signature line must be '— <name> <base64 signature>'.")
    if not is_valid_key_name(name):
        raise NoteError(
            f"The signature name {name!r} is not valid: it must be non-empty, "
            "without spaces, '+' or control characters."
        )
    raw = decode_base64(b64)
    if raw is None or len(raw) < 5:
        return line
    return NoteSignature(name=name, key_id=int.from_bytes(raw[:4], "big"), signature=raw[4:])


def _claimed_key(line: str) -> tuple[str, int] | None:
    """The key name and id an unreadable signature line seems to claim, if any."""
    name, _, b64 = line[len(_DASH) :].partition(" ")
    head = b64[:6]
    if len(head) < 6 or not all(c.isascii() and (c.isalnum() or c in "+/") for c in head):
        return None
    try:
        raw = base64.b64decode(head + "==")
    except (binascii.Error, ValueError):
        return None
    return name, int.from_bytes(raw[:4], "big")


def sign_note(text: str, *signers: Signer) -> bytes:
    """The signed note of ``text``, signed by each signer in order."""
    body = _check_text(text)
    sigs = [NoteSignature(name=s.name, key_id=s.key_id, signature=s.sign(body)) for s in signers]
    return format_note(text, sigs)


def open_note(message: bytes, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Parse a signed note and verify it with the trusted keys ``verifiers``.

    Steps:

    (1) Parse it (:class:`NoteError` if malformed).
    (2) Match each signature line to a trusted key by name and key id; lines of
        unknown keys are kept as ``unverified`` (repeats dropped).  A line whose
        base64 is not canonical is ignored, unless it claims a trusted key's
        name and id: then the note is refused (SignatureError).
    (3) Verify every signature of a trusted key; one that fails rejects the
        note (:class:`SignatureError`); repeats of a verified key are dropped.
    (4) Refuse the note unless some trusted key verified it.
    """
    note = parse_note(message)
    known: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        if (v.name, v.key_id) in known:
            raise SignatureError(
                f"Two trusted keys share the name {v.name!r} and key id {v.key_id:08x}."
            )
        known[(v.name, v.key_id)] = v
    for line in note.unreadable:
        claimed = _claimed_key(line)
        if claimed is not None and claimed in known:
            raise SignatureError(
                f"The signature by trusted key {claimed[0]}+{claimed[1]:08x} is not"
                " canonical base64 of a signature."
            )
    text = note.text.encode("utf-8")
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: dict[NoteSignature, None] = {}
    for sig in note.signatures:
        ident = (sig.name, sig.key_id)
        verifier = known.get(ident)
        if verifier is None:
            unverified.setdefault(sig, None)
            continue
        if not verifier.verify(text, sig.signature):
            raise SignatureError(
                f"The signature by trusted key {sig.name}+{sig.key_id:08x} does not verify."
            )
        verified.setdefault(ident, sig)
    if not verified:
        names = ", ".join(sorted({s.name for s in unverified}))
        raise SignatureError(
            f"No trusted key signed this note (it is signed by: {names})."
            if names
            else "No trusted key signed this note."
        )
    return OpenedNote(
        text=note.text,
        signatures=note.signatures,
        unreadable=note.unreadable,
        verified=tuple(verified.values()),
        unverified=tuple(unverified),
    )
