"""Shards: several logs, each with its own origin, key and sequencer, under one signed index.

A city larger than one sequencer splits its log, by district or by period.
Each shard is an ordinary custodes instance (``DIR/shards/<name>``) with its
own origin (``<index origin>/<name>``), key and store, served by its own
``custodes serve``, and verifiable on its own.  What binds them is the
*index*: a signed note, with the index key, that lists every shard, so that a
verifier learns from one trusted key which logs make up the city and cannot
be shown a city with a shard left out.  Its text::

    <index origin>
    custodes-shards/v1
    <version>
    <name> <origin> <verifier key> <url or ->
    ...

Each change (a shard added, a URL moved) raises the version; the index is
re-signed and appended to ``DIR/index-history`` so old versions stay
provable.  A shard is never removed from the index: a split city keeps its
past.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from custodes.errors import FormatError, NotFoundError, UsageError
from custodes.ledger.instance import Instance
from custodes.ledger.lock import atomic_write
from custodes.tlog import Signer, Verifier, generate_key, open_note, sign_note

__all__ = ["INDEX_HEADER", "ShardIndex", "ShardInfo", "ShardSet", "open_index"]

INDEX_HEADER = "custodes-shards/v1"
CONFIG = "shards.json"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class ShardInfo:
    name: str
    origin: str
    vkey: str
    url: str | None = None


@dataclass(frozen=True)
class ShardIndex:
    origin: str
    version: int
    shards: tuple[ShardInfo, ...]

    def text(self) -> str:
        lines = [self.origin, INDEX_HEADER, str(self.version)]
        lines += [f"{s.name} {s.origin} {s.vkey} {s.url or '-'}" for s in self.shards]
        return "\n".join(lines) + "\n"

    def shard(self, name: str) -> ShardInfo:
        for s in self.shards:
            if s.name == name:
                return s
        raise NotFoundError(f"the index lists no shard named {name!r}")


def _parse_index(text: str) -> ShardIndex:
    lines = text.rstrip("\n").split("\n")
    if len(lines) < 3 or lines[1] != INDEX_HEADER or not lines[2].isdigit():
        raise FormatError(f"this note is not a custodes shard index ({INDEX_HEADER})")
    shards = []
    for line in lines[3:]:
        parts = line.split(" ")
        if len(parts) != 4 or not _NAME.fullmatch(parts[0]):
            raise FormatError(f"the shard index line {line!r} is not NAME ORIGIN VKEY URL")
        Verifier.from_key(parts[2])  # a malformed key is refused here, not later
        shards.append(
            ShardInfo(parts[0], parts[1], parts[2], None if parts[3] == "-" else parts[3])
        )
    if len({s.name for s in shards}) != len(shards):
        raise FormatError("the shard index names a shard twice")
    return ShardIndex(origin=lines[0], version=int(lines[2]), shards=tuple(shards))


def open_index(note: bytes, vkey: str) -> ShardIndex:
    """Check the index's signature with ``vkey`` and parse it."""
    verifier = Verifier.from_key(vkey)
    opened = open_note(note, [verifier])
    index = _parse_index(opened.text)
    if index.origin != verifier.name:
        raise FormatError(f"the index is for {index.origin!r}, but the key is {verifier.name!r}'s")
    return index


class ShardSet:
    """A directory of shards and the key that signs their index."""

    def __init__(self, path: Path, origin: str, version: int, shards: list[ShardInfo]) -> None:
        self.path = path
        self.origin = origin
        self.version = version
        self.shards = shards

    @classmethod
    def init(cls, path: Path, origin: str) -> ShardSet:
        if (path / CONFIG).exists() or (path / "custodes.json").exists():
            raise UsageError(f"{path} already holds a custodes instance or shard set")
        path.mkdir(parents=True, exist_ok=True)
        skey, vkey = generate_key(origin)
        atomic_write(path / "keys" / "index.key", skey.encode() + b"\n", mode=0o600)
        atomic_write(path / "keys" / "index.vkey", vkey.encode() + b"\n")
        s = cls(path.resolve(), origin, 0, [])
        s._save()
        return s

    @classmethod
    def load(cls, path: Path) -> ShardSet:
        try:
            raw = json.loads((path / CONFIG).read_text())
            shards = [ShardInfo(**s) for s in raw["shards"]]
            return cls(path.resolve(), raw["origin"], int(raw["version"]), shards)
        except FileNotFoundError:
            raise NotFoundError(
                f"{path} is not a shard set; make one with 'custodes shards init'"
            ) from None
        except (ValueError, KeyError, TypeError) as err:
            raise FormatError(f"{path / CONFIG} is not a valid shard set ({err})") from None

    @property
    def verifier_key(self) -> str:
        return (self.path / "keys" / "index.vkey").read_text().strip()

    def shard_path(self, name: str) -> Path:
        if not any(s.name == name for s in self.shards):
            raise NotFoundError(f"there is no shard named {name!r}")
        return self.path / "shards" / name

    def add(self, name: str, *, url: str | None = None, store: str | None = None) -> Instance:
        """Make a new shard: its own instance, origin and key; the index is re-signed."""
        if not _NAME.fullmatch(name):
            raise UsageError(
                f"the shard name {name!r} must be lowercase letters, digits and '-' (1-63)"
            )
        if any(s.name == name for s in self.shards):
            raise UsageError(f"the shard {name!r} exists already")
        inst = Instance.init(
            self.path / "shards" / name, origin=f"{self.origin}/{name}", store=store
        )
        self.shards.append(ShardInfo(name, inst.origin, inst.verifier_key, url))
        self._save()
        return inst

    def set_url(self, name: str, url: str | None) -> None:
        self.shard_path(name)
        self.shards = [ShardInfo(s.name, s.origin, s.vkey, url) if s.name == name else s
                       for s in self.shards]  # fmt: skip
        self._save()

    def index(self) -> ShardIndex:
        return ShardIndex(self.origin, self.version, tuple(self.shards))

    def index_note(self) -> bytes:
        return (self.path / "index").read_bytes()

    def _save(self) -> None:
        self.version += 1
        signer = Signer.from_key((self.path / "keys" / "index.key").read_text().strip())
        note = sign_note(self.index().text(), signer)
        config = {
            "origin": self.origin,
            "version": self.version,
            "shards": [s.__dict__ for s in self.shards],
        }
        atomic_write(self.path / "index", note)
        with open(self.path / "index-history", "ab") as f:
            f.write(note + b"\n")
        atomic_write(self.path / CONFIG, json.dumps(config, indent=2).encode() + b"\n")
