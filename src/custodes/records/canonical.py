"""RFC 8785 (JSON Canonicalization Scheme) for log entries.

Every log entry is stored as the canonical form of one JSON object, so two
parties who hold the same object agree on its bytes, and so on its leaf hash.

The fast path leans on the standard library's C encoder, which already
agrees with RFC 8785 on everything but three points; each is handled here:

1. **Numbers.**  RFC 8785 serialises numbers as ECMAScript does.  Python's
   ``repr(float)`` picks the same shortest round-trip digits but places the
   decimal point and exponent differently (``1e+16`` vs ``10000000000000000``,
   ``1.0`` vs ``1``).  Lines holding a non-integer literal take a slower path
   that formats each float the ECMAScript way (:func:`format_number`).
   An integer literal is read as the IEEE-754 double it denotes, as RFC 8785
   says; one whose value would change on the way (such as 2**53 + 1) is
   refused, since silently rounding an entry is worse than refusing it.
2. **Key order.**  RFC 8785 sorts keys by UTF-16 code units; Python sorts by
   code points.  The two differ only when a key holds a character above
   U+FFFF, which a quick scan of the output detects; only then are keys
   re-sorted.
3. **Strictness.**  Duplicate keys, ``NaN``/``Infinity`` and lone
   surrogates are refused (I-JSON, RFC 7493).

Example::

    >>> canonicalize({"b": 1.0, "a": "\u20ac", "c": 1e21})
    b'{"a":"\xe2\x82\xac","b":1,"c":1e+21}'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from custodes.errors import EntryError

__all__ = [
    "MAX_ENTRY_SIZE",
    "canonicalize",
    "canonicalize_line",
    "canonicalize_lines",
    "format_number",
]

MAX_ENTRY_SIZE = 65535
"""The largest canonical entry: an entry bundle prefixes each with a uint16."""

_MAX_SAFE_INT = 2**53 - 1
_ASTRAL = re.compile(rb"[\xf0-\xf4]")
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def format_number(value: float | int) -> str:
    """Serialise a number as ECMAScript's ``Number.prototype.toString`` does."""
    if isinstance(value, int) and not isinstance(value, bool):
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return str(value)
        try:
            text = format_number(float(value))
        except OverflowError:
            text = ""
        if not text or Decimal(text) != value:
            raise EntryError(f"the integer {value} cannot be held exactly as an IEEE-754 double")
        return text
    if not math.isfinite(value):
        raise EntryError("NaN and Infinity are not JSON numbers")
    if value == 0:
        return "0"
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-")
        body += str(abs(e))
    return sign + body


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _slow(value: Any, out: list[str]) -> None:
    """The general serialiser: ECMAScript numbers and UTF-16 key order."""
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_ENCODE(key))
            out.append(":")
            _slow(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _slow(item, out)
        out.append("]")
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        out.append(_ENCODE(value))
    elif isinstance(value, int | float):
        out.append(format_number(value))
    else:
        raise EntryError(f"a value of type {type(value).__name__} is not JSON")


def _check_ints(value: Any) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _check_ints(item)
    elif isinstance(value, list):
        for item in value:
            _check_ints(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        format_number(value)


def _encode(obj: Any, has_float: bool) -> bytes:
    if has_float:
        parts: list[str] = []
        _slow(obj, parts)
        text = "".join(parts)
    else:
        text = _ENCODE(obj)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError("the object holds a lone UTF-16 surrogate, which is not Unicode") from None
    if not has_float and _ASTRAL.search(data):
        parts = []
        _slow(obj, parts)
        data = "".join(parts).encode("utf-8")
    if len(data) > MAX_ENTRY_SIZE:
        raise EntryError(
            f"its canonical form is {len(data)} bytes, over the {MAX_ENTRY_SIZE} limit"
        )
    return data


def canonicalize(obj: Any) -> bytes:
    """The RFC 8785 form of an already-parsed JSON value (any type)."""
    if isinstance(obj, float):
        return format_number(obj).encode()
    _check_ints(obj)
    return _encode(obj, _has_float(obj))


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise EntryError(f"{name} is not a JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise EntryError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return obj


class _LineCanonicalizer:
    """Parses and canonicalises JSON Lines, one decoder per batch of lines."""

    __slots__ = ("_decode", "_floats", "_big")

    def __init__(self) -> None:
        self._floats = False
        self._big = False

        def parse_float(text: str) -> float:
            self._floats = True
            return float(text)

        def parse_int(text: str) -> int:
            if len(text) > 15:
                self._big = True
            return int(text)

        self._decode = json.JSONDecoder(
            parse_float=parse_float,
            parse_int=parse_int,
            parse_constant=_refuse_constant,
            object_pairs_hook=_pairs,
        ).decode

    def line(self, raw: bytes | str, lineno: int | None = None) -> bytes:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise EntryError("the line is not valid UTF-8", line=lineno) from None
        if not text.strip():
            raise EntryError("the line is empty; expected one JSON object", line=lineno)
        self._floats = self._big = False
        try:
            obj = self._decode(text)
        except EntryError as err:
            raise EntryError(err.reason, line=lineno) from None
        except (ValueError, RecursionError) as err:
            reason = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
            raise EntryError(f"not valid JSON ({reason})", line=lineno) from None
        if not isinstance(obj, dict):
            raise EntryError(f"expected a JSON object, found {_kind(obj)}", line=lineno)
        try:
            if self._big:
                _check_ints(obj)
            return _encode(obj, self._floats or self._big)
        except EntryError as err:
            raise EntryError(err.reason, line=lineno) from None


def _kind(obj: Any) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    return "a number"


def canonicalize_line(raw: bytes | str, lineno: int | None = None) -> bytes:
    """Parse one JSON Lines line holding an object; return its canonical bytes."""
    return _LineCanonicalizer().line(raw, lineno)


def canonicalize_lines(lines: Iterable[bytes], first_lineno: int = 1) -> Iterator[bytes]:
    """Canonicalise each line; raises :class:`EntryError` naming the first bad line."""
    canon = _LineCanonicalizer().line
    for lineno, raw in enumerate(lines, first_lineno):
        yield canon(raw, lineno)
