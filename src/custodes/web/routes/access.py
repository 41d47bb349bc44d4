"""The access gateway over HTTP: requests, decisions, release, reveal, flags and policy.

Every route but ``GET /access/policy`` needs a user token (``Authorization:
Bearer TOKEN``) or a login session.  A person of the wrong role, or outside
the request's scope, gets 403; a log that cannot be written gives 503 and
nothing else (for a release: not one byte of footage).

``POST /access/requests/{id}/release`` answers with the clip itself
(``video/mp4``); the headers ``X-Custodes-Index`` and ``X-Custodes-Sha256``
name the ``access.released`` entry that was durably logged before the first
byte was sent, and the digest that entry holds.  Under custody the release is
logged and witnessed before the custodians open the footage, and
``X-Custodes-Index`` names the ``access.exported`` entry that holds the clip's
digest (``X-Custodes-Release-Index`` the release); fewer custodians answering
than the threshold gives 503 with a sentence saying how many did, and no clip.
A release of several cameras answers ``application/zip``: one MP4 per camera, the
``manifest.json`` whose digest ``X-Custodes-Sha256`` is, and the receipt
(:mod:`custodes.access.archive`).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import User
from custodes.access.service import AccessService, Forbidden, RequestInput
from custodes.errors import FormatError
from custodes.fleet.model import now_ms, parse_time
from custodes.web.auth import Refused, require

__all__ = ["install", "router"]

T = TypeVar("T")
router = APIRouter(prefix="/access", tags=["access"])
_log = logging.getLogger("custodes.access")

Anyone = Annotated[
    User, Depends(require("operator", "investigator", "approver", "judge", "auditor", "admin"))
]
Investigator = Annotated[User, Depends(require("investigator"))]
Viewer = Annotated[User, Depends(require("investigator", "approver", "judge", "auditor"))]
Decider = Annotated[User, Depends(require("approver", "judge"))]
Revealer = Annotated[User, Depends(require("auditor", "judge"))]
Auditor = Annotated[User, Depends(require("auditor"))]
Admin = Annotated[User, Depends(require("admin"))]
Sweeper = Annotated[User, Depends(require("admin", "auditor"))]
RequestId = Annotated[str, Path(min_length=1, max_length=64)]


# -- models ------------------------------------------------------------------------------


class Area(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    radius_m: float = Field(gt=0, le=5000, allow_inf_nan=False)


class NewRequest(BaseModel):
    """Exactly one of ``cameras``, ``area`` and ``polygon``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cameras: list[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None, max_length=1000
    )
    area: Area | None = None
    polygon: (
        list[
            Annotated[
                list[Annotated[float, Field(allow_inf_nan=False)]],
                Field(min_length=2, max_length=2),
            ]
        ]
        | None
    ) = Field(default=None, max_length=1000, description="[[lat, lon], ...], at least 3 points")
    from_: str | None = Field(
        default=None,
        alias="from",
        max_length=40,
        description="RFC 3339, e.g. 2026-01-02T03:04:05Z (not for a live grant)",
    )
    to: str | None = Field(default=None, max_length=40)
    live: bool = Field(default=False, description="Watch live: minutes from the approval")
    minutes: int | None = Field(default=None, ge=1, le=24 * 60, description="A live grant's")
    emergency: bool = Field(default=False, description="A live grant that starts at once")
    purpose: str = Field(max_length=40)
    case: str = Field(max_length=200, description="A case reference such as CASE-2026-0001")
    justification: str = Field(max_length=4000)


class Created(BaseModel):
    request: str


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unredacted: bool = Field(default=False, description="Grant an unredacted export.")
    reason: str = Field(default="", max_length=1000)


class Reasoned(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=1000)


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: str = Field(max_length=1000)


class ReleaseScope(BaseModel):
    """Optionally narrower than what was approved; never wider."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cameras: list[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None, max_length=1000
    )
    from_: str | None = Field(default=None, alias="from", max_length=40)
    to: str | None = Field(default=None, max_length=40)


class Decided(BaseModel):
    request: str
    state: str
    index: int
    complete: bool | None = None
    expires: str | None = None


class Logged(BaseModel):
    index: int
    model_config = ConfigDict(extra="allow")


class RequestView(BaseModel):
    """A request's public fields and state; ``details`` only for those who may read them."""

    model_config = ConfigDict(extra="allow")
    request: str
    state: str = Field(description="pending, approved, denied, expired or released")
    requester: str
    purpose: str
    cameras: int
    districts: list[str]
    window_s: int
    sensitive: bool
    commitment: str


class RequestList(BaseModel):
    requests: list[RequestView]


class Sealed(BaseModel):
    request: str
    commitment: str
    salt: str
    details: dict[str, Any]
    read_index: int = Field(description="The log index of the access.details_read entry")


class FlagView(BaseModel):
    model_config = ConfigDict(extra="allow")
    flag: str
    rule: str
    subject: str
    reason: str
    requests: list[str]


class FlagList(BaseModel):
    flags: list[FlagView]


class PolicyView(BaseModel):
    version: int
    policy: dict[str, Any]


# -- plumbing ----------------------------------------------------------------------------


def _svc(request: Request) -> AccessService:
    svc: AccessService = request.app.state.access
    return svc


def _clock(request: Request) -> int:
    fleet = getattr(request.app.state, "fleet", None)
    clock: Callable[[], int] = getattr(fleet, "clock", now_ms)
    return clock()


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service call in a worker thread; a Forbidden refusal becomes HTTP 403."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except Forbidden as err:
        raise Refused(403, str(err), page=False) from None


def _time(value: str | None, what: str) -> int | None:
    return None if value is None else parse_time(value, what)


# -- routes ------------------------------------------------------------------------------


async def _live_request(body: NewRequest, request: Request, user: User) -> Any:
    from custodes.access.live import LiveInput
    from custodes.web.routes.live import live_of_app

    if body.from_ is not None or body.to is not None or body.area or body.polygon:
        raise FormatError("a live grant names cameras and minutes, not a window or an area")
    if not body.cameras or body.minutes is None:
        raise FormatError("a live grant needs cameras and minutes")
    inp = LiveInput(cameras=tuple(body.cameras), minutes=body.minutes, purpose=body.purpose,
                    case=body.case, justification=body.justification,
                    emergency=body.emergency)  # fmt: skip
    return await _run(live_of_app(request).grants.request, user, inp, _clock(request))


@router.post("/requests", status_code=201, response_model=Created, summary="Request footage")
async def create_request(body: NewRequest, request: Request, user: Investigator) -> Any:
    """An investigator asks for footage of cameras or an area, for a case and a purpose;
    with ``live`` (and ``minutes``, ``emergency``), to watch cameras live instead."""
    if body.live or body.emergency:
        return await _live_request(body, request, user)
    if body.from_ is None or body.to is None:
        raise FormatError("a request for recorded footage needs from and to")
    f, t = parse_time(body.from_, "from"), parse_time(body.to, "to")
    if body.polygon is not None and len(body.polygon) < 3:
        raise FormatError("a polygon needs at least 3 points")
    inp = RequestInput(
        from_ms=f,
        to_ms=t,
        purpose=body.purpose,
        case=body.case,
        justification=body.justification,
        cameras=tuple(body.cameras or ()),
        area=(body.area.lat, body.area.lon, body.area.radius_m) if body.area else None,
        polygon=tuple((p[0], p[1]) for p in body.polygon or ()),
    )
    rid = await _run(_svc(request).request, user, inp, _clock(request))
    return {"request": rid}


@router.get("/requests/{rid}", response_model=RequestView, summary="One request and its state")
async def get_request(
    rid: RequestId,
    request: Request,
    user: Viewer,
    why: str = Query(default="", max_length=1000, description="Why you read the details"),
) -> Any:
    """Approvers', judges' and (with ``why``) auditors' reads are logged first."""
    return await _run(_svc(request).get, user, rid, _clock(request), why)


@router.get("/mine", response_model=RequestList, summary="The requests I made")
async def mine(request: Request, user: Anyone) -> Any:
    return {"requests": await _run(_svc(request).mine, user, _clock(request))}


@router.get("/queue", response_model=RequestList, summary="Requests I may decide")
async def queue(request: Request, user: Decider) -> Any:
    return {"requests": await _run(_svc(request).queue, user, _clock(request))}


@router.post("/requests/{rid}/approve", response_model=Decided, summary="Approve a request")
async def approve(rid: RequestId, body: Approval, request: Request, user: Decider) -> Any:
    svc = _svc(request)
    return await _run(svc.approve, user, rid, body.unredacted, body.reason, _clock(request))


@router.post("/requests/{rid}/deny", response_model=Decided, summary="Deny a request")
async def deny(rid: RequestId, body: Reasoned, request: Request, user: Decider) -> Any:
    return await _run(_svc(request).deny, user, rid, body.reason, _clock(request))


@router.post(
    "/requests/{rid}/release",
    summary="Release the approved footage (the clip, once its release is logged)",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"video/mp4": {}, "application/zip": {}},
            "description": "The clip; for several cameras a zip: one MP4 per camera, their"
            " manifest (whose SHA-256 the entry logs) and the receipt.",
        }
    },
)
async def release(
    rid: RequestId, request: Request, user: Investigator, body: ReleaseScope | None = None
) -> Any:
    svc = _svc(request)
    scope = body or ReleaseScope()
    f, t = _time(scope.from_, "from"), _time(scope.to, "to")
    cams = tuple(scope.cameras) if scope.cameras else None
    folder = svc.data / "tmp" / ("release-" + secrets.token_hex(8))
    folder.mkdir(parents=True)
    out = folder / f"{rid}.mp4"
    try:
        info = await _run(svc.release, user, rid, out, cams, f, t, _clock(request))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    from custodes.web.routes.clips import release_response

    headers = {
        "X-Custodes-Index": str(info["index"]),  # the entry naming the clip
        "X-Custodes-Release-Index": str(info.get("release", info["index"])),
        "X-Custodes-Sha256": info["sha256"],
        "Cache-Control": "no-store",
    }
    return await release_response(request, user, rid, out, headers, owned=folder)


@router.get("/requests/{rid}/sealed", response_model=Sealed, summary="Read sealed details")
async def sealed(
    rid: RequestId,
    request: Request,
    user: Auditor,
    why: str = Query(default="", max_length=1000, description="Why you read them (logged)"),
) -> Any:
    """Logs ``access.details_read`` (who, which request, why) before answering."""
    return await _run(_svc(request).sealed, user, rid, why, _clock(request))


@router.post("/requests/{rid}/reveal", response_model=Logged, summary="Publish sealed details")
async def reveal(rid: RequestId, body: Reasoned, request: Request, user: Revealer) -> Any:
    return await _run(_svc(request).reveal, user, rid, body.reason, _clock(request))


@router.get("/flags", response_model=FlagList, summary="Insider-abuse flags (auditors)")
async def flags(
    request: Request, user: Auditor, all: bool = Query(default=False, description="Resolved too")
) -> Any:
    return {"flags": await _run(_svc(request).flags, user, not all)}


@router.post("/flags/{flag}/resolve", response_model=Logged, summary="Resolve a flag")
async def resolve(
    flag: Annotated[str, Path(max_length=64)], body: Resolution, request: Request, user: Auditor
) -> Any:
    return await _run(_svc(request).resolve_flag, user, flag, body.resolution, _clock(request))


@router.get("/policy", response_model=PolicyView, summary="The approval policy now in force")
async def get_policy(request: Request) -> Any:
    pol = await _run(_svc(request).policy, _clock(request))
    return {"version": pol.version, "policy": pol.doc}


@router.put("/policy", response_model=Logged, summary="Replace the policy (admin)")
async def set_policy(body: dict[str, Any], request: Request, user: Admin) -> Any:
    return await _run(_svc(request).set_policy, user, body, _clock(request))


@router.post("/sweep", summary="Expire, disclose and run the anomaly rules now")
async def sweep(request: Request, user: Sweeper) -> dict[str, Any]:
    svc, now = _svc(request), _clock(request)
    done: dict[str, Any] = dict(await _run(svc.sweep, now))
    done["flagged"] = await _run(svc.run_anomaly_rules, now)
    return done


# -- installation ------------------------------------------------------------------------


def _clean_tmp(folder: FilePath, older_than_s: float = 3600.0) -> None:
    """Remove served clips a dropped connection left behind (they were logged already)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - older_than_s
    for d in folder.glob("release-*"):
        try:
            if d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def install(app: FastAPI, *, sweep_every_s: float = 30.0) -> None:
    """Open the gateway as ``app.state.access`` and sweep it on a timer."""
    ledger = app.state.ledger
    svc = AccessService(ledger, app.state.fleet.db, app.state.identities, ledger.instance.path)
    app.state.access = svc
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(sweep_every_s):
            if ledger.closed:
                break
            _clean_tmp(svc.data / "tmp")
            try:
                clock: Callable[[], int] = getattr(app.state.fleet, "clock", now_ms)
                now = clock()
                svc.sweep(now)
                svc.run_anomaly_rules(now)
            except Exception:
                if ledger.closed:
                    break
                _log.exception("the access sweep failed; retrying")

    threading.Thread(target=run, name="access-sweep", daemon=True).start()
    app.state.access_stop = stop
