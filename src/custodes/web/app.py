"""The HTTP application, built by a factory so that nothing runs at import time."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from custodes import __version__
from custodes.errors import CustodesError, PushbackError, http_status
from custodes.ledger.instance import Instance
from custodes.tlog import parse_checkpoint, parse_note
from custodes.web.routes import fleet as fleet_routes
from custodes.web.routes import log as log_routes
from custodes.web.service import LedgerService

__all__ = ["Settings", "create_app"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    data: Path
    integrate_interval: float = 1.0
    public_url: str = "http://127.0.0.1:8000"


def create_app(settings: Settings, *, service: LedgerService | None = None) -> FastAPI:
    """Build the app.  Opens the log as its writer unless ``service`` is given."""
    svc = service or LedgerService(Instance.load(settings.data), interval=settings.integrate_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(
        title="custodes",
        version=__version__,
        summary="An oversight ledger for city camera networks.",
        lifespan=lifespan,
    )
    app.state.ledger = svc
    app.state.settings = settings

    @app.exception_handler(CustodesError)
    async def _custodes_error(request: Request, err: CustodesError) -> JSONResponse:
        headers = {}
        if isinstance(err, PushbackError):
            headers["Retry-After"] = str(max(1, round(err.retry_after)))
        return JSONResponse({"error": str(err)}, status_code=http_status(err), headers=headers)

    app.include_router(log_routes.router)
    app.include_router(fleet_routes.router)
    fleet_routes.install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        note = svc.read(lambda r: r.checkpoint())
        cp = parse_checkpoint(parse_note(note).text)
        vkey = svc.instance.verifier_key
        base = settings.public_url.rstrip("/")
        return _INDEX.format(
            origin=html.escape(cp.origin),
            size=cp.size,
            checkpoint=html.escape(note.decode()),
            vkey=html.escape(vkey),
            base=html.escape(base),
        )

    return app


_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>custodes log {origin}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#111}}
pre{{background:#f3f3f3;padding:1rem;overflow-x:auto}}a{{color:#0645ad}}</style></head>
<body><main>
<h1>custodes: who watches the watchers</h1>
<p>This is the public, append-only log <strong>{origin}</strong>. It holds <strong>{size}</strong> entries.</p>
<h2>Latest signed checkpoint</h2>
<pre>{checkpoint}</pre>
<h2>Verify it yourself</h2>
<p>The log's verifier key:</p><pre>{vkey}</pre>
<pre>custodes verify --vkey '{vkey}' --source {base}/log --state my-view.checkpoint</pre>
<p>Any C2SP tlog-tiles client can read the same data:
<a href="/log/checkpoint">/log/checkpoint</a>, <code>/log/tile/&lt;L&gt;/&lt;N&gt;</code>,
<code>/log/tile/entries/&lt;N&gt;</code>. Proofs as JSON:
<a href="/log/proof/inclusion?index=0&amp;size={size}">/log/proof/inclusion</a>,
<code>/log/proof/consistency?old=&amp;new=</code>. API reference: <a href="/docs">/docs</a>.</p>
</main></body></html>
"""
