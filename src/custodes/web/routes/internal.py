"""The staff pages behind login (HTML): investigators, approvers and judges, auditors.

Plain HTML forms: each POST does one thing and redirects (303) to a page that
shows the result.  Cookie sessions are SameSite=Lax, and a POST whose Origin
header names another site is refused, so another site cannot submit these.
Users (``internal_users``) and the registry (``internal_registry``) are in
their own modules, whose routes this router includes.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import User
from custodes.access.sealing import check_commitment
from custodes.access.service import Forbidden, RequestInput
from custodes.errors import CustodesError, FormatError, http_status
from custodes.web.auth import render
from custodes.web.routes import internal_registry, internal_users
from custodes.web.routes.internal_common import (
    ANYONE,
    AUDITOR,
    DECIDER,
    INVESTIGATOR,
    READER,
)
from custodes.web.routes.internal_common import access_of as _access
from custodes.web.routes.internal_common import act as _act
from custodes.web.routes.internal_common import failure as _failure
from custodes.web.routes.internal_common import float_field as _float_field
from custodes.web.routes.internal_common import run as _run
from custodes.web.routes.internal_common import same_origin as _same_origin
from custodes.web.routes.internal_common import time_field as _time_field

__all__ = ["router"]

router = APIRouter()
router.include_router(internal_users.router)
router.include_router(internal_registry.router)


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
