"""A bounded in-memory cache of served tiles and entry bundles.

A tile or bundle of a given width never changes once the log has reached it
(tlog-tiles: a partial tile of width W holds the same hashes for as long as it
is served), so whatever a server has read once it can keep and send again
without reading the store or compressing anything.  Entry bundles are kept
gzip-compressed, as most clients ask for them; a client that refuses gzip
gets them inflated from the same copy.  The cache evicts the least recently
used objects beyond ``max_bytes``; it is safe to use from several threads.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["DEFAULT_MAX_BYTES", "TileCache", "compress_bundle", "inflate"]

DEFAULT_MAX_BYTES = 64 << 20
"""About 250,000 entries' compressed bundles and their level-0 tiles, or more."""

_KEY_OVERHEAD = 120
"""What one cached object costs beside its bytes (the key, the dict slot), roughly."""


def compress_bundle(data: bytes, level: int = 6) -> bytes:
    """An entry bundle as sent with ``Content-Encoding: gzip`` (no timestamp, so stable);
    ``level`` 1 costs about a fifth of the default 6 and gives a few per cent more bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def inflate(data: bytes) -> bytes:
    """The body of a gzip stream that :func:`compress_bundle` (or a mirror's file) holds."""
    return zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)


class TileCache:
    """Objects by key (``serve`` uses the tile's path, the mirror its level, index and
    width), least recently used evicted first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("a tile cache holds zero or more bytes")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        cost = len(data) + _KEY_OVERHEAD
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= len(old) + _KEY_OVERHEAD
            self._items[key] = data
            self.bytes += cost
            while self.bytes > self.max_bytes:
                _, gone = self._items.popitem(last=False)
                self.bytes -= len(gone) + _KEY_OVERHEAD
