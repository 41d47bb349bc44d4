"""``witness serve``: a small HTTP/1.1 server for C2SP tlog-witness, with group commit.

The event loop parses requests and checks signatures and proofs
(:meth:`Witness.check`); each checked request becomes a compare-and-swap
that waits in a queue. One writer thread commits everything queued as one
SQLite transaction (one fsync for the batch) while the loop goes on checking
the next requests; only after the commit are the cosignatures signed and
sent. Under load that batches hundreds of requests into one fsync; alone, a
request waits for one commit.

Routes: ``POST /add-checkpoint`` and ``GET /healthz``. Bodies need a
``Content-Length`` (no chunked encoding); connections are kept alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from custodes.witness.core import MAX_REQUEST, Reply, Witness
from custodes.witness.store import Advance, WitnessStore

__all__ = ["WitnessServer", "serve"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    500: "Internal Server Error",
}
_MAX_HEAD = 16 * 1024


class WitnessServer:
    """The witness's request handling and its group-committing writer."""

    def __init__(self, witness: Witness, store: WitnessStore) -> None:
        self.witness = witness
        self.store = store
        self._queue: list[tuple[Advance, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="witness-commit")

    async def add_checkpoint(self, body: bytes) -> Reply:
        checked = self.witness.check(body)
        if isinstance(checked, Reply):
            return checked
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((checked, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._commit_loop())
        if await fut:
            return self.witness.committed(checked)
        return self.witness.lost(checked, self.store.get(checked.origin))

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                done = await loop.run_in_executor(
                    self._pool, self.store.advance, [op for op, _ in batch]
                )
            except Exception as err:  # the store failed: fail every request in the batch
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for (_, fut), ok in zip(batch, done, strict=True):
                if not fut.done():
                    fut.set_result(ok)

    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/add-checkpoint":
            if method != "POST":
                return Reply.refuse(405, "Use POST for /add-checkpoint.")
            try:
                return await self.add_checkpoint(body)
            except Exception:
                return Reply.refuse(500, "The witness could not record its state; try again.")
        if path == "/healthz" and method in ("GET", "HEAD"):
            return Reply(status=200, body=b"ok\n")
        return Reply.refuse(404, f"No such resource {path}.")

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class _Http(asyncio.Protocol):
    """One HTTP/1.1 connection: requests handled one at a time, in order."""

    def __init__(self, server: WitnessServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()
        elif len(self.buf) > MAX_REQUEST + _MAX_HEAD and self.transport is not None:
            self.transport.pause_reading()  # a client far ahead of its answers waits

    def _next(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self._send(Reply.refuse(400, "The request head is too large."), close=True)
            return
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._send(Reply.refuse(400, "Malformed request line."), close=True)
            return
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                self._send(Reply.refuse(400, "Malformed header line."), close=True)
                return
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            self._send(Reply.refuse(411, "Send a Content-Length, not chunks."), close=True)
            return
        length_text = headers.get("content-length", "0")
        if not (length_text.isascii() and length_text.isdigit()):
            self._send(Reply.refuse(400, "Malformed Content-Length."), close=True)
            return
        length = int(length_text)
        if length > MAX_REQUEST:
            self._send(Reply.refuse(413, "The request body is too large."), close=True)
            return
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        conn = headers.get("connection", "").lower()
        close = conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive")
        self.busy = True
        task = asyncio.ensure_future(self.server.handle(method, path.split("?")[0], body))
        task.add_done_callback(lambda f: self._done(f, close))

    def _done(self, fut: asyncio.Future[Reply], close: bool) -> None:
        self.busy = False
        self._send(fut.result(), close=close)
        if not close and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._next()

    def _send(self, reply: Reply, *, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        reason = _REASONS.get(reply.status, "Error")
        head = (
            f"HTTP/1.1 {reply.status} {reason}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        t.write(head.encode("latin-1") + reply.body)
        if close:
            t.close()


def serve(
    witness: Witness,
    store: WitnessStore,
    *,
    host: str,
    port: int,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (uses uvloop when it is installed)."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        runner: Callable[..., None] = asyncio.run
    else:
        runner = uvloop.run
    app = WitnessServer(witness, store)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Http(app), host, port, backlog=1024)
        stop = loop.create_future()

        def halt() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, halt)
        if ready is not None:
            sock = server.sockets[0].getsockname()
            ready(sock[0], sock[1])
        async with server:
            await stop

    try:
        runner(main())
    finally:
        app.close()
