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
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import User
from custodes.access.requests import resolve_cameras
from custodes.access.sealing import check_commitment
from custodes.access.service import Forbidden, RequestInput
from custodes.errors import CustodesError, FormatError, http_status
from custodes.fleet.model import now_ms
from custodes.web.auth import render
from custodes.web.routes import internal_geo, internal_registry, internal_users
from custodes.web.routes.internal_common import (
    ANYONE,
    AUDITOR,
    DECIDER,
    INVESTIGATOR,
    READER,
    map_settings,
)
from custodes.web.routes.internal_common import access_of as _access
from custodes.web.routes.internal_common import act as _act
from custodes.web.routes.internal_common import failure as _failure
from custodes.web.routes.internal_common import float_field as _float_field
from custodes.web.routes.internal_common import ledger_of as _ledger
from custodes.web.routes.internal_common import run as _run
from custodes.web.routes.internal_common import same_origin as _same_origin
from custodes.web.routes.internal_common import time_field as _time_field
from custodes.web.staff_data import (
    Footage,
    decisions_by_request,
    flags_by_person,
    flags_by_place,
    footage,
    requester_history,
    search_requests,
    states,
)

__all__ = ["router"]

router = APIRouter()
router.include_router(internal_users.router)
router.include_router(internal_registry.router)
router.include_router(internal_geo.router)


LINKS: dict[str, list[tuple[str, str]]] = {
    "investigator": [
        ("/app/requests/new", "Request footage"),
        ("/app/requests", "My requests"),
    ],
    "approver": [("/app/queue", "Requests waiting for my decision")],
    "judge": [("/app/queue", "Requests waiting for my decision")],
    "auditor": [("/app/audit", "Audit: sealed details and anomaly flags")],
    "operator": [("/app/registry", "Camera registry"), ("/app/geo", "Districts and places")],
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
    return render(
        request,
        "internal/request_new.html",
        purposes=purposes,
        form={},
        error=None,
        footage=None,
        map=map_settings(request),
    )


def _window(form: dict[str, str]) -> tuple[int, int]:
    """The window from its start and either its end or its length in hours and minutes."""
    start = _time_field(form.get("from", ""), "start of the window")
    if form.get("to", "").strip():
        return start, _time_field(form["to"], "end of the window")
    hours, minutes = form.get("hours", "").strip(), form.get("minutes", "").strip()
    if not hours and not minutes:
        raise FormatError("give the end of the window, or its length in hours and minutes")
    length = _float_field(hours or "0", "hours") * 60 + _float_field(minutes or "0", "minutes")
    if length <= 0:
        raise FormatError("the window's length must be more than zero minutes")
    return start, start + int(length * 60_000)


def _input(form: dict[str, str]) -> RequestInput:
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
    from_ms, to_ms = _window(form)
    return RequestInput(
        from_ms=from_ms,
        to_ms=to_ms,
        purpose=form.get("purpose", ""),
        case=form.get("case", "").strip(),
        justification=form.get("justification", ""),
        cameras=cameras,
        area=area,
    )


def _footage_for(request: Request, inp: RequestInput) -> Footage:
    """What the segment index holds for the request's cameras and window; nothing logged."""
    if inp.to_ms <= inp.from_ms:
        raise FormatError("the end of the window must come after its start")
    access = _access(request)

    def read(_log: Any) -> Footage:
        cams = resolve_cameras(access.fleet, inp)
        return footage(access.fleet, [c.id for c in cams], inp.from_ms, inp.to_ms)

    return _ledger(request).read(read)


@router.post("/app/requests/new", include_in_schema=False)
async def new_request(request: Request, user: Annotated[User, Depends(INVESTIGATOR)]) -> Response:
    """Send the request, or (``action=check``) only say whether footage exists for it."""
    _same_origin(request)
    raw = await request.form()
    form = {k: str(v)[:4000] for k, v in raw.items() if isinstance(v, str)}
    found: Footage | None = None
    try:
        inp = _input(form)
        if form.get("action") == "check":
            found = await _run(lambda: _footage_for(request, inp))
        else:
            access = _access(request)
            rid = await _run(lambda: access.request(user, inp))
            return RedirectResponse(f"/app/requests/{rid}?created=1", status_code=303)
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
            footage=None,
            map=map_settings(request),
        )
    purposes = await _run(lambda: _purposes(request))
    return render(
        request,
        "internal/request_new.html",
        purposes=purposes,
        form=form,
        error=None,
        footage=found,
        map=map_settings(request),
    )


@router.get("/app/requests", response_class=HTMLResponse, include_in_schema=False)
async def my_requests(
    request: Request, user: Annotated[User, Depends(INVESTIGATOR)]
) -> HTMLResponse:
    access = _access(request)

    def read() -> list[dict[str, Any]]:
        rows = access.mine(user)
        rows.sort(key=lambda r: r["created"], reverse=True)
        for row in rows:  # without custody the requester reads their own details freely
            details = access.get(user, row["request"]).get("details")
            # under custody only the custodians open them, for a logged read
            row["case"] = details.get("case", "") if details else "sealed (custody)"
        return rows

    return render(request, "internal/requests.html", rows=await _run(read))


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
        archive=mine and req["state"] == "released" and _kept_archive(access, rid),
        can_decide=user.role in ("approver", "judge") and req["state"] == "pending",
    )


def _kept_archive(access: Any, rid: str) -> bool:
    """The kept release is an archive (several cameras), so the page names it so."""
    from custodes.access.archive import is_archive

    try:
        return is_archive(access._kept(rid))
    except OSError:
        return False


@router.post("/app/requests/{rid}/release", include_in_schema=False)
async def release(
    request: Request, rid: str, user: Annotated[User, Depends(INVESTIGATOR)]
) -> Response:
    """Log the release, then send the clip (several cameras: a zip with the receipt)."""
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
    from custodes.web.routes.clips import release_response

    headers = {"X-Custodes-Log-Index": str(info["index"]), "X-Custodes-SHA256": str(info["sha256"])}
    return await release_response(request, user, rid, out, headers, owned=folder)


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
    from custodes.web.routes.clips import release_response

    headers = {"X-Custodes-Log-Index": str(got["released"]), "X-Custodes-SHA256": got["sha256"]}
    return await release_response(request, user, rid, got["path"], headers)


# -- approvers and judges ----------------------------------------------------------------


def _beside(access: Any, rows: list[dict[str, Any]], details: dict[str, Any]) -> dict[str, Any]:
    """For each queued request: its footage, its requester's history and open flags."""
    from custodes.fleet.model import parse_time

    now = now_ms()
    all_rows = access.db.requests()
    decisions = decisions_by_request(access)
    state_of = states(access, all_rows, decisions, now)
    by_id = {r.id: r for r in all_rows}
    open_flags = access.db.flags(open_only=True)
    out: dict[str, Any] = {}
    for row in rows:
        rid = row["request"]
        d = details.get(rid) or {}
        found = None
        if d.get("cameras") and d.get("from") and d.get("to"):
            start, end = parse_time(d["from"]), parse_time(d["to"])
            found = footage(access.fleet, d["cameras"], start, end)
        who = row["requester"]
        flags = [
            f
            for f in open_flags
            if rid in f["requests"]
            or f.get("subject") == who
            or any(by_id[r].pseudonym == who for r in f["requests"] if r in by_id)
        ]
        history = requester_history(all_rows, decisions, state_of, who, skip=rid)
        out[rid] = {"footage": found, "history": history, "flags": flags}
    return out


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
    ledger = _ledger(request)
    beside = await _run(lambda: ledger.read(lambda _log: _beside(access, rows, details)))
    return render(request, "internal/queue.html", rows=rows, sealed_details=details, beside=beside)


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


def _audit_views(
    access: Any, flags: list[dict[str, Any]], q: str
) -> tuple[tuple[list[dict[str, Any]], list[dict[str, Any]]], list[dict[str, Any]] | None]:
    """The flags by person and by place, and the requests matching ``q`` (None: no search).

    Only public fields of requests are read: no sealed details, so nothing is logged.
    """
    rows = access.db.requests()
    by_id = {r.id: r for r in rows}
    positions = {c["camera"]["id"]: c["camera"] for c in access.fleet.cameras()}
    groups = (flags_by_person(flags, by_id), flags_by_place(flags, by_id, positions))
    found = None
    if q:
        decisions = decisions_by_request(access)
        found = search_requests(rows, states(access, rows, decisions, now_ms()), q)
    return groups, found


@router.get("/app/audit", response_class=HTMLResponse, include_in_schema=False)
async def audit(
    request: Request,
    user: Annotated[User, Depends(AUDITOR)],
    rid: Annotated[str, Query(alias="request", max_length=64)] = "",
    why: Annotated[str, Query(max_length=1000)] = "",
    all_flags: Annotated[int, Query(alias="all")] = 0,
    revealed: int = 0,
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    access = _access(request)
    flags = await _run(lambda: access.flags(user, open_only=not all_flags))
    ledger = _ledger(request)
    groups, found = await _run(
        lambda: ledger.read(lambda _log: _audit_views(access, flags, q.strip()))
    )
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
        q=q.strip(),
        found=found,
        by_person=groups[0],
        by_place=groups[1],
        map=map_settings(request),
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
