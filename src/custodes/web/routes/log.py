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
from custodes.tlog import (
    ENTRIES_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    format_entry_bundle,
    parse_tile_path,
    tile_path,
)
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


READ_AHEAD = 16
"""Full tiles (or bundles) of one level read from the store in one go on a miss: the one
asked for and those after it that the log has reached, since verifiers read in order and
one read of sixteen costs little more than one."""

_COMPRESS_LEVEL = 1
"""gzip level of bundles served: about 5 times cheaper than level 6, a few per cent larger."""


def _load(ledger: Any, tile: Tile) -> dict[str, bytes]:
    """``tile`` as the cache keeps it (hashes, or an entry bundle gzip-compressed), by its path
    under ``tile/``; when it is full, with the next full ones of its level the log has reached.

    Raises NotFoundError, as the store's reader does, when the log has not reached ``tile``.
    """
    level, index, width = tile.level, tile.index, tile.width

    def read(r: Any) -> list[bytes]:
        first: bytes = (
            r.entry_bundle(index, width)
            if level == ENTRIES_LEVEL
            else r.hash_tile(level, index, width)
        )
        if width != TILE_WIDTH:
            return [first]
        full = r.size() >> (TILE_HEIGHT * max(level, 0) + TILE_HEIGHT)  # full tiles there
        end = min(full, index + READ_AHEAD)
        if end <= index + 1:
            return [first]
        if level == ENTRIES_LEVEL:
            got = r.store.read_entries((index + 1) * TILE_WIDTH, end * TILE_WIDTH)
            rest = [
                format_entry_bundle(got[i : i + TILE_WIDTH]) for i in range(0, len(got), TILE_WIDTH)
            ]
        else:
            blobs = r.store.read_tiles([(level, i) for i in range(index + 1, end)])
            rest = []
            for blob in blobs:
                if blob is None or len(blob) < 32 * TILE_WIDTH:
                    break  # not stored (yet): read it when it is asked for
                rest.append(blob[: 32 * TILE_WIDTH])
        return [first, *rest]

    blobs = ledger.read(read)
    out: dict[str, bytes] = {}
    for i, blob in enumerate(blobs):  # compressed outside the store's lock
        key = tile_path(Tile(level=level, index=index + i, width=width))[5:]
        out[key] = compress_bundle(blob, _COMPRESS_LEVEL) if level == ENTRIES_LEVEL else blob
    return out


_ACCEPTS: dict[str, bool] = {}


def _gzip_ok(accept: str | None) -> bool:
    if accept is None:
        return False
    ok = _ACCEPTS.get(accept)
    if ok is None:
        ok = accepts_gzip(accept)
        if len(_ACCEPTS) < 256:  # the few values clients send, remembered
            _ACCEPTS[accept] = ok
    return ok


_Kind = tuple[dict[str, str], list[tuple[bytes, bytes]]]
_KINDS: dict[tuple[bool, bool, bool], _Kind] = {}


def _kind(entries: bool, full: bool, gzip: bool) -> _Kind:
    """The headers of a tile (``entries``: a bundle; ``full``: 256 wide), besides its length,
    as a dict and as ASGI pairs with its type: there are eight kinds, each built once."""
    key = (entries, full, gzip)
    kind = _KINDS.get(key)
    if kind is None:
        headers = {"Cache-Control": IMMUTABLE if full else PARTIAL, **CORS}
        if entries:
            headers["Vary"] = "Accept-Encoding"
            if gzip:
                headers["Content-Encoding"] = "gzip"
        raw = [(b"content-type", b"application/octet-stream")]
        raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
        kind = _KINDS[key] = (headers, raw)
    return kind


async def _tile_answer(app: Any, path: str, accept: str | None) -> tuple[bytes, _Kind]:
    """The body and headers of ``tile/<path>``; CustodesError (400, 404) when there is none.

    In the event loop: a tile read before is sent from memory, found by its path (only
    canonical paths are stored), with no thread hand-off; only the first read of each
    goes to the store, in a thread, with the tiles after it.
    """
    cache = _tile_cache(app)
    data = cache.get(path)
    if data is not None:  # a canonical path: its form says what it is
        entries, full = path.startswith("entries/"), ".p/" not in path
    else:
        t = parse_tile_path("tile/" + path)
        loaded = await run_in_threadpool(_load, app.state.ledger, t)
        for key, blob in loaded.items():
            cache.put(key, blob)
        data = loaded[tile_path(t)[5:]]
        entries, full = t.level == ENTRIES_LEVEL, t.width == TILE_WIDTH
    gzip = entries and _gzip_ok(accept)
    if entries and not gzip:
        data = inflate(data)
    return data, _kind(entries, full, gzip)


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
        data, (_, raw) = await _tile_answer(scope["app"], scope["path_params"]["path"], accept)
        headers = [*raw, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})


# First among the log's routes: every verifier's request is matched against it.
router.routes.insert(0, Route("/log/tile/{path:path}", _TileRoute(), methods=["GET", "HEAD"]))


@_read(
    "/tile/{path:path}",
    response_class=Response,
    summary="A hash tile or entry bundle",
)
async def tile(path: str, request: Request) -> Response:
    data, (headers, _) = await _tile_answer(
        request.app, path, request.headers.get("accept-encoding")
    )
    return Response(data, media_type="application/octet-stream", headers=dict(headers))


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
