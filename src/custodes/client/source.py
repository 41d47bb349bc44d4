"""Where a verifier reads a log from: a tlog-tiles directory or an HTTP base URL."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Protocol

from custodes.client.http import HttpClient
from custodes.errors import FormatError, NotFoundError, UsageError

__all__ = ["DirSource", "HttpSource", "TileSource", "open_source"]

MAX_OBJECT = 1 << 24
"""No tile, bundle or checkpoint is larger than this; refuse anything that is."""


class TileSource(Protocol):
    """Reads one object of a tlog-tiles layout by its relative path."""

    description: str
    fetch_window: int
    """How many fetches to keep in flight: 1 for local files, more over a network."""

    def fetch(self, path: str) -> bytes: ...


class DirSource:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise UsageError(f"{root} is not a directory of log tiles")
        self.root = root
        self.description = str(root)
        self.fetch_window = 1

    def fetch(self, path: str) -> bytes:
        try:
            with open(self.root / path, "rb") as f:
                data = f.read(MAX_OBJECT + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{self.root / path} is missing") from None
        if len(data) > MAX_OBJECT:
            raise NotFoundError(f"{self.root / path} is larger than any log object")
        return data


class HttpSource:
    """A log at an HTTP(S) base URL, read over kept-alive connections.

    Bodies sent with ``Content-Encoding: gzip`` are decoded, asked for or not.
    """

    def __init__(self, base: str, *, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/") + "/"
        self.description = self.base
        self.timeout = timeout
        self.fetch_window = 8
        self.http = HttpClient(timeout=timeout, user_agent="custodes-verify", limit=MAX_OBJECT)

    def fetch(self, path: str) -> bytes:
        url = self.base + path
        try:
            resp = self.http.get(url)
        except (OSError, http.client.HTTPException) as err:
            raise NotFoundError(f"cannot reach {url}: {err}") from None
        except FormatError as err:
            raise NotFoundError(f"{url} answered with an unreadable body: {err}") from None
        if resp.status != 200:
            raise NotFoundError(f"{url} answered HTTP {resp.status}")
        return resp.body

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.http.close()


def open_source(where: str) -> TileSource:
    """A directory path, or an ``http(s)://`` base URL (such as ``.../log``)."""
    if where.startswith(("http://", "https://")):
        return HttpSource(where)
    return DirSource(Path(where))
