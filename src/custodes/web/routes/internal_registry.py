"""The operators' registry pages: the cameras, each one's form, and its changes (logged)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from custodes.access.identity import User
from custodes.access.service import Forbidden
from custodes.errors import CustodesError, FormatError, NotFoundError, StoreUnavailableError
from custodes.web.auth import render
from custodes.web.routes.internal_common import (
    OPERATOR,
)
from custodes.web.routes.internal_common import failure as _failure
from custodes.web.routes.internal_common import float_field as _float_field
from custodes.web.routes.internal_common import run as _run
from custodes.web.routes.internal_common import same_origin as _same_origin

__all__ = ["router"]

router = APIRouter()

# -- operators: the registry -------------------------------------------------------------

EDITABLE = (
    ("name", "Name", "text"),
    ("lat", "Latitude", "number"),
    ("lon", "Longitude", "number"),
    ("direction", "Direction (degrees, 0 = north)", "number"),
    ("field_of_view", "Field of view (degrees)", "number"),
    ("type", "Type (fixed, dome, panning)", "text"),
    ("mount", "Mount", "text"),
    ("district", "District", "text"),
    ("zone", "Zone or camera group", "text"),
    ("operator", "Operator", "text"),
    ("legal_basis", "Legal basis", "text"),
)


def _fleet(request: Request) -> Any:
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is None:
        raise StoreUnavailableError("the fleet registry is not open on this server")
    return fleet


def _covers(user: User, record: dict[str, Any]) -> bool:
    """Whether the operator's scope covers a camera (its district, its zone as a group)."""
    zone = record.get("zone")
    return user.scope.covers(record.get("district"), (zone,) if zone else ())


@router.get("/app/registry", response_class=HTMLResponse, include_in_schema=False)
async def registry(
    request: Request, user: Annotated[User, Depends(OPERATOR)], changed: str = ""
) -> HTMLResponse:
    fleet = _fleet(request)
    rows = await _run(lambda: fleet.svc.read(lambda _log: fleet.db.cameras()))
    for row in rows:
        row["editable"] = _covers(user, row["camera"])
    return render(request, "internal/registry.html", rows=rows, changed=changed[:128])


@router.get("/app/registry/{camera}", response_class=HTMLResponse, include_in_schema=False)
async def camera_page(
    request: Request, camera: str, user: Annotated[User, Depends(OPERATOR)]
) -> HTMLResponse:
    fleet = _fleet(request)
    found = await _run(lambda: fleet.svc.read(lambda _log: fleet.db.camera(camera)))
    if found is None or found[2] is not None:
        return _failure(request, NotFoundError(f"there is no active camera {camera[:128]}"), "/")
    if not _covers(user, found[0].to_record()):
        return _failure(request, Forbidden(f"camera {camera} is outside your scope"), "/app")
    return render(
        request,
        "internal/camera.html",
        camera=found[0].to_record(),
        fields=EDITABLE,
        error=None,
    )


@router.post("/app/registry/{camera}", include_in_schema=False)
async def edit_camera(
    request: Request, camera: str, user: Annotated[User, Depends(OPERATOR)]
) -> Response:
    """Change a camera through the registry's import path, which logs ``camera.changed``."""
    from custodes.fleet.model import Camera
    from custodes.fleet.ops import import_cameras

    _same_origin(request)
    fleet = _fleet(request)
    raw = await request.form()
    form = {k: str(v)[:500].strip() for k, v in raw.items() if isinstance(v, str)}
    found = await _run(lambda: fleet.svc.read(lambda _log: fleet.db.camera(camera)))
    if found is None or found[2] is not None:
        return _failure(request, NotFoundError(f"there is no active camera {camera[:128]}"), "/")
    record = found[0].to_record()
    if not _covers(user, record):
        return _failure(request, Forbidden(f"camera {camera} is outside your scope"), "/app")
    try:
        for key, label, kind in EDITABLE:
            value = form.get(key, "")
            if not value:
                if key in ("lat", "lon"):
                    raise FormatError(f"the {label.lower()} is required")
                record.pop(key, None)
            else:
                record[key] = _float_field(value, label.lower()) if kind == "number" else value
        cam = Camera.from_record(record)
        if not _covers(user, record):
            raise Forbidden("the changed camera would be outside your scope")
        report = await _run(
            lambda: fleet.svc.write(lambda log: import_cameras(log, fleet.db, [cam]))
        )
    except CustodesError as err:
        return render(
            request,
            "internal/camera.html",
            status_code=403 if isinstance(err, Forbidden) else 400,
            camera={**record, "id": camera},
            fields=EDITABLE,
            error=str(err),
        )
    done = camera if report["changed"] else ""
    return RedirectResponse(f"/app/registry?changed={quote(done)}", status_code=303)
