"""Districts and places imported into a running server: for scripts and for operators.

``POST /geo/districts/import`` and ``POST /geo/places/import`` take a GeoJSON
FeatureCollection (what ``custodes geo districts|places import --server URL``
sends) from an operator: a fleet agent with the operator role, as for
``/fleet/cameras/import``, or a user whose role is operator.  ``/app/geo`` is the
same from the browser, a file upload.  Both use the CLI's parse and import
code, so the running server's log gets the ``district.*``/``place.*`` entries,
never the files behind its back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import User
from custodes.errors import CustodesError, FormatError, StoreUnavailableError
from custodes.ledger.log import Log
from custodes.web.auth import current_user, render
from custodes.web.routes.internal_common import OPERATOR
from custodes.web.routes.internal_common import failure as _failure
from custodes.web.routes.internal_common import ledger_of as _ledger
from custodes.web.routes.internal_common import run as _run
from custodes.web.routes.internal_common import same_origin as _same_origin

__all__ = ["router"]

router = APIRouter()
KINDS = ("districts", "places")


def _importer(kind: str, raw: bytes, remove_missing: bool) -> Callable[[Log], dict[str, Any]]:
    """Parse ``raw`` now (a bad file is refused before the log is touched); the import."""
    from custodes.geo.imports import parse_districts, parse_places
    from custodes.geo.ops import import_districts, import_places

    if kind == "districts":
        districts = parse_districts(raw)
        return lambda log: import_districts(log, districts, remove_missing=remove_missing)
    places = parse_places(raw)
    return lambda log: import_places(log, places, remove_missing=remove_missing)


async def _operator(request: Request) -> JSONResponse | None:
    """None for an operator (user or fleet agent); otherwise the refusal to send."""
    user = current_user(request)
    if user is not None and user.role == "operator":
        return None
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is None:
        raise StoreUnavailableError("the fleet registry is not open on this server")
    from custodes.web.routes import fleet as fleet_routes

    return await fleet_routes._refused(request, fleet, ("operator",))


def _api(kind: str) -> Callable[..., Any]:
    async def route(request: Request, remove_missing: bool = False) -> Any:
        refused = await _operator(request)
        if refused is not None:
            return refused
        raw = await request.body()
        work = await run_in_threadpool(_importer, kind, raw, remove_missing)
        ledger = _ledger(request)
        return await run_in_threadpool(ledger.write, work)

    route.__doc__ = (
        f"Define {kind} from a GeoJSON FeatureCollection (operator); the report of"
        f" ``geo {kind} import --json``."
    )
    return route


for _kind in KINDS:
    router.add_api_route(
        f"/geo/{_kind}/import",
        _api(_kind),
        methods=["POST"],
        tags=["geo"],
        summary=f"Import {_kind} (GeoJSON; operator token)",
    )


@router.get("/app/geo", response_class=HTMLResponse, include_in_schema=False)
async def geo_page(request: Request, user: Annotated[User, Depends(OPERATOR)]) -> HTMLResponse:
    return render(request, "internal/geo.html", report=None, kind=None)


@router.post("/app/geo/{kind}", include_in_schema=False)
async def geo_upload(
    request: Request, kind: str, user: Annotated[User, Depends(OPERATOR)]
) -> Response:
    """An uploaded districts or places file, imported and logged; the report shown."""
    _same_origin(request)
    form = await request.form()
    upload = form.get("file")
    try:
        if kind not in KINDS:
            raise FormatError(f"one imports districts or places, not {kind[:40]}")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise FormatError(f"choose a GeoJSON file of {kind} to import")
        raw = await upload.read()
        work = await _run(lambda: _importer(kind, raw, form.get("remove_missing") == "on"))
        report = await _run(lambda: _ledger(request).write(work))
    except CustodesError as err:
        return _failure(request, err, "/app/geo")
    return render(request, "internal/geo.html", report=report, kind=kind)
