"""The HTTP application, built by a factory so that nothing runs at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from custodes import __version__
from custodes.errors import CustodesError, PushbackError, http_status
from custodes.ledger.instance import Instance
from custodes.web import auth
from custodes.web.routes import access as access_routes
from custodes.web.routes import dashboard as dashboard_routes
from custodes.web.routes import fleet as fleet_routes
from custodes.web.routes import internal as internal_routes
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
    auth.install(app)
    access_routes.install(app)
    app.include_router(access_routes.router)
    app.include_router(internal_routes.router)
    dashboard_routes.install(app)  # the public pages, /static and / (the map)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
