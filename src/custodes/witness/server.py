"""``witness serve``: C2SP tlog-witness over uvicorn, with group commit.

uvicorn speaks HTTP/1.1 (keep-alive, chunked request bodies); the witness is
a plain ASGI application, :class:`WitnessServer`, with no framework between
the two, since each request is tiny and the witness must answer thousands a
second.  The event loop checks signatures and proofs
(:meth:`Witness.check`); each checked request becomes a compare-and-swap
that waits in a queue. One writer thread commits everything queued as one
SQLite transaction (one fsync for the batch) while the loop goes on checking
the next requests; only after the commit is the cosignature sent. Under load
that batches hundreds of requests into one fsync; alone, a request waits for
one commit.

Routes: ``POST /add-checkpoint``; ``GET /<origin hash>/checkpoint`` (the
spec's monitoring endpoint: the latest checkpoint cosigned for the log whose
origin has that lowercase hex SHA-256); ``GET /healthz``.  A body larger than
:data:`~custodes.witness.core.MAX_REQUEST` is refused with 413, at once when
``Content-Length`` says so and while it streams otherwise.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from custodes.witness.core import MAX_REQUEST, Reply, Witness
from custodes.witness.store import Advance, WitnessStore

__all__ = ["WitnessServer", "serve"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MONITOR = re.compile(r"/([0-9a-f]{64})/checkpoint")


class WitnessServer:
    """The witness as an ASGI application, with its group-committing writer."""

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
        read = method in ("GET", "HEAD")
        monitored = _MONITOR.fullmatch(path)
        if monitored is not None and read:
            return self.witness.monitored(monitored.group(1))
        if path == "/healthz" and read:
            return Reply(status=200, body=b"ok\n")
        if monitored is not None or path == "/healthz":
            return Reply.refuse(405, f"Use GET for {path}.")
        return Reply.refuse(404, f"No such resource {path}.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        reply = _too_large(scope["headers"])
        if reply is None:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            first: bytes = message.get("body", b"")
            body: bytes | Reply | None = first
            if message.get("more_body", False):  # chunked, or sent in pieces
                body = await _rest(first, receive)
            if body is None:
                return  # the client went away
            if isinstance(body, Reply):
                reply = body
            else:
                reply = await self.handle(scope["method"], scope["path"], body)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type.encode("latin-1")),
                    (b"content-length", str(len(reply.body)).encode("ascii")),
                ],
            }
        )
        body_out = b"" if scope["method"] == "HEAD" else reply.body
        await send({"type": "http.response.body", "body": body_out})

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _too_large(headers: list[tuple[bytes, bytes]]) -> Reply | None:
    """A refusal if ``Content-Length`` is malformed or above the limit."""
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                return Reply.refuse(400, "Malformed Content-Length.")
            if int(value) > MAX_REQUEST:
                return Reply.refuse(413, "The request body is too large.")
    return None


async def _rest(first: bytes, receive: Receive) -> bytes | Reply | None:
    """The whole body, from its first piece; None if the client disconnected."""
    chunks = [first]
    size = len(first)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST:
            return Reply.refuse(413, "The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def serve(
    witness: Witness,
    store: WitnessStore,
    *,
    host: str,
    port: int,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (with uvloop and httptools when they are installed)."""
    import uvicorn

    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    app = WitnessServer(witness, store)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        http=http,
        lifespan="off",
        log_config=None,
        access_log=False,
        backlog=1024,
        timeout_keep_alive=60,
        server_header=False,
        proxy_headers=False,  # nothing here reads the client address: one middleware fewer
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if ready is not None and self.started:
                name = self.servers[0].sockets[0].getsockname()
                ready(name[0], name[1])

    try:
        _Server(config).run()
    finally:
        app.close()
