"""Internal routes behind login: user administration (JSON) and the staff pages (HTML).

``/admin/users``: admins add, list, change and revoke users through a running server;
each change is logged (``user.added``, ``user.changed``, ``user.revoked``) before it
takes effect.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import ROLES, Identities, Scope, User
from custodes.access.sealing import check_commitment
from custodes.access.service import AccessService, Forbidden, RequestInput
from custodes.access.users import add_user, change_user, revoke_user
from custodes.errors import (
    CustodesError,
    FormatError,
    NotFoundError,
    StoreUnavailableError,
    http_status,
)
from custodes.fleet.model import parse_time
from custodes.web.auth import Refused, render, require, require_page
from custodes.web.service import LedgerService

__all__ = ["router"]

router = APIRouter()
T = TypeVar("T")
Admin = Annotated[User, Depends(require("admin"))]


class NewUser(BaseModel):
    name: str = Field(max_length=64, description="The account name (letters, digits, ._-@).")
    role: str = Field(description="operator, investigator, approver, judge, auditor or admin.")
    scope: str | None = Field(
        default=None,
        max_length=4000,
        description="district:ID,group:ID,...; empty or omitted for the whole network.",
    )
    password: str | None = Field(
        default=None, max_length=1024, description="For web login; omit for token-only use."
    )


class UserOut(BaseModel):
    name: str
    role: str
    scope: Any = Field(description='"all", or {"districts": [...], "groups": [...]}')
    pseudonym: str = Field(description="What the public log shows of this user.")
    active: bool


class AddedUser(UserOut):
    token: str = Field(description="The user's API token; shown only this once.")


class UserList(BaseModel):
    users: list[UserOut]


def _ids(request: Request) -> Identities:
    ids: Identities = request.app.state.identities
    return ids


def _ledger(request: Request) -> LedgerService:
    svc: LedgerService = request.app.state.ledger
    return svc


@router.post("/admin/users", tags=["admin"], status_code=201, response_model=AddedUser)
async def admin_add_user(body: NewUser, request: Request, admin: Admin) -> dict[str, Any]:
    """Add a user (admin only); logs ``user.added`` first.  The token is returned once."""
    ids, svc = _ids(request), _ledger(request)
    scope = Scope.parse(body.scope)

    def work() -> tuple[User, str]:
        return svc.write(lambda log: add_user(log, ids, body.name, body.role, scope, body.password))

    user, token = await run_in_threadpool(work)
    return {**user.to_json(), "token": token}


@router.post("/admin/users/{name}/revoke", tags=["admin"], response_model=UserOut)
async def admin_revoke_user(name: str, request: Request, admin: Admin) -> dict[str, Any]:
    """Revoke a user (admin only); logs ``user.revoked`` first."""
    ids, svc = _ids(request), _ledger(request)
    user = await run_in_threadpool(lambda: svc.write(lambda log: revoke_user(log, ids, name)))
    return user.to_json()


class UserChange(BaseModel):
    role: str | None = Field(default=None, description="The new role, or omitted to keep it.")
    scope: str | None = Field(
        default=None, max_length=4000, description="The new scope, or omitted to keep it."
    )


@router.post("/admin/users/{name}/change", tags=["admin"], response_model=UserOut)
async def admin_change_user(
    name: str, body: UserChange, request: Request, admin: Admin
) -> dict[str, Any]:
    """Change a user's role or scope (admin only); logs ``user.changed`` first."""
    ids, svc = _ids(request), _ledger(request)
    scope = Scope.parse(body.scope) if body.scope is not None else None
    user = await run_in_threadpool(
        lambda: svc.write(lambda log: change_user(log, ids, name, body.role, scope))
    )
    return user.to_json()


@router.get("/admin/users", tags=["admin"], response_model=UserList)
async def admin_list_users(request: Request, admin: Admin) -> dict[str, Any]:
    """Every account, active or revoked (admin only)."""
    users = await run_in_threadpool(_ids(request).users)
    return {"users": [u.to_json() for u in users]}


# -- the staff pages ---------------------------------------------------------------------
#
# Plain HTML forms: each POST does one thing and redirects (303) to a page that
# shows the result.  Cookie sessions are SameSite=Lax, and a POST whose Origin
# header names another site is refused, so another site cannot submit these.

INVESTIGATOR = require_page("investigator")
DECIDER = require_page("approver", "judge")
AUDITOR = require_page("auditor")
OPERATOR = require_page("operator")
ANYONE = require_page(*ROLES)
ADMIN = require_page("admin")
READER = require_page("investigator", "approver", "judge", "auditor")

LINKS: dict[str, list[tuple[str, str]]] = {
    "investigator": [
        ("/app/requests/new", "Request footage"),
        ("/app/requests", "My requests"),
    ],
    "approver": [("/app/queue", "Requests waiting for my decision")],
    "judge": [("/app/queue", "Requests waiting for my decision")],
    "auditor": [("/app/audit", "Audit: sealed details and anomaly flags")],
    "operator": [("/app/registry", "Camera registry")],
    "admin": [("/app/users", "Users and roles")],
}


def _access(request: Request) -> AccessService:
    svc: AccessService | None = getattr(request.app.state, "access", None)
    if svc is None:
        raise StoreUnavailableError("the access gateway is not running on this server")
    return svc


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise Refused(403, "This form was sent from another site.", page=True)


def _failure(request: Request, err: CustodesError, back: str) -> HTMLResponse:
    status = 403 if isinstance(err, Forbidden) else http_status(err)
    return render(request, "internal/error.html", status_code=status, message=str(err), back=back)


async def _run(fn: Callable[[], T]) -> T:
    return await run_in_threadpool(fn)


async def _act(request: Request, fn: Callable[[], object], back: str, done: str) -> Response:
    """A staff form's POST: do ``fn``, then go to ``done``; a refusal links ``back``."""
    _same_origin(request)
    try:
        await _run(fn)
    except CustodesError as err:
        return _failure(request, err, back)
    return RedirectResponse(done, status_code=303)


def _time_field(value: str, what: str) -> int:
    """A ``datetime-local`` value (taken as UTC) or an RFC 3339 time, in milliseconds."""
    value = value.strip()
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d)(:\d\d(?:\.\d{1,3})?)?", value)
    if m is not None:  # no zone: a datetime-local field, in UTC
        value = m.group(1) + (m.group(2) or ":00") + "Z"
    return parse_time(value, what)


def _float_field(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FormatError(f"the {what} must be a number") from None
    if not math.isfinite(number):
        raise FormatError(f"the {what} must be a finite number")
    return number


@router.get("/app", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, user: Annotated[User, Depends(ANYONE)]) -> HTMLResponse:
    return render(request, "internal/home.html", links=LINKS[user.role])


# -- investigators -----------------------------------------------------------------------


def _purposes(request: Request) -> list[str]:
    purposes: list[str] = list(_access(request).policy()["purposes"])
    return purposes


@router.get("/app/requests/new", response_class=HTMLResponse, include_in_schema=False)
async def new_request_page(
    request: Request, user: Annotated[User, Depends(INVESTIGATOR)]
) -> HTMLResponse:
    purposes = await _run(lambda: _purposes(request))
    return render(request, "internal/request_new.html", purposes=purposes, form={}, error=None)


@router.post("/app/requests/new", include_in_schema=False)
async def new_request(request: Request, user: Annotated[User, Depends(INVESTIGATOR)]) -> Response:
    _same_origin(request)
    raw = await request.form()
    form = {k: str(v)[:4000] for k, v in raw.items() if isinstance(v, str)}
    try:
        if form.get("scope") == "area":
            area = (
                _float_field(form.get("lat", ""), "latitude"),
                _float_field(form.get("lon", ""), "longitude"),
                _float_field(form.get("radius_m", ""), "radius"),
            )
            cameras: tuple[str, ...] = ()
        else:
            area = None
            cameras = tuple(c for c in re.split(r"[\s,]+", form.get("cameras", "")) if c)
            if not cameras:
                raise FormatError("name at least one camera, or choose an area")
        inp = RequestInput(
            from_ms=_time_field(form.get("from", ""), "start of the window"),
            to_ms=_time_field(form.get("to", ""), "end of the window"),
            purpose=form.get("purpose", ""),
            case=form.get("case", "").strip(),
            justification=form.get("justification", ""),
            cameras=cameras,
            area=area,
        )
        access = _access(request)
        rid = await _run(lambda: access.request(user, inp))
    except CustodesError as err:
        purposes = await _run(lambda: _purposes(request))
        status = 403 if isinstance(err, Forbidden) else http_status(err)
        return render(
            request,
            "internal/request_new.html",
            status_code=status,
            purposes=purposes,
            form=form,
            error=str(err),
        )
    return RedirectResponse(f"/app/requests/{rid}?created=1", status_code=303)


@router.get("/app/requests", response_class=HTMLResponse, include_in_schema=False)
async def my_requests(
    request: Request, user: Annotated[User, Depends(INVESTIGATOR)]
) -> HTMLResponse:
    access = _access(request)
    rows = await _run(lambda: access.mine(user))
    rows.sort(key=lambda r: r["created"], reverse=True)
    return render(request, "internal/requests.html", rows=rows)


@router.get("/app/requests/{rid}", response_class=HTMLResponse, include_in_schema=False)
async def request_page(
    request: Request, rid: str, user: Annotated[User, Depends(READER)], created: int = 0
) -> HTMLResponse:
    access = _access(request)
    try:
        req = await _run(lambda: access.get(user, rid))
    except CustodesError as err:
        return _failure(request, err, "/app")
    mine = user.role == "investigator"
    return render(
        request,
        "internal/request.html",
        req=req,
        created=bool(created),
        can_release=mine and req["state"] == "approved",
        can_fetch=mine and req["state"] == "released",
        can_decide=user.role in ("approver", "judge") and req["state"] == "pending",
    )


@router.post("/app/requests/{rid}/release", include_in_schema=False)
async def release(
    request: Request, rid: str, user: Annotated[User, Depends(INVESTIGATOR)]
) -> Response:
    """Log the release, then send the clip as a download."""
    _same_origin(request)
    access = _access(request)
    folder = Path(tempfile.mkdtemp(prefix="custodes-release-"))
    out = folder / f"{rid}.mp4"
    try:
        info = await _run(lambda: access.release(user, rid, out))
    except CustodesError as err:
        shutil.rmtree(folder, ignore_errors=True)
        return _failure(request, err, f"/app/requests/{rid}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        out,
        media_type="video/mp4",
        filename=f"{rid}.mp4",
        headers={
            "X-Custodes-Log-Index": str(info["index"]),
            "X-Custodes-SHA256": str(info["sha256"]),
        },
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.post("/app/requests/{rid}/download", include_in_schema=False)
async def download(
    request: Request, rid: str, user: Annotated[User, Depends(INVESTIGATOR)]
) -> Response:
    """The released clip again, byte for byte as logged; the download is logged first."""
    _same_origin(request)
    access = _access(request)
    try:
        got = await _run(lambda: access.download(user, rid))
    except CustodesError as err:
        return _failure(request, err, f"/app/requests/{rid}")
    return FileResponse(
        got["path"],
        media_type="video/mp4",
        filename=f"{rid}.mp4",
        headers={"X-Custodes-Log-Index": str(got["released"]), "X-Custodes-SHA256": got["sha256"]},
    )


# -- approvers and judges ----------------------------------------------------------------


@router.get("/app/queue", response_class=HTMLResponse, include_in_schema=False)
async def queue(request: Request, user: Annotated[User, Depends(DECIDER)]) -> HTMLResponse:
    access = _access(request)
    rows = await _run(lambda: access.queue(user))
    details: dict[str, dict[str, Any]] = {}
    for row in rows:
        try:
            got = await run_in_threadpool(access.get, user, row["request"])
            details[row["request"]] = got.get("details") or {}
        except CustodesError:
            details[row["request"]] = {}
    return render(request, "internal/queue.html", rows=rows, sealed_details=details)


@router.post("/app/requests/{rid}/approve", include_in_schema=False)
async def approve(
    request: Request,
    rid: str,
    user: Annotated[User, Depends(DECIDER)],
    reason: Annotated[str, Form(max_length=1000)] = "",
    unredacted: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    access = _access(request)
    return await _act(
        request,
        lambda: access.approve(user, rid, unredacted=bool(unredacted), reason=reason),
        "/app/queue",
        f"/app/requests/{rid}",
    )


@router.post("/app/requests/{rid}/deny", include_in_schema=False)
async def deny(
    request: Request,
    rid: str,
    user: Annotated[User, Depends(DECIDER)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    access = _access(request)
    return await _act(
        request, lambda: access.deny(user, rid, reason), "/app/queue", f"/app/requests/{rid}"
    )


# -- auditors ----------------------------------------------------------------------------


@router.get("/app/audit", response_class=HTMLResponse, include_in_schema=False)
async def audit(
    request: Request,
    user: Annotated[User, Depends(AUDITOR)],
    rid: Annotated[str, Query(alias="request", max_length=64)] = "",
    why: Annotated[str, Query(max_length=1000)] = "",
    all_flags: Annotated[int, Query(alias="all")] = 0,
    revealed: int = 0,
) -> HTMLResponse:
    access = _access(request)
    flags = await _run(lambda: access.flags(user, open_only=not all_flags))
    sealed = None
    error = None
    if rid:
        try:
            sealed = await _run(lambda: access.sealed(user, rid.strip(), why))
            sealed["checks"] = check_commitment(
                sealed["commitment"], sealed["salt"], sealed["details"]
            )
        except CustodesError as err:
            error = str(err)
    return render(
        request,
        "internal/audit.html",
        flags=flags,
        all_flags=bool(all_flags),
        sealed=sealed,
        rid=rid,
        why=why,
        error=error,
        revealed=bool(revealed),
    )


@router.post("/app/audit/flags/{flag}/resolve", include_in_schema=False)
async def resolve_flag(
    request: Request,
    flag: str,
    user: Annotated[User, Depends(AUDITOR)],
    resolution: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    access = _access(request)
    return await _act(
        request, lambda: access.resolve_flag(user, flag, resolution), "/app/audit", "/app/audit"
    )


@router.post("/app/audit/reveal", include_in_schema=False)
async def reveal(
    request: Request,
    user: Annotated[User, Depends(AUDITOR)],
    rid: Annotated[str, Form(alias="request", max_length=64)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Publish a request's salt and details (``access.revealed``)."""
    access = _access(request)
    back = f"/app/audit?request={quote(rid)}"
    return await _act(request, lambda: access.reveal(user, rid, reason), back, back + "&revealed=1")


# -- admins: users -------------------------------------------------------------------------


@router.get("/app/users", response_class=HTMLResponse, include_in_schema=False)
async def users_page(request: Request, user: Annotated[User, Depends(ADMIN)]) -> HTMLResponse:
    users = await _run(_ids(request).users)
    return render(request, "internal/users.html", users=users, roles=ROLES, error=None, added=None)


@router.post("/app/users", include_in_schema=False)
async def users_add(request: Request, user: Annotated[User, Depends(ADMIN)]) -> Response:
    """Add a user (logged first) and show their token once."""
    _same_origin(request)
    raw = await request.form()
    form = {k: str(v)[:1024] for k, v in raw.items() if isinstance(v, str)}
    ids, svc = _ids(request), _ledger(request)
    added: tuple[User, str] | None = None
    error = None
    try:
        scope = Scope.parse(form.get("scope", ""))
        name, role = form.get("name", "").strip(), form.get("role", "")
        password = form.get("password") or None
        added = await _run(
            lambda: svc.write(lambda log: add_user(log, ids, name, role, scope, password))
        )
    except CustodesError as err:
        error = str(err)
    users = await _run(ids.users)
    return render(
        request,
        "internal/users.html",
        status_code=201 if added else 400,
        users=users,
        roles=ROLES,
        error=error,
        added=added,
    )


@router.post("/app/users/{name}/revoke", include_in_schema=False)
async def users_revoke(
    request: Request, name: str, user: Annotated[User, Depends(ADMIN)]
) -> Response:
    ids, svc = _ids(request), _ledger(request)
    revoke = lambda: svc.write(lambda log: revoke_user(log, ids, name))  # noqa: E731
    return await _act(request, revoke, "/app/users", "/app/users")


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
