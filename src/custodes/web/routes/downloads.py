"""CSV downloads of the public tables, the camera list and the log's entries.

Every table a public page shows is a download at ``/public/tables/NAME.csv`` (the
pages link to theirs); the camera list's search applies to ``/public/cameras.csv``
and the entry browser's filters to ``/public/entries.csv``.  Text a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@``) is written with a leading
apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from custodes.errors import NotFoundError
from custodes.reports.figures import coverage, place_categories
from custodes.reports.replay import PublicState
from custodes.web.map_data import Body, registry_version, respond, status_codes
from custodes.web.public import PublicView, access_statistics, outage_timeline
from custodes.web.routes.dashboard import PLACE_RADIUS_M, _cache, _view, _when
from custodes.web.routes.find import _row, filter_cameras, live_all

__all__ = ["TABLES", "router", "to_csv"]

router = APIRouter(tags=["public"])


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def to_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue().encode("utf-8")


def _by(key: str, table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: k, **v} for k, v in table.items()]


TABLES = {
    "districts": "Cameras per district (the coverage page)",
    "places": "Cameras near places, by category (the coverage page)",
    "requests-by-purpose": "Footage requests by purpose (access statistics)",
    "requests-by-district": "Footage requests by district (access statistics)",
    "requests-by-month": "Footage requests by month (access statistics)",
    "flags": "Anomaly flags by rule (access statistics)",
    "outages": "The outage timeline, newest first",
    "entry-types": "How many entries of each type the log holds",
    "reports": "The published transparency reports",
    "witnesses": "The witnesses and whether they cosigned the public checkpoint",
}


EMPTY_COLUMNS = {
    "reports": ["period", "name", "json", "size", "generated"],
    "witnesses": ["witness", "url", "vkey", "cosigned"],
    "outages": ["kind", "time", "cameras", "index", "late", "detail"],
    "flags": ["rule", "raised", "resolved"],
}
"""The header of a table with no rows yet (the others always have rows or are rarely empty)."""


def _outside_state(name: str, request: Request) -> list[dict[str, Any]] | None:
    """The tables that are not computed from the public state (None for the others)."""
    if name == "reports":
        from custodes.reports.publish import published

        rows = published(request.app.state.ledger.instance.path)
        return [{"period": r.period, "name": r.name, "json": f"/reports/{r.name}.json",
                 "size": r.size, "generated": r.generated} for r in rows]  # fmt: skip
    if name == "witnesses":
        inst = request.app.state.ledger.instance
        snap = _view(request).use(lambda _s, sn: sn)
        signed = set(snap.signers) if snap else set()
        return [{"witness": vkey.split("+", 1)[0], "url": url, "vkey": vkey,
                 "cosigned": vkey.split("+", 1)[0] in signed}
                for url, vkey in inst.witnesses]  # fmt: skip
    return None


def _table(name: str, state: PublicState, view: PublicView) -> list[dict[str, Any]]:
    if name == "districts":
        return coverage(state)
    if name == "places":
        return place_categories(state, PLACE_RADIUS_M)
    if name == "outages":
        return [{k: v for k, v in ev.items() if k != "day"} for ev in outage_timeline(state)]
    if name == "entry-types":
        return [{"type": k, "entries": v} for k, v in view.entries.counts().items()]
    stats = access_statistics(state)
    if name == "flags":
        return _by("rule", stats["flags"])
    key = name.removeprefix("requests-by-")
    return _by(key, stats[f"by_{key}"])


def _csv(body: bytes, name: str) -> Response:
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@router.get("/public/tables/{name}.csv", summary="A public table as CSV")
def table_csv(request: Request, name: str) -> Response:
    if name not in TABLES:
        raise NotFoundError(f"there is no public table {name!r}; the tables: {', '.join(TABLES)}")
    view = _view(request)
    rows = _outside_state(name, request)
    if rows is None:
        rows = view.use(lambda state, _snap: _table(name, state, view))
    return _csv(to_csv(rows, None if rows else EMPTY_COLUMNS.get(name)), f"{name}.csv")


CAMERA_COLUMNS = ["id", "name", "status", "district", "district_name", "lat", "lon",
                  "operator", "registered", "retired", "index"]  # fmt: skip


@router.get("/public/cameras.csv", summary="The cameras (the camera list's filters apply)")
def cameras_csv(
    request: Request,
    q: str = Query(default="", max_length=200),
    status: str = Query(default="", max_length=20),
    district: str = Query(default="", max_length=128),
) -> Response:
    live = live_all(request)
    if q or status or district:
        rows = _view(request).use(lambda s, _sn: filter_cameras(s, live, q, status, district))
        return _csv(to_csv(rows, CAMERA_COLUMNS), "cameras.csv")
    cache = _cache(request)

    def every(state: PublicState, _snap: Any) -> Body:
        # All of them: built once per registry and status change, kept and sent gzipped.
        def make() -> Body:
            rows = filter_cameras(state, live, "", "", "")
            return Body.of(to_csv(rows, CAMERA_COLUMNS), "text/csv; charset=utf-8")

        key = (registry_version(state), status_codes(state, cache.ids(state), live))
        return cache.get("cameras.csv", key, make)

    disposition = {"Content-Disposition": 'attachment; filename="cameras.csv"'}
    return respond(request, _view(request).use(every), disposition)


@router.get("/public/entries.csv", summary="The log's entries by type and time (index, type, time)")
def entries_csv(
    request: Request,
    kind: str = Query(default="", alias="type", max_length=64),
    from_: str = Query(default="", alias="from", max_length=40),
    to: str = Query(default="", max_length=40),
) -> Response:
    view = _view(request)
    f = _when(from_, "from time") if from_ else None
    t = _when(to, "to time") if to else None

    index = view.entries
    found = view.use(
        lambda _s, _sn: index.find(kind=kind or None, from_ms=f, to_ms=t, limit=1 << 62)
    )

    def lines() -> Iterator[bytes]:
        # Streamed a chunk at a time: a whole log of a million entries is never one string.
        # The index only grows, so the entries found stay as they were read.
        yield b"index,type,time\r\n"
        for start in range(0, len(found.indexes), 10_000):
            rows = [_row(index, i) for i in found.indexes[start : start + 10_000]]
            out = [{"index": r["index"], "type": r["kind"], "time": r["time"]} for r in rows]
            yield to_csv(out, ["index", "type", "time"]).split(b"\r\n", 1)[1]

    disposition = {"Content-Disposition": 'attachment; filename="entries.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=disposition)
