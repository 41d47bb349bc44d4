"""Finding things in the public log: the camera list and search, a page per camera, the
log's entries by type and time, and one entry with its inclusion proof in words (their
CSV downloads are in :mod:`custodes.web.routes.downloads`).

Every page here only reads: the public view (:class:`~custodes.web.public.PublicView`,
up to the public checkpoint), the fleet's live status and, for a camera's recording
timeline, the fleet's query of that camera.  Filters are query parameters, so a
search is a link that can be kept and shared.  What is shown is what the public log
holds: commitments for sealed details, pseudonyms for people.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from custodes.errors import CustodesError, FormatError, ProofError
from custodes.fleet.model import format_time, now_ms
from custodes.reports.figures import Districts
from custodes.reports.replay import PublicState
from custodes.tlog import check_inclusion, leaf_hash
from custodes.web.entry_index import CAMERA_TYPES, EntryIndex
from custodes.web.map_data import registry_version
from custodes.web.public import (
    STATUS_LABELS,
    PublicView,
    Snapshot,
    camera_feature,
    outage_item,
)
from custodes.web.routes.dashboard import _local, _page, _view, _when
from custodes.web.routes.map import _live_codes

__all__ = ["filter_cameras", "proof_steps", "router"]

router = APIRouter(tags=["public"])
PER_PAGE = 50
STATUS_CHOICES = ("recording", "silent", "unknown", "retired")
TIMELINE_MAX_DAYS = 2


def _page_no(text: str) -> int:
    try:
        n = int(text) if text else 1
    except ValueError:
        raise FormatError(f"the page {text!r} must be a whole number such as 2") from None
    if n < 1:
        raise FormatError("the page must be 1 or more")
    return n


def _status_of(cam: dict[str, Any], live: str | None) -> str:
    if cam.get("status") == "retired":
        return "retired"
    return "recording" if live == "up" else (live or "unknown")


@dataclass(frozen=True)
class _Search:
    """What a camera search reads, built once per registry change: the cameras by id, each
    with its district and its words (id, address, district, operator, zone) in one string."""

    version: tuple[int, ...]
    where: Districts
    ids: list[str]
    districts: list[str]
    words: list[str]
    folded: dict[str, str]  # an id in any case -> the id


_SEARCH: dict[int, _Search] = {}


def _search(state: PublicState) -> _Search:
    version = registry_version(state)
    kept = _SEARCH.get(id(state))
    if kept is not None and kept.version == version:
        return kept
    where = Districts(state)
    names = {d: str(v.get("name") or d) for d, v in state.districts.items()}
    ids = sorted(state.cameras)
    dists, words = [], []
    for cid in ids:
        cam = state.cameras[cid]
        dist = where.of(cam)
        dists.append(dist)
        words.append(" ".join(str(x) for x in (cid, cam.get("name") or "", names.get(dist, dist),
                     cam.get("operator") or "", cam.get("zone") or "")).casefold())  # fmt: skip
    _SEARCH.clear()
    folded = {cid.casefold(): cid for cid in ids}
    kept = _SEARCH[id(state)] = _Search(version, where, ids, dists, words, folded)
    return kept


def districts_of(state: PublicState) -> Districts:
    """Which district each camera is in (as the coverage figures count it), kept per registry."""
    return _search(state).where


def find_cameras(
    state: PublicState,
    live: Callable[[], dict[str, str]],
    q: str,
    status: str,
    district: str,
) -> list[str]:
    """The ids of the cameras whose id, name (address), district or operator holds ``q``
    (any case), with ``status`` and in ``district`` when given; by id, an exact id first.

    ``live`` gives the fleet's status of every camera; it is asked only for a status filter.
    """
    if status and status not in STATUS_CHOICES:
        raise FormatError(f"the status {status!r} must be one of {', '.join(STATUS_CHOICES)}")
    if district and district not in state.districts and district != "outside":
        raise FormatError(f"there is no district {district!r} in the public log")
    needle = q.strip().casefold()
    idx = _search(state)
    if not needle and not district:
        out = list(idx.ids)
    else:
        out = [
            cid
            for cid, dist, words in zip(idx.ids, idx.districts, idx.words, strict=True)
            if (not district or dist == district) and (not needle or needle in words)
        ]
    if status:
        codes = live()
        cams = state.cameras
        out = [c for c in out if _status_of(cams[c], codes.get(c)) == status]
    exact = idx.folded.get(needle) if needle else None
    if exact is not None and exact in out:
        out.remove(exact)
        out.insert(0, exact)
    return out


def camera_rows(state: PublicState, live: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
    """One row a camera, as the camera list and its CSV show it."""
    names = {d: str(v.get("name") or d) for d, v in state.districts.items()}
    where = districts_of(state)
    out = []
    for cid in ids:
        cam = state.cameras[cid]
        st = _status_of(cam, live.get(cid))
        dist = where.of(cam)
        out.append(
            {
                "id": cid,
                "status": st,
                "status_label": STATUS_LABELS.get(st, st),
                "name": cam.get("name"),
                "district": dist,
                "district_name": names.get(dist, dist),
                "operator": cam.get("operator"),
                "lat": cam.get("lat"),
                "lon": cam.get("lon"),
                "registered": cam.get("registered"),
                "retired": cam.get("retired"),
                "index": cam.get("index"),
            }
        )
    return out


def filter_cameras(
    state: PublicState, live: dict[str, str], q: str, status: str, district: str
) -> list[dict[str, Any]]:
    """The rows of :func:`find_cameras`' cameras (for the downloads)."""
    return camera_rows(state, live, find_cameras(state, lambda: live, q, status, district))


LIVE_MAX_AGE_S = 5.0
"""How old the fleet's statuses behind a status filter may be (as the map's status digits)."""


def live_all(request: Request) -> dict[str, str]:
    """Every camera's fleet status, read at most once every few seconds."""
    kept: tuple[float, dict[str, str]] | None = getattr(request.app.state, "find_live", None)
    now = time.monotonic()
    if kept is None or now - kept[0] > LIVE_MAX_AGE_S:
        kept = (now, _live_codes(request))
        request.app.state.find_live = kept
    return kept[1]


def live_some(request: Request, ids: list[str]) -> dict[str, str]:
    """The fleet's status of a few cameras."""
    st = getattr(request.app.state, "fleet", None)
    if st is None or not ids:
        return {}
    sql = f"SELECT id, status FROM cameras WHERE id IN ({','.join('?' * len(ids))})"
    rows = st.svc.read(lambda _log: st.db.conn.execute(sql, ids).fetchall())
    return {str(cid): str(status) for cid, status in rows}


def _camera_query(q: str, status: str, district: str) -> str:
    return urlencode({k: v for k, v in (("q", q), ("status", status), ("district", district)) if v})


@router.get("/cameras", response_class=HTMLResponse, include_in_schema=False)
def cameras_page(
    request: Request,
    q: str = Query(default="", max_length=200),
    status: str = Query(default="", max_length=20),
    district: str = Query(default="", max_length=128),
    page: str = Query(default="1", max_length=12),
) -> HTMLResponse:
    error = None
    view = _view(request)
    try:
        n = _page_no(page)
        found, districts, snap = view.use(
            lambda state, snap: (
                find_cameras(state, lambda: live_all(request), q, status, district),
                {d: str(v.get("name") or d) for d, v in sorted(state.districts.items())},
                snap,
            )
        )
    except FormatError as err:
        error, n, found = str(err), 1, []
        districts, snap = view.use(
            lambda state, snap: (
                {d: str(v.get("name") or d) for d, v in sorted(state.districts.items())},
                snap,
            )
        )
    shown = found[(n - 1) * PER_PAGE : n * PER_PAGE]
    live = live_some(request, shown)
    rows = view.use(lambda state, _snap: camera_rows(state, live, shown))
    pages = max(1, math.ceil(len(found) / PER_PAGE))
    query = _camera_query(q, status, district)
    return _page(
        request,
        "cameras.html",
        status_code=400 if error else 200,
        error=error,
        form={"q": q, "status": status, "district": district},
        statuses=STATUS_CHOICES,
        labels=STATUS_LABELS,
        districts=districts,
        rows=rows,
        total=len(found),
        page=n,
        pages=pages,
        query=query,
        snap=snap,
    )


def _camera_events(state: PublicState, index: EntryIndex, cid: str) -> list[dict[str, Any]]:
    """The entries naming camera ``cid``, oldest first, each with its type, time and words."""
    events = []
    outages = state.outages  # in log order
    for i in index.by_camera.get(cid, []):
        kind = index.kind(i)
        t = index.time(i)
        item: dict[str, Any] = {"index": i, "kind": kind,
                                "time": format_time(t) if t is not None else None}  # fmt: skip
        at = bisect.bisect_left(outages, i, key=lambda ev: int(ev["index"]))
        if at < len(outages) and outages[at]["index"] == i:
            shown = outage_item(outages[at])
            item["detail"] = shown["detail"]
            item["late"] = shown["late"]
        events.append(item)
    return events


def _history_detail(state: PublicState, ev: dict[str, Any], cid: str) -> str:
    kind = ev["kind"]
    if kind == "camera.registered":
        return "registered in the public registry"
    if kind == "camera.retired":
        reason = state.cameras.get(cid, {}).get("retired_reason")
        return "retired" + (f": {reason}" if reason else "")
    if kind == "access.disclosed":
        return "named in a disclosed footage request (its window and cameras are public now)"
    return "its record changed"


@router.get("/cameras/{cid}", response_class=HTMLResponse, include_in_schema=False)
async def camera_page(
    request: Request,
    cid: str,
    from_: str = Query(default="", alias="from", max_length=40),
    to: str = Query(default="", max_length=40),
) -> HTMLResponse:
    view: PublicView = _view(request)
    live = live_some(request, [cid])

    def build(state: PublicState, snap: Snapshot | None) -> dict[str, Any] | None:
        cam = state.cameras.get(cid)
        if cam is None:
            return None
        events = _camera_events(state, view.entries, cid)
        for ev in events:
            if ev["kind"] in ("camera.registered", "camera.changed", "camera.retired",
                              "access.disclosed"):  # fmt: skip
                ev["detail"] = _history_detail(state, ev, cid)
        dist = districts_of(state).of(cam)
        return {
            "feature": camera_feature(cid, cam, live.get(cid)),
            "district": (state.districts.get(dist) or {}).get("name", dist),
            "history": [e for e in events if e["kind"].startswith("camera.registered")
                        or e["kind"] in ("camera.changed", "camera.retired", "access.disclosed")],
            "outages": [e for e in events if e["kind"] not in ("camera.registered",
                        "camera.changed", "camera.retired", "access.disclosed")],
            "last_ms": state.last_ms,
            "snap": snap,
        }  # fmt: skip

    found = view.use(build)
    if found is None:
        return _page(request, "camera.html", status_code=404, cam=None, cid=cid, snap=None,
                     error=f"There is no camera {cid!r} in the public log; search the"
                           " camera list for it.")  # fmt: skip
    error = None
    timeline = None
    end = found["last_ms"] or now_ms()
    try:
        t = _when(to, "to time") if to else end
        f = _when(from_, "from time") if from_ else t - 86400_000
        if t <= f:
            raise FormatError("the window must end after it starts")
        if t - f > TIMELINE_MAX_DAYS * 86400_000:
            raise FormatError(f"the window may span at most {TIMELINE_MAX_DAYS} days")
    except FormatError as err:
        error = str(err)
        t, f = end, end - 86400_000
    timeline = await run_in_threadpool(_timeline, request, cid, f, t)
    return _page(
        request,
        "camera.html",
        status_code=400 if error else 200,
        cam=found["feature"],
        cid=cid,
        district=found["district"],
        history=found["history"],
        outages=found["outages"],
        timeline=timeline,
        form={"from": _local(format_time(f)), "to": _local(format_time(t))},
        error=error,
        snap=found["snap"],
    )


def _timeline(request: Request, cid: str, f: int, t: int) -> dict[str, Any]:
    """When the fleet heard the camera and which segments it logged over ``[f, t)``."""
    from custodes.fleet.query import camera_status

    data = request.app.state.ledger.instance.path
    try:
        st = camera_status(data, cid, f, t)
    except CustodesError as err:
        return {"error": f"The recording timeline is not available here: {err}"}
    span = max(1, t - f)

    def bars(ranges: list[dict[str, str]]) -> list[dict[str, Any]]:
        out = []
        for r in ranges:
            a, b = max(f, _when(r["from"], "from")), min(t, _when(r["to"], "to"))
            out.append({**r, "x": round(100 * (a - f) / span, 3),
                        "w": max(0.2, round(100 * (b - a) / span, 3))})  # fmt: skip
        return out

    segs = st["segments"]
    return {
        "from": st["from"],
        "to": st["to"],
        "interval_s": st["interval_s"],
        "intervals": st["intervals"],
        "heard_count": st["intervals_heard"],
        "heard": bars(st["heard"]),
        "not_heard": bars(st["not_heard"]),
        "segments": len(segs),
        "segments_verified": sum(1 for s in segs if s.get("verified")),
        "segment_entries": sorted({s["log_index"] for s in segs if "log_index" in s}),
    }


# -- the log's entries -------------------------------------------------------------------


@router.get("/log/entries", response_class=HTMLResponse, include_in_schema=False)
def entries_page(
    request: Request,
    kind: str = Query(default="", alias="type", max_length=64),
    from_: str = Query(default="", alias="from", max_length=40),
    to: str = Query(default="", max_length=40),
    page: str = Query(default="1", max_length=12),
) -> HTMLResponse:
    view = _view(request)
    error = None
    rows: list[dict[str, Any]] = []
    total = 0
    try:
        n = _page_no(page)
        f = _when(from_, "from time") if from_ else None
        t = _when(to, "to time") if to else None
        if f is not None and t is not None and t <= f:
            raise FormatError("the window must end after it starts")
    except FormatError as err:
        error, n, f, t = str(err), 1, None, None

    def build(state: PublicState, snap: Snapshot | None) -> tuple[Any, ...]:
        counts = view.entries.counts()
        if kind and kind not in counts:
            raise FormatError(f"the public log holds no entry of type {kind!r}")
        found = view.entries.find(kind=kind or None, from_ms=f, to_ms=t,
                                  offset=(n - 1) * PER_PAGE, limit=PER_PAGE)  # fmt: skip
        return counts, found, snap

    counts, found, snap = view.use(lambda s, sn: (view.entries.counts(), None, sn))
    if error is None:
        try:
            counts, found, snap = view.use(build)
        except FormatError as err:
            error = str(err)
    if found is not None:
        total = found.total
        rows = [_row(view.entries, i) for i in found.indexes]
    query = urlencode({k: v for k, v in (("type", kind), ("from", from_), ("to", to)) if v})
    return _page(
        request,
        "entries.html",
        status_code=400 if error else 200,
        error=error,
        counts=counts,
        form={"type": kind, "from": _local(from_), "to": _local(to)},
        rows=rows,
        total=total,
        page=n,
        pages=max(1, math.ceil(total / PER_PAGE)),
        query=query,
        snap=snap,
    )


def _row(index: EntryIndex, i: int) -> dict[str, Any]:
    t = index.time(i)
    kind = index.kind(i)
    return {"index": i, "kind": kind, "time": format_time(t) if t is not None else "",
            "names_cameras": kind in CAMERA_TYPES}  # fmt: skip


def proof_steps(leaf: bytes, index: int, size: int, proof: list[bytes]) -> list[dict[str, Any]]:
    """RFC 9162 §2.1.3.2 step by step: for each proof hash, on which side it is joined and
    the hash that results (the last one must be the checkpoint's root)."""
    fn, sn, r = index, size - 1, leaf
    steps = []
    for p in proof:
        if sn == 0:
            break
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            side = "left"
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
            side = "right"
        fn >>= 1
        sn >>= 1
        steps.append({"hash": p.hex(), "side": side, "result": r.hex()})
    return steps


@router.get("/log/entries/{index}", response_class=HTMLResponse, include_in_schema=False)
def entry_page(request: Request, index: str) -> HTMLResponse:
    svc = request.app.state.ledger
    snap: Snapshot | None = _view(request).use(lambda _s, sn: sn)
    if not index.isdigit() or len(index) > 19:
        error = f"The entry number {index!r} must be a whole number such as 12."
        return _page(request, "entry.html", status_code=400, snap=snap, entry=None, error=error)
    i = int(index)
    if snap is None or i >= snap.size:
        size = snap.size if snap else 0
        error = f"Entry {i} is not covered by the public checkpoint (size {size}) yet."
        return _page(request, "entry.html", status_code=404, snap=snap, entry=None, error=error)
    raw: bytes = bytes(svc.read(lambda r: r.store.read_entries(i, i + 1)[0]))
    proof: list[bytes] = svc.read(lambda r: r.inclusion_proof(i, snap.size))
    leaf = leaf_hash(raw)
    root = base64.b64decode(snap.root)
    try:
        check_inclusion(proof, index=i, size=snap.size, leaf=leaf, root=root)
        verified, why = True, ""
    except ProofError as err:
        verified, why = False, str(err)
    try:
        obj = json.loads(raw)
        shown = json.dumps(obj, indent=2, ensure_ascii=False)
    except ValueError:
        obj, shown = None, raw.decode("utf-8", "replace")
    from custodes.web.entry_index import cameras_named

    cams = cameras_named(obj) if isinstance(obj, dict) else []
    return _page(
        request,
        "entry.html",
        snap=snap,
        entry={
            "index": i,
            "kind": obj.get("type") if isinstance(obj, dict) else None,
            "time": obj.get("time") if isinstance(obj, dict) else None,
            "json": shown,
            "bytes": len(raw),
            "cameras": cams,
        },
        leaf=leaf.hex(),
        steps=proof_steps(leaf, i, snap.size, proof),
        verified=verified,
        why=why,
        root_hex=root.hex(),
        error=None,
    )
