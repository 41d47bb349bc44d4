"""The log over HTTP: C2SP tlog-tiles paths, plus JSON proofs for light clients.

``/log/checkpoint`` and ``/log/tile/...`` follow tlog-tiles, so any standard
client can read the log.  Tiles never change once they exist (a partial tile
of width W holds the same hashes for as long as it is served), so full tiles
are cached for a year as immutable and partial ones for a day; the checkpoint
is never cached.  Entry bundles are sent gzip-compressed to a client whose
``Accept-Encoding`` allows it, as tlog-tiles recommends.  Tiles and bundles
once read are kept in a bounded memory cache (:mod:`custodes.web.tile_cache`),
bundles already compressed, and sent from it without a thread hand-off.  Every read-only log
path answers ``HEAD`` too and carries ``Access-Control-Allow-Origin: *``, so
a verifier running in a browser on another site can read the log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from custodes.client.http import accepts_gzip
from custodes.errors import NotFoundError
from custodes.tlog import ENTRIES_LEVEL, TILE_WIDTH, parse_tile_path
from custodes.web.tile_cache import TileCache, compress_bundle, inflate

router = APIRouter(prefix="/log", tags=["log"])

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=86400"
"""A partial tile's hashes cannot change; only the full tile may replace it later."""
CHECKPOINT = "no-cache"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Encoding"}
F = TypeVar("F", bound=Callable[..., Any])


def tile_cache_control(width: int) -> str:
    """The Cache-Control of a tile or bundle of ``width`` (shared with the S3 copy)."""
    return IMMUTABLE if width == TILE_WIDTH else PARTIAL


def _read(path: str, **kw: Any) -> Callable[[F], F]:
    """A read-only log path: GET (in the API's schema) and HEAD (not listed, so the
    schema has one operation per path)."""

    def register(fn: F) -> F:
        router.add_api_route(path, fn, methods=["GET"], **kw)
        router.add_api_route(path, fn, methods=["HEAD"], include_in_schema=False, **kw)
        return fn

    return register


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


@_read(
    "/checkpoint",
    response_class=Response,
    summary="The latest signed checkpoint",
)
def checkpoint(request: Request) -> Response:
    note = request.app.state.ledger.public_checkpoint()
    return Response(
        note,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": CHECKPOINT, **CORS},
    )


def _tile_cache(app: Any) -> TileCache:
    cache: TileCache | None = getattr(app.state, "tile_cache", None)
    if cache is None:
        cache = app.state.tile_cache = TileCache()
    return cache


def _load(ledger: Any, level: int, index: int, width: int) -> bytes:
    """A tile as the cache keeps it: hashes, or an entry bundle gzip-compressed."""
    if level == ENTRIES_LEVEL:
        raw: bytes = ledger.read(lambda r: r.entry_bundle(index, width))
        return compress_bundle(raw)
    data: bytes = ledger.read(lambda r: r.hash_tile(level, index, width))
    return data


async def _tile_answer(app: Any, path: str, accept: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``tile/<path>``; CustodesError (400, 404) when there is none.

    In the event loop: a tile read before is sent from memory, with no thread
    hand-off; only the first read of each goes to the store, in a thread.
    """
    t = parse_tile_path("tile/" + path)
    headers = {"Cache-Control": tile_cache_control(t.width), **CORS}
    cache = _tile_cache(app)
    key = (t.level, t.index, t.width)
    data = cache.get(key)
    if data is None:
        data = await run_in_threadpool(_load, app.state.ledger, *key)
        cache.put(key, data)
    if t.level == ENTRIES_LEVEL:
        headers["Vary"] = "Accept-Encoding"
        if accepts_gzip(accept):
            headers["Content-Encoding"] = "gzip"
        else:
            data = inflate(data)
    return data, headers


class _TileRoute:
    """``GET``/``HEAD /log/tile/...`` as a bare ASGI app: the hot path of every verifier.

    It answers exactly as :func:`tile` below (which stays registered after it, so
    that the API's schema documents the path) without FastAPI's request model and
    dependency resolution, which cost more than the answer itself.  Errors are
    raised as CustodesError and answered by the app's handler, as for any route.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        accept = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value.decode("latin-1")
        data, headers = await _tile_answer(scope["app"], scope["path_params"]["path"], accept)
        raw = [(b"content-type", b"application/octet-stream")]
        raw.append((b"content-length", str(len(data)).encode()))
        raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": data})


router.routes.append(Route("/log/tile/{path:path}", _TileRoute(), methods=["GET", "HEAD"]))


@_read(
    "/tile/{path:path}",
    response_class=Response,
    summary="A hash tile or entry bundle",
)
async def tile(path: str, request: Request) -> Response:
    data, headers = await _tile_answer(request.app, path, request.headers.get("accept-encoding"))
    return Response(data, media_type="application/octet-stream", headers=headers)


@_read("/proof/inclusion", summary="An RFC 9162 inclusion proof")
def inclusion(
    request: Request,
    response: Response,
    index: int = Query(ge=0, le=2**63 - 1),
    size: int = Query(ge=1, le=2**63 - 1),
) -> dict[str, object]:
    proof = request.app.state.ledger.read(lambda r: r.inclusion_proof(index, size))
    response.headers.update(CORS)
    return {"index": index, "size": size, "proof": _b64(proof)}


@_read("/proof/consistency", summary="An RFC 9162 consistency proof")
def consistency(
    request: Request,
    response: Response,
    old: int = Query(ge=1, le=2**63 - 1),
    new: int = Query(ge=1, le=2**63 - 1),
) -> dict[str, object]:
    proof = request.app.state.ledger.read(lambda r: r.consistency_proof(old, new))
    response.headers.update(CORS)
    return {"old_size": old, "new_size": new, "proof": _b64(proof)}


@_read("/entry/{index}", summary="One integrated entry, as its canonical JSON")
def entry(index: int, request: Request) -> Response:
    def read(r: object) -> bytes:
        size = r.size()  # type: ignore[attr-defined]
        if not 0 <= index < size:
            raise NotFoundError(f"index {index} is not in the log of size {size}")
        data: bytes = r.store.read_entries(index, index + 1)[0]  # type: ignore[attr-defined]
        return data

    data = request.app.state.ledger.read(read)
    try:
        json.loads(data)
    except ValueError:
        return Response(data, media_type="application/octet-stream", headers=CORS)
    return Response(data, media_type="application/json", headers=CORS)
