"""Custody's log entries: signed by the custodian that writes them, checked by every reader.

The log server appends what it is given, and its operator is trusted by nobody, so every
custody entry carries its author's signature inside it and every reader checks it against
the logged custodian set (the server's ``POST /custody/entries`` checks the same, but only to
keep rubbish out of the log).

``custody.set``       ``number`` (1, 2, ...), ``threshold``, ``dkg_deadline_s`` and
                      ``custodians``: ``{name, vkey, url, key}`` each (``vkey`` the
                      custodian's signed-note verifier key, named ``name``; ``key`` its
                      ristretto255 encryption key, base64), in the order that gives each
                      its index (1-based); ``signatures``: ``{by, signature}`` over the rest.
                      Set 1 is signed by every custodian it names (each consents to hold
                      shares); set k+1 by at least ``threshold`` custodians of set k.
``custody.dealing``, ``custody.complaint``, ``custody.extraction``, ``custody.reveal``
                      the DKG messages of :mod:`custodes.custody.dkg`, plus ``set``
``custody.checked``   ``epoch``, ``phase`` (1 or 2), ``set``: its author has checked every
                      message of that phase and complained where it had to
``custody.close``     ``epoch``, ``phase``, ``set``: the phase's deadline has passed
``custody.epoch``     ``epoch``, ``set``, ``starts``, ``ends`` and ``key`` (the
                      :class:`~custodes.custody.keys.EpochPublic`), recomputable from the DKG
``custody.shredded``  ``epochs``: its author has destroyed its shares of these epochs

Every custodian-written entry has ``v``, ``time``, ``by`` (the author's name) and
``signature``: Ed25519, by the author's note key, over ``custodes/custody/entry/v1``, a
newline and the RFC 8785 form of the entry without ``signature``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from custodes.custody.errors import CustodyFormatError
from custodes.custody.group import Point, b64decode, b64encode
from custodes.records.canonical import canonicalize
from custodes.tlog import Signer, Verifier

__all__ = [
    "DKG_KINDS",
    "Custodian",
    "CustodianSet",
    "accept_set",
    "check_signed",
    "epoch_bounds",
    "epoch_of",
    "format_ms",
    "now_ms",
    "parse_ms",
    "set_message",
    "sign_entry",
    "sign_set",
    "upcoming",
]

_ENTRY_TAG = b"custodes/custody/entry/v1\n"
_SET_TAG = b"custodes/custody/set/v1\n"
DKG_KINDS = frozenset(
    {
        "custody.dealing",
        "custody.complaint",
        "custody.extraction",
        "custody.reveal",
        "custody.checked",
        "custody.close",
        "custody.epoch",
    }
)
_OUTER = ("v", "time", "by", "signature", "set")


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def format_ms(ms: int) -> str:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_ms(text: object) -> int:
    if not isinstance(text, str) or not text.endswith("Z") or len(text) > 40:
        raise CustodyFormatError("time: expected an RFC 3339 UTC time ending in Z")
    try:
        t = datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        raise CustodyFormatError("time: expected an RFC 3339 UTC time") from None
    return int(t.timestamp() * 1000)


def epoch_of(ms: int) -> str:
    """The epoch (a UTC day, ``YYYY-MM-DD``) of a time in milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def upcoming(now_ms: int, ahead: int) -> list[str]:
    """Today's epoch and the ``ahead`` after it."""
    return [epoch_of(now_ms + k * 86_400_000) for k in range(ahead + 1)]


def epoch_bounds(epoch: str) -> tuple[int, int]:
    """``[start, end)`` of a day epoch, in milliseconds."""
    try:
        day = datetime.strptime(epoch, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise CustodyFormatError(f"epoch {epoch!r} is not a day (YYYY-MM-DD)") from None
    start = int(day.timestamp() * 1000)
    return start, int((day + timedelta(days=1)).timestamp() * 1000)


def _b64sig(text: object) -> bytes:
    if not isinstance(text, str) or len(text) != 88:
        raise CustodyFormatError("signature: expected 64 bytes of base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise CustodyFormatError("signature: not base64") from None


@dataclass(frozen=True, slots=True)
class Custodian:
    name: str
    vkey: str
    url: str
    key: Point

    @property
    def verifier(self) -> Verifier:
        return Verifier.from_key(self.vkey)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vkey": self.vkey,
            "url": self.url,
            "key": b64encode(self.key.encode()),
        }

    @classmethod
    def from_json(cls, obj: object) -> Custodian:
        if not isinstance(obj, dict) or set(obj) != {"name", "vkey", "url", "key"}:
            raise CustodyFormatError("a custodian has exactly name, vkey, url and key")
        name, vkey, url = obj["name"], obj["vkey"], obj["url"]
        if not all(isinstance(x, str) for x in (name, vkey, url)):
            raise CustodyFormatError("a custodian's name, vkey and url are strings")
        if not url.startswith(("http://", "https://")) or len(url) > 512:
            raise CustodyFormatError(f"custodian {name}: url must be http(s)")
        try:
            verifier = Verifier.from_key(vkey)
        except Exception as exc:  # the tlog parser's own error, as a custody one
            raise CustodyFormatError(f"custodian {name}: bad verifier key ({exc})") from None
        if verifier.name != name:
            raise CustodyFormatError(f"custodian {name}: its verifier key is named otherwise")
        key = Point.decode(b64decode(obj["key"], 32, what="key"))
        return cls(name, vkey, url, key)


@dataclass(frozen=True, slots=True)
class CustodianSet:
    """A logged custodian set: custodian ``j`` (1-based) is ``custodians[j-1]``."""

    number: int
    threshold: int
    dkg_deadline_s: int
    custodians: tuple[Custodian, ...]
    index: int = -1  # its log index, once logged

    @property
    def n(self) -> int:
        return len(self.custodians)

    def position(self, name: str) -> int | None:
        for j, c in enumerate(self.custodians, 1):
            if c.name == name:
                return j
        return None

    def by_name(self, name: str) -> Custodian | None:
        j = self.position(name)
        return None if j is None else self.custodians[j - 1]

    def body(self, time: str) -> dict[str, Any]:
        """The unsigned ``custody.set`` entry (what each custodian signs)."""
        return {
            "type": "custody.set",
            "v": 1,
            "time": time,
            "number": self.number,
            "threshold": self.threshold,
            "dkg_deadline_s": self.dkg_deadline_s,
            "custodians": [c.to_json() for c in self.custodians],
        }

    @classmethod
    def from_body(cls, obj: object, index: int = -1) -> CustodianSet:
        names = {"type", "v", "time", "number", "threshold", "dkg_deadline_s", "custodians"}
        if not isinstance(obj, dict) or obj.get("type") != "custody.set":
            raise CustodyFormatError("expected a custody.set entry")
        if set(obj) - {"signatures"} != names or obj["v"] != 1:
            raise CustodyFormatError(f"a custody.set has exactly the fields {sorted(names)}")
        parse_ms(obj["time"])
        raw = obj["custodians"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= 64:
            raise CustodyFormatError("custodians: expected 1 to 64")
        custodians = tuple(Custodian.from_json(c) for c in raw)
        if len({c.name for c in custodians}) != len(custodians) or len(
            {c.key for c in custodians}
        ) != len(custodians):
            raise CustodyFormatError("custodians' names and keys must be distinct")
        number, t, deadline = obj["number"], obj["threshold"], obj["dkg_deadline_s"]
        if type(number) is not int or not 1 <= number < 2**31:
            raise CustodyFormatError("number: expected a positive integer")
        if type(t) is not int or not 1 <= t <= len(custodians):
            raise CustodyFormatError("threshold: expected 1 to the number of custodians")
        if type(deadline) is not int or not 1 <= deadline <= 7 * 86400:
            raise CustodyFormatError("dkg_deadline_s: expected 1 s to a week")
        return cls(number, t, deadline, custodians, index)


def set_message(body: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in body.items() if k != "signatures"}
    return _SET_TAG + canonicalize(unsigned)


def accept_set(obj: object, current: CustodianSet | None, index: int = -1) -> CustodianSet:
    """The new set if ``obj`` is a valid next set after ``current``; else CustodyFormatError.

    The first set needs the signature of every custodian it names; a later one, of at
    least ``threshold`` custodians of the current set.
    """
    new = CustodianSet.from_body(obj, index)
    assert isinstance(obj, dict)
    want = 1 if current is None else current.number + 1
    if new.number != want:
        raise CustodyFormatError(f"this custodian set is number {new.number}; {want} comes next")
    sigs = obj.get("signatures")
    if not isinstance(sigs, list) or len(sigs) > 64:
        raise CustodyFormatError("signatures: expected a list")
    message = set_message(obj)
    signers = current or new
    valid: set[str] = set()
    for s in sigs:
        if not isinstance(s, dict) or set(s) != {"by", "signature"}:
            raise CustodyFormatError("a set signature has exactly by and signature")
        who = signers.by_name(s["by"]) if isinstance(s["by"], str) else None
        if who is not None and who.verifier.verify(message, _b64sig(s["signature"])):
            valid.add(who.name)
    if current is None:
        missing = sorted({c.name for c in new.custodians} - valid)
        if missing:
            raise CustodyFormatError(
                f"the first custodian set must be signed by all it names; {missing} did not"
            )
    elif len(valid) < current.threshold:
        raise CustodyFormatError(
            f"changing the custodian set needs {current.threshold} signatures of current"
            f" custodians; it has {len(valid)}"
        )
    return new


def sign_set(body: dict[str, Any], signer: Signer) -> dict[str, str]:
    sig = signer.sign(set_message(body))
    return {"by": signer.name, "signature": base64.b64encode(sig).decode()}


def _entry_message(obj: dict[str, Any]) -> bytes:
    return _ENTRY_TAG + canonicalize({k: v for k, v in obj.items() if k != "signature"})


def sign_entry(
    body: dict[str, Any], signer: Signer, *, time_ms: int | None = None
) -> dict[str, Any]:
    """``body`` (with its ``type``) as a signed custody entry by ``signer``."""
    obj = {**body, "v": 1, "time": format_ms(now_ms() if time_ms is None else time_ms)}
    obj["by"] = signer.name
    obj["signature"] = base64.b64encode(signer.sign(_entry_message(obj))).decode()
    return obj


def check_signed(obj: object, cset: CustodianSet) -> tuple[int, dict[str, Any], int]:
    """(author's index in ``cset``, the message without outer fields, time in ms).

    Raises CustodyFormatError unless a custodian of ``cset`` signed ``obj``.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise CustodyFormatError("a custody entry is an object with a type")
    if obj.get("v") != 1 or not isinstance(obj.get("by"), str):
        raise CustodyFormatError("a custody entry has v 1 and by")
    j = cset.position(obj["by"])
    if j is None:
        raise CustodyFormatError(f"{obj['by']!r} is not a custodian of set {cset.number}")
    sig = _b64sig(obj.get("signature"))
    if not cset.custodians[j - 1].verifier.verify(_entry_message(obj), sig):
        raise CustodyFormatError(f"the signature of {obj['by']} does not verify")
    time = parse_ms(obj.get("time"))
    return j, {k: v for k, v in obj.items() if k not in _OUTER}, time
