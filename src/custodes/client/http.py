"""HTTP for log clients: kept-alive connections, gzip bodies, standard library only.

Every request asks for ``Accept-Encoding: gzip, identity`` and decodes a
gzip body, whether it was negotiated or sent unasked (tlog-tiles lets a log
serve entry bundles compressed either way).  Each thread keeps one
connection per host and reuses it; a request that fails on a reused
connection is sent once more on a fresh one, since the server may have
closed it while idle.  After a fork the child opens its own connections.
Redirects are followed (up to :data:`MAX_REDIRECTS`), and the proxy named by
``http_proxy``/``https_proxy`` is used as urllib would (``no_proxy`` too).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import urllib.request
import zlib
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

from custodes.errors import FormatError

__all__ = ["ACCEPT_ENCODING", "HttpClient", "HttpResponse", "accepts_gzip", "decode_body"]

ACCEPT_ENCODING = "gzip, identity"
MAX_REDIRECTS = 5

_RETRYABLE = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


@dataclass(frozen=True, kw_only=True)
class HttpResponse:
    """A whole answer: status, headers and the decoded body."""

    url: str
    status: int
    headers: Message
    body: bytes


def decode_body(data: bytes, encoding: str | None, limit: int) -> bytes:
    """``data`` as sent with ``Content-Encoding: encoding``, decoded; at most ``limit`` bytes.

    Raises :class:`FormatError` for an unknown encoding, a corrupt gzip stream,
    or a body that would decode to more than ``limit`` bytes.
    """
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding not in ("gzip", "x-gzip"):
            raise FormatError(f"The body has Content-Encoding {coding!r}, which is not gzip.")
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error as err:
            raise FormatError(f"The gzip body is corrupt: {err}.") from None
        if len(out) > limit:
            raise FormatError(f"The gzip body decodes to more than {limit} bytes.")
        if not inflater.eof:
            raise FormatError("The gzip body is truncated.")
        data = out
    if len(data) > limit:
        raise FormatError(f"The body is larger than {limit} bytes.")
    return data


class _ProxiedConnection(http.client.HTTPConnection):
    """A connection to a plain HTTP proxy (requests name the whole URL)."""


def _proxy_for(scheme: str, netloc: str) -> str | None:
    """The ``host:port`` of the proxy the environment names for this URL, if any.

    As urllib does: ``http_proxy``/``https_proxy``, except hosts in ``no_proxy``.
    """
    proxy = urllib.request.getproxies().get(scheme)
    host = netloc.rsplit("@", 1)[-1]
    if not proxy or urllib.request.proxy_bypass(host.split(":")[0] if "]" not in host else host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.netloc.rsplit("@", 1)[-1] or None


class HttpClient:
    """GET and POST over one kept-alive connection per host and thread."""

    def __init__(
        self, *, timeout: float = 30.0, user_agent: str = "custodes", limit: int = 1 << 24
    ) -> None:
        self.timeout = timeout
        self.user_agent = user_agent
        self.limit = limit
        self._local = threading.local()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, object]:
        return {"timeout": self.timeout, "user_agent": self.user_agent, "limit": self.limit}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _pool(self) -> dict[tuple[str, str], http.client.HTTPConnection]:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._local = threading.local()
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._open = set()
        pool: dict[tuple[str, str], http.client.HTTPConnection] | None = getattr(
            self._local, "pool", None
        )
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._pool()
        conn = pool.get((scheme, netloc))
        if conn is not None:
            with self._lock:
                self._open.add(conn)  # close() may have closed it; it reopens itself
            return conn, conn.sock is not None
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        proxy = _proxy_for(scheme, netloc)
        if proxy is None:
            conn = cls(netloc, timeout=self.timeout)
        elif scheme == "https":  # through the proxy by CONNECT
            conn = http.client.HTTPSConnection(proxy, timeout=self.timeout)
            conn.set_tunnel(netloc)
        else:  # a plain HTTP proxy takes the whole URL as the target
            conn = _ProxiedConnection(proxy, timeout=self.timeout)
        pool[(scheme, netloc)] = conn
        with self._lock:
            self._open.add(conn)
        return conn, False

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._pool().pop((scheme, netloc), None)
        if conn is not None:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def close(self) -> None:
        """Close every connection, of every thread (a thread reconnects on its next request)."""
        if self._pid != os.getpid():
            return
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()

    def _once(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Message, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OSError(f"{url} is not an http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        full = f"{parts.scheme}://{parts.netloc}{target}"
        send = {
            "Host": parts.netloc,
            "User-Agent": self.user_agent,
            "Accept-Encoding": ACCEPT_ENCODING,
            **headers,
        }
        for attempt in (0, 1):
            conn, reused = self._connection(parts.scheme, parts.netloc)
            try:
                proxied = isinstance(conn, _ProxiedConnection)
                conn.request(method, full if proxied else target, body=body, headers=send)
                resp = conn.getresponse()
                raw = resp.read(self.limit + 1)
                if not resp.isclosed():
                    # Larger than any answer we take: do not read the rest.
                    self._drop(parts.scheme, parts.netloc)
                elif resp.will_close:
                    self._drop(parts.scheme, parts.netloc)
            except _RETRYABLE:
                self._drop(parts.scheme, parts.netloc)
                if reused and attempt == 0:
                    continue  # the server closed the idle connection; try a fresh one
                raise
            except (OSError, http.client.HTTPException):
                self._drop(parts.scheme, parts.netloc)
                raise
            return resp.status, resp.headers, raw
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request, following redirects; the body comes back decoded.

        Raises OSError (or http.client.HTTPException) when the server cannot be
        reached or answers out of protocol, FormatError for an undecodable body.
        """
        for _ in range(MAX_REDIRECTS + 1):
            status, got, raw = self._once(method, url, body, headers or {})
            location = got.get("Location")
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if status == 303:
                    method, body = "GET", None
                continue
            data = decode_body(raw, got.get("Content-Encoding"), self.limit)
            return HttpResponse(url=url, status=status, headers=got, body=data)
        raise OSError(f"more than {MAX_REDIRECTS} redirects from {url}")

    def get(self, url: str) -> HttpResponse:
        return self.request("GET", url)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``q=0`` refuses it); the servers
    (``serve``, the mirror) ask this before sending a compressed entry bundle."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False
