"""An in-memory origin log for mirror tests and the benchmark: tiles built with custodes.tlog."""

from __future__ import annotations

from custodes.errors import NotFoundError
from custodes.tlog import (
    Checkpoint,
    MemoryTree,
    Signer,
    format_entry_bundle,
    format_hash_tile,
    generate_key,
    leaf_hash,
    parse_tile_path,
    sign_checkpoint,
)

ORIGIN = "example.org/custodes/mirror-test"


class MemoryOrigin:
    """A growing log whose tlog-tiles objects are made on request for the published size."""

    def __init__(self, origin: str = ORIGIN) -> None:
        skey, self.vkey = generate_key(origin)
        self.signer = Signer.from_key(skey)
        self.origin = origin
        self.entries: list[bytes] = []
        self.tree = MemoryTree()
        self.published = 0
        self.fetches = 0
        self.down = False
        self.note = sign_checkpoint(
            Checkpoint(origin=origin, size=0, root_hash=self.tree.root(0)), self.signer
        )

    def append(self, entries: list[bytes]) -> None:
        for e in entries:
            self.entries.append(e)
            self.tree.append(leaf_hash(e))

    def publish(self) -> None:
        self.published = self.tree.size
        cp = Checkpoint(origin=self.origin, size=self.published, root_hash=self.tree.root())
        self.note = sign_checkpoint(cp, self.signer)

    def fetch(self, path: str) -> bytes:
        self.fetches += 1
        if self.down:
            raise NotFoundError("The origin is down.")
        if path == "checkpoint":
            return self.note
        t = parse_tile_path(path)
        start = t.index * 256
        if t.level < 0:
            if start + t.width > self.published:
                raise NotFoundError(f"No {path}.")
            return format_entry_bundle(self.entries[start : start + t.width])
        level = 8 * t.level
        if (start + t.width) << level > self.published:
            raise NotFoundError(f"No {path}.")
        nodes = [(level, start + j) for j in range(t.width)]
        return format_hash_tile(self.tree.read_hashes(nodes))
