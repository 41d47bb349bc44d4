"""Live grants over HTTP: request, state, revocation, the HLS playlist, its segments, a player.

``POST /access/live``                      an investigator's live (or emergency) grant
``GET  /access/live/{id}``                 the grant's state by the log
``POST /access/live/{id}/revoke``          an approver or judge ends it now
``GET  /access/live/{id}/index.m3u8``      the requester's HLS playlist (``?camera=ID``)
``GET  /access/live/{id}/{segment}.ts``    one segment, once ``access.viewed`` is logged and
                                           the custodians opened it (403 outside the grant,
                                           503 when the log or the custodians cannot answer;
                                           never a byte of footage then)
``GET  /access/live/{id}/watch``           a page that plays the playlist (hls.js, served
                                           from ``/static/vendor/hls``)
``GET  /public/live.json``                 anyone: live and emergency grants per month, their
                                           minutes, segments viewed, reviews late or missing,
                                           as of the published checkpoint it names

The playlist and the segments answer the grant's requester only (bearer token or login
session), and only while the grant is live.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from custodes.access.identity import User
from custodes.access.live import LiveGrants, LiveInput
from custodes.access.live_view import LiveView
from custodes.web.auth import render, require, require_page
from custodes.web.routes.access import _clock, _run

__all__ = ["live_of_app", "public_router", "router", "staff_router"]

router = APIRouter(prefix="/access/live", tags=["live"])
public_router = APIRouter(tags=["public"])

Investigator = Annotated[User, Depends(require("investigator"))]
Viewer = Annotated[User, Depends(require("investigator", "approver", "judge", "auditor"))]
Decider = Annotated[User, Depends(require("approver", "judge"))]
Page = Annotated[User, Depends(require_page("investigator"))]
GrantId = Annotated[str, Path(min_length=1, max_length=64)]


class NewLive(BaseModel):
    """A live grant: cameras, minutes, why; ``emergency`` starts it before any approval."""

    model_config = ConfigDict(extra="forbid")
    cameras: list[Annotated[str, Field(max_length=128)]] = Field(min_length=1, max_length=16)
    minutes: int = Field(ge=1, le=24 * 60)
    purpose: str = Field(max_length=40)
    case: str = Field(max_length=200)
    justification: str = Field(max_length=4000)
    emergency: bool = False


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=1000)


def live_of_app(request: Request) -> LiveView:
    """The app's live view (made at first use over ``app.state.access``)."""
    state = request.app.state
    view: LiveView | None = getattr(state, "live", None)
    if view is None:
        view = state.live = LiveView(state.access, LiveGrants(state.access))
    return view


@router.post("", status_code=201, summary="Request a live (or emergency) grant")
async def create(body: NewLive, request: Request, user: Investigator) -> Any:
    inp = LiveInput(
        cameras=tuple(body.cameras), minutes=body.minutes, purpose=body.purpose,
        case=body.case, justification=body.justification, emergency=body.emergency,
    )  # fmt: skip
    return await _run(live_of_app(request).grants.request, user, inp, _clock(request))


@router.get("/{rid}", summary="A live grant's state")
async def state(rid: GrantId, request: Request, user: Viewer) -> Any:
    view = live_of_app(request)
    g = await _run(view.grants.grant, rid, _clock(request))
    if user.role == "investigator" and g.requester != user.pseudonym:
        await _run(_forbid, "only the investigator who made the live grant may see it here")
    return g.to_json()


def _forbid(why: str) -> None:
    from custodes.access.requests import Forbidden

    raise Forbidden(why)


@router.post("/{rid}/revoke", summary="End a live grant now")
async def revoke(rid: GrantId, body: Revocation, request: Request, user: Decider) -> Any:
    return await _run(live_of_app(request).grants.revoke, user, rid, body.reason, _clock(request))


@router.get("/{rid}/index.m3u8", summary="The grant's HLS playlist")
async def playlist(
    rid: GrantId,
    request: Request,
    user: Investigator,
    camera: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    text = await _run(live_of_app(request).playlist, user, rid, camera, _clock(request))
    return Response(
        text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-store"}
    )


@router.get("/{rid}/watch", response_class=HTMLResponse, include_in_schema=False)
async def watch(rid: GrantId, request: Request, user: Page) -> HTMLResponse:
    view = live_of_app(request)
    g = await _run(view.grants.grant, rid, _clock(request))
    return render(request, "internal/live.html", grant=g.to_json(), rid=rid)


@router.get("/{rid}/{name}.ts", summary="One segment of the grant (MPEG-TS)")
async def segment(
    rid: GrantId,
    request: Request,
    user: Investigator,
    name: Annotated[str, Path(min_length=3, max_length=160)],
) -> Response:
    got = await _run(live_of_app(request).segment, user, rid, name, _clock(request))
    return Response(
        got["body"],
        media_type="video/mp2t",
        headers={
            "X-Custodes-Index": str(got["index"]),
            "X-Custodes-Sha256": got["sha256"],
            "Cache-Control": "no-store",
        },
    )


@public_router.get("/public/live.json", summary="Live viewing: grants, minutes, reviews")
def public_live(request: Request) -> dict[str, Any]:
    from custodes.access.live_stats import live_from_state

    def figures(state: Any, snap: Any) -> dict[str, Any]:
        cp = None if snap is None else {"size": snap.size, "root": snap.root,
                                        "origin": snap.origin}  # fmt: skip
        return {**live_from_state(state), "checkpoint": cp}

    got: dict[str, Any] = request.app.state.public.use(figures)
    return got


# -- the staff form ----------------------------------------------------------------------

staff_router = APIRouter(include_in_schema=False)
StaffInvestigator = Annotated[User, Depends(require_page("investigator"))]


def _form_page(
    request: Request, form: dict[str, str], error: str | None, status: int = 200
) -> HTMLResponse:
    pol = request.app.state.access.policy()
    return render(
        request, "internal/live_new.html", status_code=status, form=form, error=error,
        purposes=list(pol["purposes"]), max_minutes=pol["live_max_minutes"],
        max_emergency=pol["emergency_max_minutes"],
        review_h=round(pol["emergency_review_s"] / 3600, 1),
    )  # fmt: skip


@staff_router.get("/app/live/new", response_class=HTMLResponse)
async def new_live_page(request: Request, user: StaffInvestigator) -> HTMLResponse:
    return _form_page(request, {}, None)


@staff_router.post("/app/live/new")
async def new_live(request: Request, user: StaffInvestigator) -> Response:
    """Ask for a live grant from the staff page; its request page is shown next."""
    import re

    from fastapi.responses import RedirectResponse

    from custodes.access.requests import Forbidden
    from custodes.errors import CustodesError, FormatError, http_status
    from custodes.web.routes.internal_common import same_origin

    same_origin(request)
    raw = await request.form()
    form = {k: str(v)[:4000] for k, v in raw.items() if isinstance(v, str)}
    try:
        minutes = form.get("minutes", "").strip()
        if not minutes.isdigit():
            raise FormatError("give the minutes as a whole number")
        inp = LiveInput(
            cameras=tuple(c for c in re.split(r"[\s,]+", form.get("cameras", "")) if c),
            minutes=int(minutes), purpose=form.get("purpose", ""),
            case=form.get("case", "").strip(), justification=form.get("justification", ""),
            emergency=bool(form.get("emergency")),
        )  # fmt: skip
        got = await _run(live_of_app(request).grants.request, user, inp, _clock(request))
    except CustodesError as err:
        status = 403 if isinstance(err, Forbidden) else http_status(err)
        return _form_page(request, form, str(err), status)
    return RedirectResponse(f"/app/requests/{got['request']}?created=1", status_code=303)
