"""The camera map's data: compact columns, status digits, one camera's record, the download.

See :mod:`custodes.web.map_data` for the formats and the caching.  The map page
reads ``/public/map/cameras.json`` and ``/public/map/status.json``, and a
camera's record (``/public/cameras/{id}.json``) when its popup opens; the
GeoJSON of every camera with its record and view cone is a download for people
who want it, built once per registry and status change.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from custodes.errors import NotFoundError
from custodes.reports.replay import PublicState
from custodes.web.map_data import (
    STATUSES,
    Body,
    compact_cameras,
    dumps,
    registry_version,
    respond,
    status_codes,
)
from custodes.web.public import Snapshot, camera_feature, camera_features
from custodes.web.routes.dashboard import _cache, _checkpoint, _geojson, _view

__all__ = ["router"]

router = APIRouter(tags=["public"])


def _live_codes(request: Request) -> dict[str, str]:
    """The same as :func:`_live_status`, read as two columns (no record parsed)."""
    st = getattr(request.app.state, "fleet", None)
    if st is None:
        return {}
    sql = "SELECT id, status FROM cameras"
    rows = st.svc.read(lambda _log: st.db.conn.execute(sql).fetchall())
    return {str(cid): str(status) for cid, status in rows}


def _live_one(request: Request, cid: str) -> str | None:
    st = getattr(request.app.state, "fleet", None)
    if st is None:
        return None
    sql = "SELECT status FROM cameras WHERE id = ?"
    row = st.svc.read(lambda _log: st.db.conn.execute(sql, (cid,)).fetchone())
    return None if row is None else str(row[0])


@router.get(
    "/public/cameras.geojson", summary="Every camera: record, status and view cone (a download)"
)
def cameras_geojson(
    request: Request,
    q: str = Query(default="", max_length=200),
    status: str = Query(default="", max_length=20),
    district: str = Query(default="", max_length=128),
) -> Response:
    """Every camera; with ``q``, ``status`` or ``district`` (as on ``/cameras``), those found."""
    live = _live_codes(request)
    if q or status or district:
        from custodes.web.routes.find import filter_cameras

        def found(state: PublicState, snap: Snapshot | None) -> dict[str, Any]:
            ids = [c["id"] for c in filter_cameras(state, live, q, status, district)]
            feats = [camera_feature(c, state.cameras[c], live.get(c)) for c in ids]
            return {"type": "FeatureCollection", "features": feats, "checkpoint": _checkpoint(snap)}

        return _geojson(_view(request).use(found))

    def build(state: PublicState, snap: Snapshot | None) -> Body:
        def make() -> Body:
            doc = {**camera_features(state, live), "checkpoint": _checkpoint(snap)}
            return Body.of(dumps(doc), "application/geo+json")

        key = (registry_version(state), status_codes(state, _cache(request).ids(state), live))
        return _cache(request).get("cameras.geojson", key, make)

    return respond(request, _view(request).use(build))


@router.get("/public/map/cameras.json", summary="The map's cameras, as compact columns")
def map_cameras(request: Request) -> Response:
    def build(state: PublicState, snap: Snapshot | None) -> Body:
        def make() -> Body:
            doc = compact_cameras(state, _checkpoint(snap))
            doc["version"] = "-".join(map(str, registry_version(state)))
            return Body.of(dumps(doc), "application/json")

        return _cache(request).get("map-cameras", registry_version(state), make)

    return respond(request, _view(request).use(build))


STATUS_MAX_AGE_S = 5.0
"""How old the map's status digits may be before they are rebuilt (in the background)."""


@router.get("/public/map/status.json", summary="Each camera's status, one digit a camera")
def map_status(request: Request) -> Response:
    cache, view = _cache(request), _view(request)
    version = view.use(lambda state, _snap: "-".join(map(str, registry_version(state))))

    def make() -> Body:
        live = _live_codes(request)  # read outside the view's lock: it takes a while

        def digits(state: PublicState, _snap: Snapshot | None) -> dict[str, Any]:
            codes = status_codes(state, cache.ids(state), live)
            return {"version": "-".join(map(str, registry_version(state))), "codes": codes}

        doc = {**view.use(digits), "statuses": list(STATUSES)}
        return Body.of(dumps(doc), "application/json")

    return respond(request, cache.get_fresh("map-status", version, make, STATUS_MAX_AGE_S))


@router.get("/public/cameras/{cid}.json", summary="One camera: record, status and view cone")
def camera_json(request: Request, cid: str) -> Response:
    live = _live_one(request, cid)

    def build(state: PublicState, snap: Snapshot | None) -> dict[str, Any]:
        cam = state.cameras.get(cid)
        if cam is None:
            raise NotFoundError(f"no camera {cid!r} in the public log")
        return {**camera_feature(cid, cam, live), "checkpoint": _checkpoint(snap)}

    return _geojson(_view(request).use(build))
