"""The HTTP application, built by a factory so that nothing runs at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from custodes import __version__
from custodes.errors import CustodesError, PushbackError, http_status, public_message
from custodes.ledger.instance import Instance
from custodes.web import auth
from custodes.web.routes import access as access_routes
from custodes.web.routes import clips as clip_routes
from custodes.web.routes import custody as custody_routes
from custodes.web.routes import dashboard as dashboard_routes
from custodes.web.routes import fleet as fleet_routes
from custodes.web.routes import internal as internal_routes
from custodes.web.routes import live as live_routes
from custodes.web.routes import log as log_routes
from custodes.web.routes import receipts as receipt_routes
from custodes.web.security import Guard, Policy, default_hosts
from custodes.web.service import LedgerService

__all__ = ["Settings", "create_app"]


_log = logging.getLogger("custodes.web")

# Swagger UI from the npm package swagger-ui-dist, copied into static/vendor at set-up
# (scripts/web-assets.sh); started by a script file, since the CSP allows no inline script.
_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>custodes API</title>
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
<link rel="icon" href="/static/vendor/swagger-ui/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""
_DOCS_JS = """window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"
});
"""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How the app runs.

    ``trusted_hosts``: the host names the ``Host`` header may carry (None: the
    loopback names and ``public_url``'s host).  ``max_body_bytes``: the largest
    request body of any route; ``max_upload_bytes``: of a recorder's archive
    upload (``PUT /fleet/archive``), read only after its token is checked.
    """

    data: Path
    integrate_interval: float = 1.0
    public_url: str = "http://127.0.0.1:8000"
    trusted_hosts: tuple[str, ...] | None = None
    max_body_bytes: int = 32 << 20
    max_upload_bytes: int = 4 << 30


def create_app(settings: Settings, *, service: LedgerService | None = None) -> FastAPI:
    """Build the app.  Opens the log as its writer unless ``service`` is given."""
    svc = service or LedgerService(
        Instance.load(settings.data), interval=settings.integrate_interval
    )

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
        docs_url=None,  # served below from /static/vendor, not from a CDN
        redoc_url=None,
    )
    app.state.ledger = svc
    app.state.settings = settings

    def credentials(auth: str | None, cookie: str | None, scope: dict[str, Any]) -> bool:
        ids = app.state.identities
        if auth is not None:
            user = ids.by_token(auth[7:].strip())
            if user is not None:
                scope["custodes_user"] = user
                return True
            fleet = getattr(app.state, "fleet", None)
            return fleet is not None and fleet.agent("Bearer " + auth[7:].strip()) is not None
        if cookie is not None:
            user = ids.session_user(cookie)
            if user is not None:
                scope["custodes_user"] = user
                return True
        return False

    hosts = settings.trusted_hosts or default_hosts(settings.public_url)
    policy = Policy(
        hosts=tuple(h.lower() for h in hosts),
        public_url=settings.public_url,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        tile_url=dashboard_routes.tile_settings(settings.data)["url"],
    )
    app.add_middleware(Guard, policy=policy, credentials=credentials)

    roots = {str(settings.data), str(settings.data.absolute()), str(settings.data.resolve())}

    @app.exception_handler(CustodesError)
    async def _custodes_error(request: Request, err: CustodesError) -> JSONResponse:
        headers = {}
        if isinstance(err, PushbackError):
            headers["Retry-After"] = str(max(1, round(err.retry_after)))
        status = http_status(err)
        message = public_message(err, roots)
        if message != str(err) or status >= 500:  # the server's log keeps the paths
            _log.warning("%s %s: %s", request.method, request.url.path, err)
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    app.include_router(log_routes.router)
    app.include_router(fleet_routes.router)
    fleet_routes.install(app)
    auth.install(app)
    access_routes.install(app)
    app.include_router(access_routes.router)
    app.include_router(clip_routes.router)
    app.include_router(receipt_routes.router)
    app.include_router(internal_routes.router)
    app.include_router(custody_routes.router)
    app.include_router(live_routes.router)
    app.include_router(live_routes.public_router)
    app.include_router(live_routes.staff_router)
    dashboard_routes.install(app)  # the public pages, /static and / (the map)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_DOCS_HTML)

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(_DOCS_JS, media_type="text/javascript")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
