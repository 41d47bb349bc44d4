"""Published transparency reports: ``/reports``, an archive by period, each with its JSON beside it.

``custodes report --publish`` puts a report's JSON form in ``DIR/reports/``
(:mod:`custodes.reports.publish`).  Each is served as

``/reports/report-<period>.json``
    the form ``custodes audit`` and ``custodes monitor --statistics`` read, as
    published, byte for byte;
``/reports/report-<period>.html`` and ``.pdf``
    rendered from it, with this server's log URL and verifier key in the audit
    command they print.  Rendering is done once per published file and kept.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from custodes.reports.publish import FOLDER, published, read_published
from custodes.web.map_data import Body, respond

__all__ = ["router"]

router = APIRouter(tags=["public"])
_rendered: dict[tuple[str, str, str], Body] = {}
_lock = threading.Lock()


def _data(request: Request) -> Path:
    path: Path = request.app.state.ledger.instance.path
    return path


def _verify(request: Request, name: str) -> Any:
    from custodes.reports.render import Verify

    base = request.app.state.settings.public_url.rstrip("/")
    vkey = request.app.state.ledger.instance.verifier_key
    return Verify(json_name=f"{name}.json", source=f"{base}/log", vkey=vkey)


def _names(request: Request) -> dict[str, str]:
    view = request.app.state.public
    names: dict[str, str] = view.use(
        lambda state, _snap: {k: str(d.get("name") or k) for k, d in state.districts.items()}
    )
    return names


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page(request: Request) -> HTMLResponse:
    from custodes.web.routes.dashboard import _page

    items = published(_data(request))
    base = request.app.state.settings.public_url.rstrip("/")
    return _page(request, "reports.html", reports=items, base=base,
                 vkey=request.app.state.ledger.instance.verifier_key)  # fmt: skip


@router.get("/reports/{name}.json", summary="A published transparency report, as published")
def report_json(request: Request, name: str) -> Response:
    read_published(_data(request), name)  # refuses a name or file that is not a report
    raw = (_data(request) / FOLDER / f"{name}.json").read_bytes()
    return respond(request, Body.of(raw, "application/json"))


def _render(request: Request, name: str, fmt: str) -> Body:
    from custodes.reports.render import render_html, render_pdf

    raw = (_data(request) / FOLDER / f"{name}.json").read_bytes()
    key = (name, fmt, hashlib.sha256(raw).hexdigest())
    with _lock:
        if key in _rendered:
            return _rendered[key]
    report = read_published(_data(request), name)
    verify, names = _verify(request, name), _names(request)
    if fmt == "html":
        body = Body.of(render_html(report, names, verify=verify).encode(), "text/html")
    else:
        body = Body.of(render_pdf(report, names, verify=verify), "application/pdf")
    with _lock:
        _rendered[key] = body
    return body


@router.get("/reports/{name}.html", response_class=HTMLResponse, include_in_schema=False)
def report_html(request: Request, name: str) -> Response:
    read_published(_data(request), name)
    return respond(request, _render(request, name, "html"))


@router.get("/reports/{name}.pdf", include_in_schema=False)
def report_pdf(request: Request, name: str) -> Response:
    read_published(_data(request), name)
    return respond(request, _render(request, name, "pdf"))
