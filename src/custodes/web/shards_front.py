"""One service in front of several shards: the signed index, and each shard's routes.

``custodes shards serve`` starts one ``custodes serve`` per shard (each its
own process and sequencer, on a loopback port of its own) and this small app
in front of them:

``GET /shards/index``               the signed index (text)
``/shards/<name>/<path>``           passed through to that shard's server, so
                                    ``/shards/north/log/checkpoint`` is the
                                    north shard's checkpoint

The front holds no state and signs nothing; it only routes, so a verifier
trusts the index key and each shard's key, never the front.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask

from custodes.ledger.shards import ShardSet

__all__ = ["create_front"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


def create_front(shards: ShardSet, ports: dict[str, int]) -> FastAPI:
    client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(title="custodes shards", lifespan=lifespan, openapi_url=None)

    @app.get("/shards/index", response_class=PlainTextResponse)
    def index() -> Response:
        return Response(shards.index_note(), media_type="text/plain; charset=utf-8")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/shards/{name}/{path:path}", methods=["GET", "POST", "PUT", "HEAD", "DELETE"])
    async def proxy(name: str, path: str, request: Request) -> Response:
        port = ports.get(name)
        if port is None:
            return JSONResponse({"error": f"there is no shard named {name!r}"}, 404)
        url = httpx.URL(f"http://127.0.0.1:{port}/{path}", query=request.url.query.encode())
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        upstream = client.build_request(
            request.method, url, headers=headers, content=request.stream()
        )
        try:
            resp = await client.send(upstream, stream=True)
        except httpx.HTTPError:
            return JSONResponse({"error": f"the shard {name} is not answering"}, 503)
        out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
        return StreamingResponse(
            resp.aiter_raw(),
            status_code=resp.status_code,
            headers=out,
            background=BackgroundTask(resp.aclose),
        )

    return app
