"""Strict text helpers shared by the parsers of this package.

Each helper answers ``None`` (or ``False``) instead of raising, so that every
caller raises its own error class with a sentence about its own format.

* Base64 is the standard alphabet with padding (RFC 4648, section 4), and only
  the canonical encoding is accepted: ``"AB=="`` decodes, ``"AF=="`` (non-zero
  trailing bits) and ``"AB"`` (missing padding) do not.
* Decimal numbers are canonical ASCII: ``"0"`` or a non-zero digit followed by
  digits. ``" 5"``, ``"05"``, ``"+5"``, ``"5_0"`` and ``"٥"`` are refused,
  which is why :func:`int` is never called on text that was not checked first.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = [
    "CONTROL",
    "decode_base64",
    "encode_base64",
    "is_valid_key_name",
    "parse_decimal",
]

# ASCII control characters other than newline (signed-note forbids them).
CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")

_DECIMAL = re.compile("(?:0|[1-9][0-9]*)")
_BASE64 = re.compile("[A-Za-z0-9+/]*={0,2}")
_ASCII_NAME = re.compile("[\x21-\x7f]+")  # no space, no control (the '+' is checked apart)


def encode_base64(data: bytes) -> str:
    """Standard, padded base64 of ``data``."""
    return base64.b64encode(data).decode("ascii")


def decode_base64(text: str) -> bytes | None:
    """The bytes ``text`` encodes, or None unless it is canonical padded base64."""
    if len(text) % 4 != 0 or _BASE64.fullmatch(text) is None:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def parse_decimal(text: str, limit: int) -> int | None:
    """The value of a canonical decimal below ``limit``, or None."""
    if len(text) > len(str(limit)) or _DECIMAL.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value < limit else None


def is_valid_key_name(name: str) -> bool:
    """Whether ``name`` can name a note key: non-empty, no spaces, no ``+``, no controls.

    Lone surrogates are refused too, since a name must encode as UTF-8.
    """
    if not name or "+" in name:
        return False
    if name.isascii():
        return _ASCII_NAME.fullmatch(name) is not None
    for char in name:
        if char.isspace() or ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
            return False
    return True
