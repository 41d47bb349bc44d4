"""The public dashboard: the camera map, coverage, outages, access statistics, "who looked?"
and the log.

Every page needs no login and is computed from the public log only (a
:class:`~custodes.web.public.PublicView`), up to the checkpoint that
``/log/checkpoint`` serves; each page names that checkpoint.  The camera
statuses on the map (recording, silent) come from the fleet's live state.
Nothing is loaded from another host: Leaflet and htmx are served from
``/static/vendor/``, and the map draws on a plain background unless a tile
URL is configured (``custodes serve --tiles URL``, ``$CUSTODES_TILE_URL`` or
``tile_url`` in ``DIR/custodes.json``).  The demo city, whose streets are made
up, draws its own (``/public/basemap.geojson``, :mod:`custodes.web.basemap`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from custodes.errors import CustodesError, FormatError, NotFoundError, UsageError
from custodes.fleet.model import format_time, now_ms, parse_time
from custodes.geo.coverage import place_coverage
from custodes.reports.figures import coverage, place_categories
from custodes.reports.replay import PublicState
from custodes.web.map_data import (
    Body,
    BodyCache,
    dumps,
    registry_version,
    respond,
)
from custodes.web.public import (
    PublicView,
    Snapshot,
    access_statistics,
    active_cameras,
    disclosure_policy,
    outage_chart,
    outage_timeline,
    who_looked,
)
from custodes.web.routes.custody import custody_on

__all__ = ["install", "router"]

router = APIRouter(tags=["public"])
STATIC = Path(__file__).resolve().parents[1] / "static"
INCIDENT_DAYS = 2
"""The incident query proves every segment in its window, so its window is kept short."""
PLACE_RADIUS_M = 100.0


def install(app: FastAPI) -> None:
    """Add the public view, the static files and the public pages to the app."""
    app.state.public = PublicView(app.state.ledger)
    app.state.map_cache = BodyCache()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    from custodes.web.routes.downloads import router as downloads_router
    from custodes.web.routes.find import router as find_router
    from custodes.web.routes.map import router as map_router
    from custodes.web.routes.reports import router as reports_router

    app.include_router(map_router)
    app.include_router(find_router)
    app.include_router(downloads_router)
    app.include_router(reports_router)


# -- helpers -----------------------------------------------------------------------------


def _view(request: Request) -> PublicView:
    view: PublicView = request.app.state.public
    return view


def _user(request: Request) -> Any:
    """The logged-in user, or None (also when no identity store is installed)."""
    if getattr(request.app.state, "identities", None) is None:
        return None
    from custodes.web.auth import current_user

    return current_user(request)


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from custodes.web.auth import TEMPLATES

    context.setdefault("user", _user(request))
    context.setdefault("path", request.url.path)
    html = TEMPLATES.get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


OSM_ATTRIBUTION = "© OpenStreetMap contributors"


def check_tile_url(url: str) -> str:
    """An XYZ tile URL as the map needs it: http(s), with ``{z}``, ``{x}`` and ``{y}``."""
    from urllib.parse import urlsplit

    u = url.strip()
    if urlsplit(u).scheme not in ("http", "https") or not urlsplit(u).hostname:
        raise UsageError(f"the tile URL {u!r} must start with http:// or https:// and name a host")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in u]
    if missing:
        raise UsageError(f"the tile URL {u!r} lacks {', '.join(missing)} (an XYZ template)")
    return u


def tile_settings(data: Path) -> dict[str, str | None]:
    """The map's tile layer: None by default (a plain background, nothing leaves the host).

    ``custodes serve --tiles URL`` (or ``$CUSTODES_TILE_URL``) comes first, then
    ``tile_url`` and ``tile_attribution`` in ``DIR/custodes.json``.  A URL that
    is not an XYZ template is ignored here (``serve`` refuses it).
    """
    url = os.environ.get("CUSTODES_TILE_URL") or None
    attribution = os.environ.get("CUSTODES_TILE_ATTRIBUTION") or None
    if url is None:
        try:
            cfg = json.loads((data / "custodes.json").read_bytes())
        except (OSError, ValueError):
            cfg = {}
        if isinstance(cfg, dict) and isinstance(cfg.get("tile_url"), str):
            url = cfg["tile_url"]
            attr = cfg.get("tile_attribution")
            attribution = attr if isinstance(attr, str) else None
    if url is not None:
        try:
            url = check_tile_url(url)
        except UsageError:
            url = attribution = None
    if url and not attribution and "openstreetmap.org" in url:
        attribution = OSM_ATTRIBUTION
    return {"url": url, "attribution": attribution}


def synthetic_city(data: Path) -> bool:
    """Whether this instance is the demo city (``custodes demo``), whose streets are made up."""
    return (data / "demo" / "agents.json").is_file()


def _basemap(data: Path, tiles: dict[str, str | None]) -> str:
    """The URL of the demo city's own street plan, when it has no tile layer; else ''."""
    return "/public/basemap.geojson" if tiles["url"] is None and synthetic_city(data) else ""


def _live_status(request: Request) -> dict[str, str]:
    """Camera id -> the fleet's current status (``up``, ``silent`` or ``unknown``)."""
    st = getattr(request.app.state, "fleet", None)
    if st is None:
        return {}
    step = st.settings.interval_s * 1000
    rows = st.svc.read(lambda _log: st.db.cameras(include_retired=True, step_ms=step))
    return {r["camera"]["id"]: r["status"] for r in rows}


def _cache(request: Request) -> BodyCache:
    cache: BodyCache = request.app.state.map_cache
    return cache


def _checkpoint(snap: Snapshot | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    return {"size": snap.size, "root": snap.root, "root_hex": snap.root_hex, "origin": snap.origin}


def _coverage(state: PublicState) -> dict[str, Any]:
    """The published coverage figures (as in the transparency report) and the camera count."""
    return {
        "districts": coverage(state),
        "categories": place_categories(state, PLACE_RADIUS_M),
        "radius_m": PLACE_RADIUS_M,
        "cameras": len(active_cameras(state)),
    }


_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")


def _when(text: str, what: str) -> int:
    """A time from a form: RFC 3339, or a datetime-local value (read as UTC)."""
    t = text.strip()
    if _LOCAL.fullmatch(t):
        t = t.replace(" ", "T") + (":00Z" if len(t) == 16 else "Z")
    return parse_time(t, what)


def _window(from_: str, to: str, max_days: int = 31) -> tuple[int, int]:
    f, t = _when(from_, "from time"), _when(to, "to time")
    if t <= f:
        raise FormatError("the window must end after it starts")
    if t - f > max_days * 86400_000:
        raise FormatError(f"the window may span at most {max_days} days")
    return f, t


def _duration(seconds: int) -> str:
    """``30 days``, ``6 hours``, ``1 day``: the disclosure delay in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size, 1)
            text = f"{n:g}"
            return f"{text} {unit}" + ("" if text == "1" else "s")
    return f"{seconds} seconds"


def _place(lat: str, lon: str, radius: str) -> tuple[float, float, float]:
    try:
        la, lo, r = float(lat), float(lon), float(radius)
    except ValueError:
        raise FormatError("latitude, longitude and radius must be numbers") from None
    if not (-90 <= la <= 90 and -180 <= lo <= 180):
        raise FormatError("the latitude or longitude is out of range")
    if not 0 < r <= 5000:
        raise FormatError("the radius must be more than 0 and at most 5,000 metres")
    return la, lo, r


# -- pages -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def map_page(request: Request) -> HTMLResponse:
    def figures(state: PublicState, snap: Snapshot | None) -> dict[str, Any]:
        active = len(active_cameras(state))
        return {
            "cameras": active,
            "retired": len(state.cameras) - active,
            "districts": len(state.districts),
            "places": len(state.places),
            "requests": len(state.requests),
            "flags": len(state.flags),
            "snap": snap,
        }

    figs = _view(request).use(figures)
    svc = request.app.state.ledger
    settings = request.app.state.settings
    tiles = tile_settings(svc.instance.path)
    return _page(
        request,
        "map.html",
        figures=figs,
        snap=figs["snap"],
        tiles=tiles,
        basemap=_basemap(svc.instance.path, tiles),
        vkey=svc.instance.verifier_key,
        base=settings.public_url.rstrip("/"),
        custody=custody_on(request.app.state),  # off: the page says footage is unencrypted
    )


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/coverage", response_class=HTMLResponse, include_in_schema=False)
def coverage_page(request: Request) -> HTMLResponse:
    cov, snap = _view(request).use(lambda state, snap: (_coverage(state), snap))
    svc = request.app.state.ledger
    tiles = tile_settings(svc.instance.path)
    return _page(
        request,
        "coverage.html",
        cov=cov,
        snap=snap,
        tiles=tiles,
        basemap=_basemap(svc.instance.path, tiles),
    )


@router.get("/outages", response_class=HTMLResponse, include_in_schema=False)
async def outages_page(
    request: Request,
    lat: str = Query(default="", max_length=30),
    lon: str = Query(default="", max_length=30),
    radius: str = Query(default="300", max_length=20),
    from_: str = Query(default="", alias="from", max_length=40),
    to: str = Query(default="", max_length=40),
) -> HTMLResponse:
    timeline, chart, places, snap = _view(request).use(
        lambda state, snap: (
            outage_timeline(state),
            outage_chart(state, now_ms()),
            dict(state.places),
            snap,
        )
    )
    answer = error = download = None
    form = {"lat": lat, "lon": lon, "radius": radius, "from": _local(from_), "to": _local(to)}
    late: list[dict[str, Any]] = []
    if lat or lon or from_ or to:
        try:
            la, lo, r = _place(lat, lon, radius)
            f, t = _window(from_, to, INCIDENT_DAYS)
            from custodes.fleet.query import incident

            data = request.app.state.ledger.instance.path
            answer = await run_in_threadpool(incident, data, la, lo, r, f, t)
            download = "/public/incident.json?" + _query(la, lo, r, f, t)
        except CustodesError as err:
            error = str(err)
    total_events = len(timeline)
    if answer is not None:
        # The incident's cameras only: its timeline, its chart rows, its declarations.
        late = declarations(answer["flags"]["declared_late"])
        mine = {c["camera"]["id"] for c in answer["cameras"]}
        timeline = [ev for ev in timeline if mine.intersection(ev["cameras"])]
        if chart is not None:
            chart = {**chart, "rows": [r for r in chart["rows"] if r["camera"] in mine], "more": 0}
    return _page(
        request,
        "outages.html",
        status_code=400 if error else 200,
        timeline=timeline,
        total_events=total_events,
        chart=chart,
        places=places,
        snap=snap,
        form=form,
        answer=answer,
        late=late,
        error=error,
        download=download,
    )


def declarations(per_camera: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The incident's late declarations, one per log entry, each with the cameras it covers.

    The incident query lists a declaration once for every camera it covers; a
    person counts declarations, so six cameras under one declaration are one.
    """
    out: dict[Any, dict[str, Any]] = {}
    for d in per_camera:
        key = d.get("log_index", (d.get("kind"), d.get("declared_at"), d.get("from"), d.get("to")))
        row = out.setdefault(key, {**{k: v for k, v in d.items() if k != "camera"}, "cameras": []})
        if d.get("camera") not in row["cameras"]:
            row["cameras"].append(d.get("camera"))
    return list(out.values())


def _local(text: str) -> str:
    """A time as a datetime-local field shows it: ``2026-11-20T22:00:00Z`` -> ``2026-11-20T22:00``.

    Anything else (such as a mistyped value) is shown as it was typed.
    """
    t = text.strip()
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:(\d{2})(\.\d+)?)?Z?", t)
    if not m:
        return t
    secs = m.group(4)
    return f"{m.group(1)}T{m.group(2)}" + (f":{secs}" if secs and secs != "00" else "")


def _query(lat: float, lon: float, radius: float, f: int, t: int) -> str:
    from urllib.parse import urlencode

    return urlencode(
        {"lat": lat, "lon": lon, "radius": radius, "from": format_time(f), "to": format_time(t)}
    )


@router.get("/statistics", response_class=HTMLResponse, include_in_schema=False)
def statistics_page(request: Request) -> HTMLResponse:
    stats, snap = _view(request).use(lambda state, snap: (access_statistics(state), snap))
    return _page(request, "access.html", stats=stats, snap=snap)


@router.get("/looked", response_class=HTMLResponse, include_in_schema=False)
def looked_page(
    request: Request,
    lat: str = Query(default="", max_length=30),
    lon: str = Query(default="", max_length=30),
    radius: str = Query(default="100", max_length=20),
    from_: str = Query(default="", alias="from", max_length=40),
    to: str = Query(default="", max_length=40),
) -> HTMLResponse:
    form = {"lat": lat, "lon": lon, "radius": radius, "from": _local(from_), "to": _local(to)}
    answer = error = None
    if lat or lon or from_ or to:
        try:
            la, lo, r = _place(lat, lon, radius)
            f, t = _window(from_, to)
            answer, snap = _view(request).use(
                lambda state, snap: (who_looked(state, la, lo, r, f, t, now_ms()), snap)
            )
        except CustodesError as err:
            error = str(err)
    policy, places, snap = _view(request).use(
        lambda state, snap: (disclosure_policy(state), dict(state.places), snap)
    )
    return _page(
        request,
        "looked.html",
        status_code=400 if error else 200,
        form=form,
        answer=answer,
        error=error,
        snap=snap,
        delay=_duration(policy[0]),
        min_count=policy[1],
        places=places,
    )


@router.get("/verify", response_class=HTMLResponse, include_in_schema=False)
def log_page(request: Request) -> HTMLResponse:
    svc = request.app.state.ledger
    snap = _view(request).use(lambda _state, snap: snap)
    inst = svc.instance
    witnesses = [
        {"url": url, "name": vkey.split("+", 1)[0], "vkey": vkey} for url, vkey in inst.witnesses
    ]
    signed_by = set(snap.signers) if snap else set()
    for w in witnesses:
        w["cosigned"] = w["name"] in signed_by
    return _page(
        request,
        "log.html",
        snap=snap,
        vkey=inst.verifier_key,
        base=request.app.state.settings.public_url.rstrip("/"),
        witnesses=witnesses,
        quorum=inst.witness_quorum,
    )


# -- the data behind the pages, as JSON ------------------------------------------------


def _geojson(doc: dict[str, Any]) -> Response:
    return Response(
        json.dumps(doc, separators=(",", ":")).encode(), media_type="application/geo+json"
    )


@router.get(
    "/public/basemap.geojson", summary="The demo city's own streets and blocks (demo city only)"
)
def basemap_geojson(request: Request) -> Response:
    from custodes.web.basemap import street_plan

    if not synthetic_city(request.app.state.ledger.instance.path):
        raise NotFoundError("only the demo city draws its own streets; this map uses tiles or none")
    return _geojson(_view(request).use(lambda state, _snap: street_plan(state.districts)))


@router.get("/public/districts.geojson", summary="Districts with their coverage figures")
def districts_geojson(request: Request) -> Response:
    def build(state: PublicState, snap: Snapshot | None) -> dict[str, Any]:
        rows = {r["district"]: r for r in coverage(state)}
        feats = [
            {
                "type": "Feature",
                "id": d,
                "geometry": state.districts[d]["polygon"],
                "properties": rows[d],
            }
            for d in sorted(state.districts)
        ]
        return {"type": "FeatureCollection", "features": feats, "checkpoint": _checkpoint(snap)}

    def cached(state: PublicState, snap: Snapshot | None) -> Body:
        make = lambda: Body.of(dumps(build(state, snap)), "application/geo+json")  # noqa: E731
        return _cache(request).get("districts.geojson", registry_version(state), make)

    # Built once per registry change; the checkpoint named is the one it was built at.
    return respond(request, _view(request).use(cached))


@router.get("/public/places.geojson", summary="Categorised places and the cameras near each")
def places_geojson(request: Request) -> Response:
    def build(state: PublicState, snap: Snapshot | None) -> dict[str, Any]:
        rows = place_coverage(active_cameras(state), state.places, PLACE_RADIUS_M)
        feats = [
            {
                "type": "Feature",
                "id": r["place"],
                "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                "properties": {k: v for k, v in r.items() if k not in ("lat", "lon")},
            }
            for r in rows
        ]
        return {"type": "FeatureCollection", "features": feats, "checkpoint": _checkpoint(snap)}

    def cached(state: PublicState, snap: Snapshot | None) -> Body:
        make = lambda: Body.of(dumps(build(state, snap)), "application/geo+json")  # noqa: E731
        return _cache(request).get("places.geojson", registry_version(state), make)

    # Built once per registry change; the checkpoint named is the one it was built at.
    return respond(request, _view(request).use(cached))


@router.get("/public/coverage.json", summary="Cameras per district and per category of place")
def coverage_json(request: Request) -> dict[str, Any]:
    return _view(request).use(
        lambda state, snap: {**_coverage(state), "checkpoint": _checkpoint(snap)}
    )


@router.get("/public/statistics.json", summary="Access requests and decisions, and anomaly flags")
def statistics_json(request: Request) -> dict[str, Any]:
    return _view(request).use(
        lambda state, snap: {**access_statistics(state), "checkpoint": _checkpoint(snap)}
    )


@router.get("/public/outages.json", summary="The outage timeline, newest first")
def outages_json(request: Request) -> dict[str, Any]:
    return _view(request).use(
        lambda state, snap: {"outages": outage_timeline(state), "checkpoint": _checkpoint(snap)}
    )


@router.get("/public/looked.json", summary="Who looked at this place and time?")
def looked_json(
    request: Request,
    lat: str = Query(max_length=30),
    lon: str = Query(max_length=30),
    radius: str = Query(default="100", max_length=20),
    from_: str = Query(alias="from", max_length=40),
    to: str = Query(max_length=40),
) -> Any:
    try:
        la, lo, r = _place(lat, lon, radius)
        f, t = _window(from_, to)
    except FormatError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    return _view(request).use(
        lambda state, snap: {
            **who_looked(state, la, lo, r, f, t, now_ms()),
            "checkpoint": _checkpoint(snap),
        }
    )


@router.get("/public/incident.json", summary="The incident query with its proofs, to download")
async def incident_json(
    request: Request,
    lat: str = Query(max_length=30),
    lon: str = Query(max_length=30),
    radius: str = Query(default="300", max_length=20),
    from_: str = Query(alias="from", max_length=40),
    to: str = Query(max_length=40),
) -> Any:
    from custodes.fleet.query import incident

    try:
        la, lo, r = _place(lat, lon, radius)
        f, t = _window(from_, to, INCIDENT_DAYS)
    except FormatError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    data = request.app.state.ledger.instance.path
    rep = await run_in_threadpool(incident, data, la, lo, r, f, t)
    name = f"incident-{format_time(f)[:10]}.json"
    return Response(
        json.dumps(rep, indent=2).encode(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
