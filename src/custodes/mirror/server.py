"""``mirror serve``: follow an origin log in the background and serve the copy read-only.

The copy is served as tlog-tiles twice over: at the mirror's monitoring
prefix ``/<origin hash>/`` (tlog-mirror), and at the root, so that a client
that read ``http://origin/log`` reads ``http://mirror:port`` the same way.
``checkpoint`` is the mirror checkpoint, carrying the mirror's cosignature.
Tiles never change once written; entry bundles go gzip-compressed to a
client that accepts it.  Each file is read once and then sent from a bounded
memory cache (:class:`~custodes.web.tile_cache.TileCache`).  The log is read
with ``GET`` and ``HEAD``, and it goes on being served while the origin is
down.  The submission prefix is the root too: ``POST /add-checkpoint`` and
``POST /add-entries`` (tlog-mirror, see :mod:`.push`) let anyone holding the
log push it, so the mirror goes on growing and cosigning while the origin
cannot be reached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from custodes.client.http import accepts_gzip
from custodes.client.source import HttpSource
from custodes.errors import CustodesError, FormatError
from custodes.mirror.follow import Mirror, origin_hash
from custodes.mirror.push import add_checkpoint, add_entries
from custodes.tlog import TILE_WIDTH, parse_tile_path
from custodes.web.tile_cache import TileCache, compress_bundle, inflate
from custodes.witness.core import MAX_REQUEST, Reply

__all__ = ["Follower", "create_app", "serve"]

_log = logging.getLogger("custodes.mirror")

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=86400"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Encoding"}


class Follower:
    """Runs :meth:`Mirror.update` against the origin every ``interval_s`` in a thread."""

    def __init__(self, mirror: Mirror, source_url: str, *, interval_s: float = 1.0) -> None:
        self.mirror = mirror
        self.source = HttpSource(source_url)
        self.interval_s = interval_s
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mirror-follow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.source.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.mirror.update(self.source)
                self.last_error = None
                if done.new_size != done.old_size:
                    _log.info(
                        "mirrored %s: size %d -> %d (%d objects, %.2f s)",
                        self.mirror.root,
                        done.old_size,
                        done.new_size,
                        done.objects,
                        done.seconds,
                    )
                    continue  # there may be more already
            except CustodesError as err:
                if str(err) != self.last_error:
                    _log.warning("mirror update failed: %s", err)
                self.last_error = str(err)
            except Exception as err:  # noqa: BLE001 - the mirror keeps serving whatever happens
                _log.exception("mirror update failed")
                self.last_error = str(err)
            self._stop.wait(self.interval_s)


def create_app(mirror: Mirror, origin: str) -> Any:
    """The read-only Starlette app serving ``mirror`` for the log ``origin``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    prefix = origin_hash(origin)
    cache = TileCache()  # what the mirror holds never changes: read each file once

    def _missing(what: str) -> Response:
        return PlainTextResponse(f"{what}\n", status_code=404, headers=CORS)

    async def checkpoint(request: Request) -> Response:
        note = mirror.served_checkpoint()
        if note is None:
            return _missing("The mirror has not copied a checkpoint yet.")
        return Response(
            note,
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-cache", **CORS},
        )

    async def tile(request: Request) -> Response:
        path = "tile/" + request.path_params["path"]
        try:
            t = parse_tile_path(path)
        except FormatError as err:
            return _missing(str(err))
        headers = {"Cache-Control": IMMUTABLE if t.width == TILE_WIDTH else PARTIAL, **CORS}
        key = (t.level, t.index, t.width)
        data = cache.get(key)
        if data is None:
            try:
                data = _stored(path, t.level < 0)
            except (FileNotFoundError, NotADirectoryError):
                return _missing(f"The mirror holds no {path}.")
            cache.put(key, data)
        if t.level < 0:
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request.headers.get("accept-encoding")):
                headers["Content-Encoding"] = "gzip"
            else:
                data = inflate(data)
        return Response(data, media_type="application/octet-stream", headers=headers)

    def _stored(path: str, bundle: bool) -> bytes:
        """A tile's bytes, or a bundle gzip-compressed, from the mirror's files."""
        if not bundle:
            return (mirror.root / path).read_bytes()
        try:
            return (mirror.root / (path + ".gz")).read_bytes()
        except FileNotFoundError:  # copied before bundles were stored compressed
            return compress_bundle((mirror.root / path).read_bytes())

    async def health(request: Request) -> Response:
        return PlainTextResponse(f"{mirror.size}\n")

    def _answer(reply: Reply) -> Response:
        headers = {
            "Content-Type": reply.content_type,  # exactly, as the spec names it (no charset)
            "Accept-Encoding": "gzip, identity",
            "Cache-Control": "no-store",
        }
        return Response(reply.body, status_code=reply.status, headers=headers)

    async def push_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST:
                return _answer(
                    Reply.refuse(400, f"The request body is larger than {MAX_REQUEST} bytes.")
                )
        return _answer(await run_in_threadpool(add_checkpoint, mirror, bytes(body)))

    async def push_entries(request: Request) -> Response:
        ctype = request.headers.get("content-type", "application/octet-stream")
        if ctype.split(";")[0].strip().lower() != "application/octet-stream":
            return _answer(
                Reply.refuse(400, f"add-entries takes application/octet-stream, not {ctype}.")
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return _answer(
                Reply.refuse(415, f"add-entries takes gzip or identity bodies, not {encoding}.")
            )
        reply = await add_entries(
            mirror, request.stream().__aiter__(), gzipped=encoding == "gzip", run=run_in_threadpool
        )
        return _answer(reply)

    methods = ["GET", "HEAD"]
    routes = [
        Route("/healthz", health, methods=methods),
        Route("/add-checkpoint", push_checkpoint, methods=["POST"]),
        Route("/add-entries", push_entries, methods=["POST"]),
        Route("/checkpoint", checkpoint, methods=methods),
        Route("/tile/{path:path}", tile, methods=methods),
        Route(f"/{prefix}/checkpoint", checkpoint, methods=methods),
        Route(f"/{prefix}/tile/{{path:path}}", tile, methods=methods),
    ]
    return Starlette(routes=routes)


def serve(
    mirror: Mirror,
    source_url: str,
    origin: str,
    *,
    host: str,
    port: int,
    interval_s: float = 1.0,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Follow ``source_url`` and serve the mirror until SIGINT or SIGTERM."""
    import uvicorn

    follower = Follower(mirror, source_url, interval_s=interval_s)
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
    config = uvicorn.Config(
        create_app(mirror, origin),
        host=host,
        port=port,
        loop=loop,
        http=http,
        backlog=1024,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=60,
        server_header=False,
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if ready is not None and self.started:
                name = self.servers[0].sockets[0].getsockname()
                ready(name[0], name[1])

    follower.start()
    try:
        _Server(config).run()
    finally:
        follower.stop()


def mirror_dir(data: Path, origin: str) -> Path:
    """Where the copy of ``origin`` lives under the mirror's data directory."""
    return data / origin_hash(origin)
