"""Where a verifier reads a log from: a tlog-tiles directory or an HTTP base URL."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from custodes.client.http import HttpClient, _proxy_for
from custodes.client.pipeline import PipelinedGetter
from custodes.errors import FormatError, NotFoundError, UsageError

__all__ = ["DirSource", "HttpSource", "TileSource", "fetch_many", "fetch_stream", "open_source"]

MAX_OBJECT = 1 << 24
"""No tile, bundle or checkpoint is larger than this; refuse anything that is."""


class TileSource(Protocol):
    """Reads one object of a tlog-tiles layout by its relative path."""

    description: str
    fetch_window: int
    """How many fetches to keep in flight: 1 for local files, more over a network."""

    def fetch(self, path: str) -> bytes: ...


def fetch_many(source: TileSource, paths: Sequence[str]) -> list[bytes]:
    """Each of ``paths``, in order: in pipelined batches where the source can, else one by one."""
    many: Callable[[Sequence[str]], list[bytes]] | None = getattr(source, "fetch_many", None)
    if many is not None:
        return many(paths)
    return [source.fetch(p) for p in paths]


def fetch_stream(source: TileSource, paths: Sequence[str]) -> Iterator[bytes]:
    """Each of ``paths``, in order, as it arrives: pipelined where the source can (the next
    requests are being answered while the caller checks this one), else one by one."""
    stream: Callable[[Sequence[str]], Iterator[bytes]] | None = getattr(
        source, "fetch_stream", None
    )
    if stream is not None:
        return stream(paths)
    return (source.fetch(p) for p in paths)


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
    A plain ``http://`` log reached without a proxy is read through
    :class:`PipelinedGetter` (batches of requests written ahead of their
    answers); redirects, https and proxies go through :class:`HttpClient`.
    """

    def __init__(self, base: str, *, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/") + "/"
        self.description = self.base
        self.timeout = timeout
        self.fetch_window = 8
        self.http = HttpClient(timeout=timeout, user_agent="custodes-verify", limit=MAX_OBJECT)
        self.getter: PipelinedGetter | None = None
        parts = urlsplit(self.base)
        if parts.scheme == "http" and parts.hostname and _proxy_for("http", parts.netloc) is None:
            try:
                port = parts.port or 80
            except ValueError:
                port = None
            if port is not None and "@" not in parts.netloc:
                self.getter = PipelinedGetter(
                    parts.hostname,
                    port,
                    timeout=timeout,
                    user_agent="custodes-verify",
                    limit=MAX_OBJECT,
                )
                self._prefix = parts.path

    def fetch(self, path: str) -> bytes:
        return self.fetch_many([path])[0]

    def fetch_many(self, paths: Sequence[str]) -> list[bytes]:
        """Each of ``paths`` under the base URL, in order; NotFoundError for any not served."""
        return list(self.fetch_stream(paths))

    def fetch_stream(self, paths: Sequence[str]) -> Generator[bytes, None, None]:
        """The bodies of :meth:`fetch_many`, each as soon as it arrives (pipelined)."""
        if self.getter is None:
            yield from (self._fetch_one(p) for p in paths)
            return
        where = self.base + paths[0] if len(paths) == 1 else self.base
        answers = self.getter.stream([self._prefix + p for p in paths])
        try:
            for path in paths:
                try:
                    answer = next(answers)
                except (OSError, http.client.HTTPException) as err:
                    raise NotFoundError(f"cannot reach {where}: {err}") from None
                except FormatError as err:
                    raise NotFoundError(
                        f"{where} answered with an unreadable body: {err}"
                    ) from None
                if answer.status in (301, 302, 303, 307, 308) and "location" in answer.headers:
                    yield self._fetch_one(path)  # redirects: as urllib would follow them
                elif answer.status != 200:
                    raise NotFoundError(f"{self.base + path} answered HTTP {answer.status}")
                else:
                    yield answer.body
        finally:
            answers.close()  # stopped early: the connection goes with its unread answers

    def _fetch_one(self, path: str) -> bytes:
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
        if self.getter is not None:
            self.getter.close()


def open_source(where: str) -> TileSource:
    """A directory path, or an ``http(s)://`` base URL (such as ``.../log``)."""
    if where.startswith(("http://", "https://")):
        return HttpSource(where)
    return DirSource(Path(where))
