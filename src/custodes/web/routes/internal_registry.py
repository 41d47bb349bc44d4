"""The operators' registry pages: the cameras, each one's form, and its changes (logged)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from custodes.access.identity import User
from custodes.access.service import Forbidden
from custodes.errors import (
    ConflictError,
    CustodesError,
    FormatError,
    NotFoundError,
    StoreUnavailableError,
    http_status,
)
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


PAGE_SIZE = 50
CAPABILITIES = (
    ("recording", "Records video"),
    ("audio", "Records sound"),
    ("ptz", "Pan, tilt and zoom"),
    ("face_recognition_capable", "Sold as face-recognition capable (a fact; custodes never"
     " recognises faces)"),
    ("plate_reading_capable", "Number-plate camera, ALPR (a fact; custodes never reads plates)"),
)  # fmt: skip


def _matches(row: dict[str, Any], words: list[str]) -> bool:
    c = row["camera"]
    hay = " ".join(
        str(c.get(k) or "") for k in ("id", "name", "district", "zone", "operator", "type")
    )
    hay = (hay + " " + str(row.get("status") or "")).lower()
    return all(w in hay for w in words)


def _page_link(q: str, page: int) -> str:
    return "/app/registry?" + urlencode({k: v for k, v in (("q", q), ("page", page)) if v})


@router.get("/app/registry", response_class=HTMLResponse, include_in_schema=False)
async def registry(
    request: Request,
    user: Annotated[User, Depends(OPERATOR)],
    changed: str = "",
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    done: Annotated[str, Query(max_length=300)] = "",
) -> HTMLResponse:
    """The registry, searched (every word in id, name, district, zone, operator, type or
    status) and shown a page of :data:`PAGE_SIZE` at a time."""
    fleet = _fleet(request)
    rows = await _run(lambda: fleet.svc.read(lambda _log: fleet.db.cameras()))
    words = [w for w in q.lower().split() if w]
    found = [r for r in rows if _matches(r, words)] if words else rows
    pages = max(1, (len(found) + PAGE_SIZE - 1) // PAGE_SIZE)
    page = min(page, pages)
    shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    for row in shown:
        row["editable"] = _covers(user, row["camera"])
    return render(
        request,
        "internal/registry.html",
        rows=shown,
        changed=changed[:128],
        done=done,
        q=q.strip(),
        page=page,
        pages=pages,
        total=len(found),
        first=(page - 1) * PAGE_SIZE + 1 if shown else 0,
        last=(page - 1) * PAGE_SIZE + len(shown),
        prev_link=_page_link(q.strip(), page - 1) if page > 1 else None,
        next_link=_page_link(q.strip(), page + 1) if page < pages else None,
        capabilities=CAPABILITIES,
    )


def _record_from(form: dict[str, str], record: dict[str, Any]) -> dict[str, Any]:
    """The form's fields and capability boxes over ``record`` (a copy)."""
    record = dict(record)
    for key, label, kind in EDITABLE:
        value = form.get(key, "")
        if not value:
            if key in ("lat", "lon"):
                raise FormatError(f"the {label.lower()} is required")
            record.pop(key, None)
        else:
            record[key] = _float_field(value, label.lower()) if kind == "number" else value
    if form.get("caps") == "1":  # the form showed the capability boxes
        record["capabilities"] = {k: form.get(f"cap-{k}") == "on" for k, _ in CAPABILITIES}
    return record


def _camera_form(
    request: Request, camera: dict[str, Any], error: str | None, *, new: bool, status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "internal/camera.html",
        status_code=status,
        camera=camera,
        fields=EDITABLE,
        capabilities=CAPABILITIES,
        error=error,
        new=new,
    )


@router.get("/app/registry/new", response_class=HTMLResponse, include_in_schema=False)
async def new_camera_page(
    request: Request, user: Annotated[User, Depends(OPERATOR)]
) -> HTMLResponse:
    return _camera_form(request, {"capabilities": {"recording": True}}, None, new=True)


@router.post("/app/registry/new", include_in_schema=False)
async def add_camera(request: Request, user: Annotated[User, Depends(OPERATOR)]) -> Response:
    """Register a camera (``camera.registered``); an id in use is refused."""
    from custodes.fleet.model import Camera
    from custodes.fleet.ops import import_cameras

    _same_origin(request)
    fleet = _fleet(request)
    raw = await request.form()
    form = {k: str(v)[:500].strip() for k, v in raw.items() if isinstance(v, str)}
    record: dict[str, Any] = {"id": form.get("id", "")}
    try:
        if not record["id"]:
            raise FormatError("the camera id is required")
        record = _record_from(form, record)
        cam = Camera.from_record(record)
        if not _covers(user, record):
            raise Forbidden("the new camera would be outside your scope")

        def work(log: Any) -> dict[str, Any]:
            if fleet.db.camera(cam.id) is not None:
                raise ConflictError(f"camera {cam.id} is already registered; edit it instead")
            result: dict[str, Any] = import_cameras(log, fleet.db, [cam])
            return result

        await _run(lambda: fleet.svc.write(work))
    except CustodesError as err:
        status = 403 if isinstance(err, Forbidden) else http_status(err)
        return _camera_form(request, record, str(err), new=True, status=status)
    done = f"Camera {cam.id} was registered; the registration is in the public log."
    return RedirectResponse("/app/registry?" + urlencode({"done": done}), status_code=303)


@router.post("/app/registry/import", include_in_schema=False)
async def import_file(request: Request, user: Annotated[User, Depends(OPERATOR)]) -> Response:
    """Import a GeoJSON or Overpass JSON file from the browser, by the CLI's import code."""
    from custodes.fleet.imports import parse_cameras
    from custodes.fleet.ops import import_cameras

    _same_origin(request)
    fleet = _fleet(request)
    form = await request.form()
    upload = form.get("file")
    try:
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise FormatError("choose a GeoJSON or Overpass JSON file to import")
        raw = await upload.read()
        parsed = await _run(lambda: parse_cameras(raw))
        if not parsed.cameras:
            total = len(parsed.skipped)
            raise FormatError(
                f"nothing was imported: all {total} elements were skipped"
                if total
                else "nothing was imported: the file holds no cameras"
            )
        outside = [c.id for c in parsed.cameras if not _covers(user, c.to_record())]
        if outside:
            raise Forbidden(
                f"{len(outside)} camera{'s' if len(outside) != 1 else ''} of the file"
                f" {'are' if len(outside) != 1 else 'is'} outside your scope"
                f" ({', '.join(outside[:5])}); nothing was imported"
            )
        report = await _run(
            lambda: fleet.svc.write(lambda log: import_cameras(log, fleet.db, parsed.cameras))
        )
    except CustodesError as err:
        return _failure(request, err, "/app/registry")
    return render(
        request,
        "internal/imported.html",
        report=report,
        skipped=parsed.skipped,
        warnings=parsed.warnings,
        filename=str(upload.filename)[:200],
    )


@router.post("/app/registry/{camera}/retire", include_in_schema=False)
async def retire_camera(
    request: Request,
    camera: str,
    user: Annotated[User, Depends(OPERATOR)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Retire a camera (``camera.retired``, with the reason)."""
    from custodes.fleet.ops import retire_cameras

    _same_origin(request)
    fleet = _fleet(request)
    back = f"/app/registry/{quote(camera)}"
    try:
        found = await _run(lambda: fleet.svc.read(lambda _log: fleet.db.camera(camera)))
        if found is None or found[2] is not None:
            raise NotFoundError(f"there is no active camera {camera[:128]}")
        if not _covers(user, found[0].to_record()):
            raise Forbidden(f"camera {camera} is outside your scope")
        if not reason.strip():
            raise FormatError("say why the camera is retired: the reason is published")
        await _run(
            lambda: fleet.svc.write(
                lambda log: retire_cameras(log, fleet.db, [camera], reason.strip())
            )
        )
    except CustodesError as err:
        return _failure(request, err, back)
    done = f"Camera {camera} was retired; the retirement is in the public log."
    return RedirectResponse("/app/registry?" + urlencode({"done": done}), status_code=303)


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
    return _camera_form(request, found[0].to_record(), None, new=False)


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
        record = _record_from(form, record)
        cam = Camera.from_record(record)
        if not _covers(user, record):
            raise Forbidden("the changed camera would be outside your scope")
        report = await _run(
            lambda: fleet.svc.write(lambda log: import_cameras(log, fleet.db, [cam]))
        )
    except CustodesError as err:
        status = 403 if isinstance(err, Forbidden) else 400
        return _camera_form(request, {**record, "id": camera}, str(err), new=False, status=status)
    done = camera if report["changed"] else ""
    return RedirectResponse(f"/app/registry?changed={quote(done)}", status_code=303)
