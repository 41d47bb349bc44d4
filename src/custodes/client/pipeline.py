"""Plain-HTTP GETs of many log objects at once: kept-alive, pipelined, standard library only.

A verifier asks one server for thousands of small immutable objects (two
for every 256 entries).  Sent one by one through :mod:`http.client`, each
costs a round trip and more client CPU than hashing its entries, so
:class:`PipelinedGetter` writes a batch of ``GET`` requests in one send on a
kept-alive connection and reads the answers in order (HTTP/1.1 pipelining,
RFC 9112 section 9.3: safe for GET, which is idempotent).  If the server
closes the connection partway (``Connection: close``, an idle timeout), the
requests it did not answer are sent again on a fresh connection.  Bodies
are decoded as :func:`custodes.client.http.decode_body` decodes them (gzip,
within the size limit), whether gzip was negotiated or sent unasked.

Only ``http://`` without a proxy goes this way; :class:`HttpSource` sends
everything else (https, proxies, redirects) through :class:`HttpClient`.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from custodes.client import http as _http
from custodes.client.http import decode_body
from custodes.errors import FormatError

__all__ = ["Answer", "PipelinedGetter"]

BATCH = 32
"""Requests written ahead of their answers on one connection."""

_MAX_HEAD = 64 << 10
_READ = 256 << 10


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer: status, headers (lower-case names) and the decoded body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Closed(Exception):
    """The server closed the connection before answering every request sent."""


class _Conn:
    """One kept-alive connection and its read buffer."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.answered = 0
        self._chunk = bytearray(_READ)
        self._view = memoryview(self._chunk)

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        n = self.sock.recv_into(self._view)
        if not n:
            raise _Closed
        self.buf += self._view[:n]

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > _MAX_HEAD:
                raise FormatError("The server sent a header line longer than 64 KiB.")
            self._fill()

    def _head(self) -> str:
        """The status line and header lines of the next answer, up to the empty line."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("latin-1")
                del self.buf[: end + 4]
                return head
            if len(self.buf) > _MAX_HEAD:
                raise FormatError("The server sent a header longer than 64 KiB.")
            self._fill()

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_answer(self, limit: int) -> tuple[Answer, bool]:
        """The next answer, and whether the connection stays open after it."""
        while True:
            lines = self._head().split("\r\n")
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise FormatError(f"The server sent a malformed status line: {lines[0][:80]!r}.")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise FormatError(f"The server sent a malformed header line: {line[:80]!r}.")
                key, text = name.strip().lower(), value.strip()
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            if not 100 <= status < 200:
                break
        keep = parts[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raw = self._chunked(limit)
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise FormatError(f"The server sent Content-Length {length!r}.")
            if int(length) > limit:
                raise FormatError(f"The body is larger than {limit} bytes.")
            raw = self._exactly(int(length))
        elif status in (204, 304):
            raw = b""
        else:  # the body runs to the end of the connection
            while True:
                try:
                    self._fill()
                except _Closed:
                    break
                if len(self.buf) > limit:
                    raise FormatError(f"The body is larger than {limit} bytes.")
            raw, keep = bytes(self.buf), False
            self.buf.clear()
        body = decode_body(raw, headers.get("content-encoding"), limit)
        self.answered += 1
        return Answer(status=status, headers=headers, body=body), keep

    def _chunked(self, limit: int) -> bytes:
        out = bytearray()
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise FormatError(f"The server sent a bad chunk size {size_text!r}.") from None
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return bytes(out)
            if len(out) + size > limit:
                raise FormatError(f"The body is larger than {limit} bytes.")
            out += self._exactly(size)
            if self._exactly(2) != b"\r\n":
                raise FormatError("The server sent a chunk without its line end.")


class PipelinedGetter:
    """GETs to one ``host:port``, in pipelined batches over one connection per thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        user_agent: str = "custodes",
        limit: int = 1 << 24,
        accept_encoding: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self.user_agent = user_agent
        self.limit = limit
        self.accept_encoding = accept_encoding
        self.batch = BATCH
        self._local = threading.local()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._open: set[_Conn] = set()

    def __getstate__(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "timeout": self.timeout,
            "user_agent": self.user_agent,
            "limit": self.limit,
            "accept_encoding": self.accept_encoding,
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        host, port = state.pop("host"), state.pop("port")
        self.__init__(host, port, **state)  # type: ignore[misc]

    def _conn(self) -> tuple[_Conn, bool]:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._local = threading.local()
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._open = set()
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        conn = self._local.conn = _Conn(self.host, self.port, self.timeout)
        with self._lock:
            self._open.add(conn)
        return conn, False

    def _drop(self) -> None:
        conn: _Conn | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _ended(self, conn: _Conn) -> None:
        """The server ended ``conn``: write no more ahead than it answered on one connection
        (a server that closes after every answer, or every N, is then not sent requests
        it will only drop)."""
        self._drop()
        if 0 < conn.answered < self.batch:
            self.batch = conn.answered

    def close(self) -> None:
        """Close every connection, of every thread (each reconnects on its next request)."""
        if self._pid != os.getpid():
            return
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def _request(self, target: str) -> bytes:
        accept = self.accept_encoding or _http.ACCEPT_ENCODING  # read per request
        host = self.host if self.port == 80 else f"{self.host}:{self.port}"
        if ":" in self.host:
            host = f"[{self.host}]:{self.port}"
        return (
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {self.user_agent}\r\n"
            f"Accept-Encoding: {accept}\r\n\r\n"
        ).encode("latin-1")

    def get_many(self, targets: Sequence[str]) -> list[Answer]:
        """The answers to ``GET target`` for each target (a path and query), in order.

        Raises OSError when the server cannot be reached or stops answering,
        FormatError when it answers out of protocol or with an unreadable body.
        """
        return list(self.stream(targets))

    def stream(self, targets: Sequence[str]) -> Generator[Answer, None, None]:
        """The answers of :meth:`get_many`, each as soon as it is read.

        Up to ``batch`` requests stay written ahead of the answer being handed
        over, topped up each time half of them are answered, so the server works
        on the next ones while the caller handles this one.  One stream at a time
        in a thread (they share its connection); a stream left unfinished closes
        the connection, whose answers would otherwise be read by the next request.
        """
        got = 0  # answers handed over
        fresh_tries = 0
        while got < len(targets):
            conn, reused = self._conn()
            start = conn.answered
            sent = got  # what an earlier connection was sent and did not answer, again
            try:
                while got < len(targets):
                    if sent < len(targets) and sent - got <= self.batch // 2:
                        upto = min(len(targets), got + self.batch)
                        conn.sock.sendall(b"".join(self._request(t) for t in targets[sent:upto]))
                        sent = upto
                    answer, keep = conn.read_answer(self.limit)
                    got += 1
                    yield answer
                    if not keep:
                        self._ended(conn)
                        break
            except (_Closed, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                self._ended(conn)
                if conn.answered > start or reused:
                    continue  # some answered, or an idle connection went: send the rest again
                fresh_tries += 1
                if fresh_tries > 1:
                    raise OSError(
                        f"{self.host}:{self.port} closed the connection without answering"
                    ) from None
            except (OSError, FormatError):
                self._drop()
                raise
            except GeneratorExit:
                if got < len(targets):
                    self._drop()  # answers still on their way: not for the next request
                raise
