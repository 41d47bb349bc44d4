"""What the staff pages share: the role checks, form helpers and error pages."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import ROLES, Identities
from custodes.access.service import AccessService, Forbidden
from custodes.errors import CustodesError, FormatError, StoreUnavailableError, http_status
from custodes.fleet.model import parse_time
from custodes.web.auth import Refused, render, require_page
from custodes.web.service import LedgerService

T = TypeVar("T")

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


def ids_of(request: Request) -> Identities:
    ids: Identities = request.app.state.identities
    return ids


def ledger_of(request: Request) -> LedgerService:
    svc: LedgerService = request.app.state.ledger
    return svc


def access_of(request: Request) -> AccessService:
    svc: AccessService | None = getattr(request.app.state, "access", None)
    if svc is None:
        raise StoreUnavailableError("the access gateway is not running on this server")
    return svc


def same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise Refused(403, "This form was sent from another site.", page=True)


def failure(request: Request, err: CustodesError, back: str) -> HTMLResponse:
    status = 403 if isinstance(err, Forbidden) else http_status(err)
    return render(request, "internal/error.html", status_code=status, message=str(err), back=back)


async def run(fn: Callable[[], T]) -> T:
    return await run_in_threadpool(fn)


async def act(request: Request, fn: Callable[[], object], back: str, done: str) -> Response:
    """A staff form's POST: do ``fn``, then go to ``done``; a refusal links ``back``."""
    same_origin(request)
    try:
        await run(fn)
    except CustodesError as err:
        return failure(request, err, back)
    return RedirectResponse(done, status_code=303)


def time_field(value: str, what: str) -> int:
    """A ``datetime-local`` value (taken as UTC) or an RFC 3339 time, in milliseconds."""
    value = value.strip()
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d)(:\d\d(?:\.\d{1,3})?)?", value)
    if m is not None:  # no zone: a datetime-local field, in UTC
        value = m.group(1) + (m.group(2) or ":00") + "Z"
    return parse_time(value, what)


def float_field(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FormatError(f"the {what} must be a number") from None
    if not math.isfinite(number):
        raise FormatError(f"the {what} must be a finite number")
    return number


def map_settings(request: Request) -> dict[str, str]:
    """What a staff map draws under its markers: the configured tile source, or the
    demo city's own street plan; the same choice as the public map's."""
    from custodes.web.routes.dashboard import synthetic_city, tile_settings

    data = ledger_of(request).instance.path
    tiles = tile_settings(data)
    basemap = "/public/basemap.geojson" if tiles["url"] is None and synthetic_city(data) else ""
    return {
        "tile_url": tiles["url"] or "",
        "tile_attribution": tiles["attribution"] or "",
        "basemap": basemap,
    }
