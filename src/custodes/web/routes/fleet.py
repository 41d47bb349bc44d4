"""The fleet over HTTP: agents' heartbeats and segment digests in, the registry out.

Agents authenticate with ``Authorization: Bearer <token>`` (from
``custodes agents add``).  A batch is checked item by item: good items are
kept, and the answer lists each refused item with the reason, so an agent
never resends good data because of one bad item.  A batch larger than
``max_batch`` items, or a body over 32 MiB, is refused whole (HTTP 413).
Re-sending a segment already logged changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from custodes.errors import FormatError
from custodes.fleet.archive import open_archive
from custodes.fleet.heard import close_intervals, record_heartbeats
from custodes.fleet.model import format_time, now_ms, parse_time
from custodes.fleet.ops import FleetSettings, catch_up, ingest_segments, pseudonym, token_id
from custodes.fleet.registry import AgentRow, FleetDB
from custodes.ledger.log import Log
from custodes.web.service import LedgerService

__all__ = ["install", "router"]

router = APIRouter(prefix="/fleet", tags=["fleet"])
MAX_BODY = 32 << 20
_log = logging.getLogger("custodes.fleet")


class FleetState:
    """fleet.db opened by the server (the log's writer), and the interval closer."""

    def __init__(self, svc: LedgerService) -> None:
        self.svc = svc
        self.settings = FleetSettings.load(svc.instance.path)
        self.db = FleetDB.for_instance(svc.instance.path)
        self.archive = open_archive(svc.instance.path)
        self._tokens: dict[str, AgentRow] = {}
        self._pseudonyms: dict[str, str] = {}
        self._stop = threading.Event()
        self.clock = _clock()
        svc.write(lambda log: catch_up(log, self.db))
        tick = min(1.0, self.settings.interval_s / 4)
        self._thread = threading.Thread(target=self._run, args=(tick,), daemon=True, name="fleet")
        self._thread.start()

    def _run(self, tick: float) -> None:
        while not self._stop.wait(tick):
            if self.svc.closed:
                break
            try:
                self.svc.write(
                    lambda log: close_intervals(log, self.db, self.settings, now=self.clock())
                )
            except Exception:
                if self.svc.closed:
                    break
                _log.exception("closing fleet intervals failed; retrying")

    def agent(self, header: str | None) -> AgentRow | None:
        """The agent whose bearer token is in ``header`` (not revoked), or None."""
        if not header or not header.startswith("Bearer "):
            return None
        parsed = token_id(header[7:].strip())
        if parsed is None:
            return None
        if parsed[1] in self._tokens:
            return self._tokens[parsed[1]]

        def look(_log: Log) -> AgentRow | None:
            stored = self.db.agent_hash(parsed[0])
            if stored is None or not hmac.compare_digest(stored[0], parsed[1]):
                return None
            return self.db.agent(parsed[0])

        row = self.svc.read(look)
        if row is not None:
            self._tokens[parsed[1]] = row
            self._pseudonyms.setdefault(row.id, "")
        return row

    def pseudonym(self, agent: str) -> str:
        """The agent's pseudonym (a keyed hash; the writer thread makes the key once)."""
        known = self._pseudonyms.get(agent)
        if not known:
            known = pseudonym(self.db, agent)
            self._pseudonyms[agent] = known
        return known

    def forget_tokens(self) -> None:
        """After a binding changes or an agent is revoked: look every token up again."""
        self._tokens.clear()

    def outside(self, row: AgentRow, cameras: list[str]) -> str | None:
        """The one-sentence refusal when any of ``cameras`` is outside the agent's binding."""
        districts, known = self.db.districts(), self.db.seq_map()
        # Cameras not in the registry are refused item by item, as before.
        bad = sorted({c for c in cameras if c in known and not row.may_act_for(c, districts)})
        if not bad:
            return None
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        return f"this agent is not bound to camera {shown}, so nothing in the request was kept"


class _Outside(Exception):
    pass


def _clock() -> Callable[[], int]:
    """The fleet's clock: real time, unless ``custodes simulate`` set CUSTODES_SIM_CLOCK.

    The simulator runs hours of a synthetic city in minutes; it writes its
    simulated time (8 bytes, milliseconds) into the file that variable names.
    """
    path = os.environ.get("CUSTODES_SIM_CLOCK")
    if not path:
        return now_ms

    def simulated() -> int:
        with open(path, "rb") as f:
            return int.from_bytes(f.read(8), "big")

    return simulated


def install(app: FastAPI) -> None:
    """Open fleet.db and start closing intervals; called by ``create_app``."""
    app.state.fleet = FleetState(app.state.ledger)


def _state(request: Request) -> FleetState:
    st: FleetState | None = getattr(request.app.state, "fleet", None)
    if st is None:
        st = FleetState(request.app.state.ledger)
        request.app.state.fleet = st
    return st


async def _auth(
    request: Request, st: FleetState, roles: tuple[str, ...]
) -> AgentRow | JSONResponse:
    row = await run_in_threadpool(st.agent, request.headers.get("authorization"))
    if row is None:
        return JSONResponse(
            {"error": "a valid agent token is required (Authorization: Bearer TOKEN)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if row.role not in roles:
        return JSONResponse({"error": f"this needs an {' or '.join(roles)} token"}, 403)
    return row


async def _refused(request: Request, st: FleetState, roles: tuple[str, ...]) -> JSONResponse | None:
    row = await _auth(request, st, roles)
    return row if isinstance(row, JSONResponse) else None


async def _operator_json(request: Request, st: FleetState) -> Any:
    """The request's JSON body if an operator sent it; otherwise the refusal to return."""
    refused = await _refused(request, st, ("operator",))
    if refused is not None:
        return refused
    return await _json(request)


async def _json(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        return JSONResponse({"error": "the request body is larger than 32 MiB"}, status_code=413)
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"error": "the request body is larger than 32 MiB"}, status_code=413)
    try:
        return json.loads(body)
    except ValueError:
        return JSONResponse({"error": "the request body is not JSON"}, status_code=400)


async def _batch(
    request: Request, key: str, st: FleetState
) -> tuple[list[Any], AgentRow] | JSONResponse:
    row = await _auth(request, st, ("recorder", "operator"))
    if isinstance(row, JSONResponse):
        return row
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        return JSONResponse({"error": "the request body is larger than 32 MiB"}, status_code=413)
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"error": "the request body is larger than 32 MiB"}, status_code=413)
    try:
        doc = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return JSONResponse({"error": f"the body must be an object with a list {key!r}"}, 400)
    if len(items) > st.settings.max_batch:
        return JSONResponse(
            {
                "error": f"the batch holds {len(items)} {key}; send at most"
                f" {st.settings.max_batch} per request"
            },
            status_code=413,
        )
    return items, row


def _cameras_of(items: list[Any]) -> list[str]:
    return [i["camera"] for i in items if isinstance(i, dict) and isinstance(i.get("camera"), str)]


async def _bound_write(
    st: FleetState, row: AgentRow, items: list[Any], fn: Callable[[Log], Any]
) -> Any:
    """Run ``fn`` as the writer if every camera in ``items`` is within the agent's binding."""

    def work(log: Log) -> Any:
        refusal = st.outside(row, _cameras_of(items))
        if refusal is not None:
            raise _Outside(refusal)
        return fn(log)

    try:
        return await run_in_threadpool(st.svc.write, work)
    except _Outside as err:
        return JSONResponse({"error": str(err)}, status_code=403)


@router.post("/heartbeats", summary="Heartbeats: which cameras a recorder hears, and when")
async def heartbeats(request: Request) -> Any:
    """Body ``{"heartbeats": [{"camera": ID, "time": RFC3339}, ...]}``.

    The answer's ``live`` lists those of the cameras that have a live grant, for which
    the recorder should cut short segments (``custodes agent --record``)."""
    st = _state(request)
    got = await _batch(request, "heartbeats", st)
    if isinstance(got, JSONResponse):
        return got
    items, row = got

    def work(_log: Log) -> dict[str, Any]:
        who = st.pseudonym(row.id)
        return record_heartbeats(st.db, items, st.settings, now=st.clock(), agent=who)

    got_beats = await _bound_write(st, row, items, work)
    if isinstance(got_beats, dict):
        got_beats["live"] = await run_in_threadpool(_live_hint, request, _cameras_of(items))
    return got_beats


def _live_hint(request: Request, cameras: list[str]) -> list[str]:
    """Which of these cameras have a live grant (live, or waiting for its approval): their
    recorders cut short segments, so that each is shown soon after it closes."""
    if getattr(request.app.state, "access", None) is None:
        return []
    from custodes.web.routes.access import _clock
    from custodes.web.routes.live import live_of_app

    live = live_of_app(request).grants.cameras_live(_clock(request))
    return sorted(set(cameras) & live)


@router.post("/segments", summary="Segment digests: camera, start, duration, bytes, sha256")
async def segments(request: Request) -> Any:
    """Body ``{"segments": [{"camera", "start", "duration", "bytes", "sha256"}, ...]}``.

    Answers once the new segments are durably logged, as one ``segments.batch``.
    """
    st = _state(request)
    got = await _batch(request, "segments", st)
    if isinstance(got, JSONResponse):
        return got
    items, row = got
    plain = sum(1 for i in items if isinstance(i, dict) and "epoch" not in i)
    if plain:
        from custodes.web.routes.custody import custody_on

        if await run_in_threadpool(custody_on, request.app.state):
            return JSONResponse(
                {
                    "error": f"custody is on (the log holds a custodian set), so only encrypted"
                    f" segments are taken; {plain} of the {len(items)} records carry no epoch,"
                    " ephemeral and ciphertext: run the agent with --custodian"
                },
                status_code=400,
            )

    def work(log: Log) -> dict[str, Any]:
        who = st.pseudonym(row.id)
        return ingest_segments(log, st.db, items, st.settings, now=st.clock(), agent=who)

    return await _bound_write(st, row, items, work)


@router.get("/cameras", summary="The registry: every active camera")
async def cameras(request: Request) -> Any:
    st = _state(request)

    def work() -> list[dict[str, Any]]:
        step = st.settings.interval_s * 1000
        rows = st.svc.read(lambda _log: st.db.cameras(step_ms=step))
        out = []
        for r in rows:
            item = dict(r["camera"])
            item["status"] = r["status"]
            if r["last_heard_ms"] is not None:
                item["last_heard"] = format_time(r["last_heard_ms"])
            out.append(item)
        return out

    return await run_in_threadpool(work)


@router.get("/status", summary="One camera's heard-from intervals, segments and outages")
async def status(
    request: Request,
    camera: str = Query(max_length=128),
    from_: str = Query(alias="from", max_length=40),
    to: str = Query(max_length=40),
) -> Any:
    from custodes.fleet.query import camera_status

    try:
        f, t = parse_time(from_, "from"), parse_time(to, "to")
    except FormatError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    data = request.app.state.ledger.instance.path
    return await run_in_threadpool(camera_status, data, camera, f, t)


# -- operators: the registry and declarations, through the running server ---------------


@router.post("/cameras/import", summary="Import GeoJSON or Overpass JSON (operator token)")
async def import_cameras_route(request: Request, retire_missing: bool = False) -> Any:
    from custodes.fleet.imports import parse_cameras
    from custodes.fleet.ops import import_cameras

    st = _state(request)
    refused = await _refused(request, st, ("operator",))
    if refused is not None:
        return refused
    body = await request.body()
    parsed = await run_in_threadpool(parse_cameras, body)
    if not parsed.cameras:  # nothing to import: never a registry emptied by --retire-missing
        total = len(parsed.skipped)
        return JSONResponse(
            {
                "error": f"nothing was imported: all {total} elements were skipped"
                if total
                else "nothing was imported: the file holds no cameras",
                "skipped": [{"element": s.element, "reason": s.reason} for s in parsed.skipped],
            },
            status_code=422,
        )

    def work(log: Log) -> dict[str, Any]:
        return import_cameras(log, st.db, parsed.cameras, retire_missing=retire_missing)

    report = await run_in_threadpool(st.svc.write, work)
    report["skipped"] = [{"element": s.element, "reason": s.reason} for s in parsed.skipped]
    report["warnings"] = [{"element": s.element, "reason": s.reason} for s in parsed.warnings]
    return report


@router.post("/cameras/retire", summary="Retire cameras (operator token)")
async def retire_route(request: Request) -> Any:
    from custodes.fleet.ops import retire_cameras

    st = _state(request)
    doc = await _operator_json(request, st)
    if isinstance(doc, JSONResponse):
        return doc
    ids, reason = (doc.get("cameras"), doc.get("reason")) if isinstance(doc, dict) else (0, 0)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return JSONResponse({"error": "cameras must be a list of ids"}, status_code=400)
    if not isinstance(reason, str) or not reason:
        return JSONResponse({"error": "a retirement needs a reason"}, status_code=400)
    done = await run_in_threadpool(
        st.svc.write, lambda log: retire_cameras(log, st.db, ids, reason)
    )
    return {"retired": done}


@router.post("/declarations", summary="Declare an outage or maintenance (operator token)")
async def declare_route(request: Request) -> Any:
    from custodes.fleet.ops import declare

    st = _state(request)
    doc = await _operator_json(request, st)
    if isinstance(doc, JSONResponse):
        return doc
    if not isinstance(doc, dict) or set(doc) != {"kind", "cameras", "from", "to", "reason"}:
        return JSONResponse(
            {"error": "a declaration has exactly kind, cameras, from, to and reason"}, 400
        )
    cams = doc["cameras"]
    if not isinstance(cams, list) or not all(isinstance(c, str) for c in cams):
        return JSONResponse({"error": "cameras must be a list of ids"}, status_code=400)
    if not all(isinstance(doc[k], str) for k in ("kind", "from", "to", "reason")):
        return JSONResponse({"error": "kind, from, to and reason are strings"}, 400)

    def work(log: Log) -> dict[str, Any]:
        return declare(log, st.db, doc["kind"], cams, doc["from"], doc["to"], doc["reason"])

    return await run_in_threadpool(st.svc.write, work)


def _binding_of(doc: dict[str, Any]) -> tuple[list[str] | None, str | None] | str:
    cams, district = doc.get("cameras"), doc.get("district")
    if cams is not None and (
        not isinstance(cams, list) or not all(isinstance(c, str) for c in cams)
    ):
        return "cameras must be a list of ids"
    if district is not None and not isinstance(district, str):
        return "district must be a district id"
    return cams, district


@router.post("/agents", summary="Register a recorder or operator agent (operator token)")
async def agents_route(request: Request) -> Any:
    from custodes.fleet.ops import add_agent

    st = _state(request)
    doc = await _operator_json(request, st)
    if isinstance(doc, JSONResponse):
        return doc
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return JSONResponse({"error": "an agent needs a name"}, status_code=400)
    role = doc.get("role", "recorder")
    if not isinstance(role, str):
        return JSONResponse({"error": "role must be recorder or operator"}, status_code=400)
    binding = _binding_of(doc)
    if isinstance(binding, str):
        return JSONResponse({"error": binding}, status_code=400)
    cams, district = binding
    agent, token = await run_in_threadpool(
        st.svc.write,
        lambda log: add_agent(log, st.db, doc["name"], role, cameras=cams, district=district),
    )
    return {"agent": agent, "name": doc["name"], "role": role, "token": token}


@router.get("/agents", summary="The agents, their roles and bindings (operator token)")
async def agents_list_route(request: Request) -> Any:
    st = _state(request)
    refused = await _refused(request, st, ("operator",))
    if refused is not None:
        return refused
    rows = await run_in_threadpool(st.svc.read, lambda _log: st.db.agents())
    return [agent_json(r) for r in rows]


def agent_json(r: AgentRow) -> dict[str, Any]:
    return {
        "agent": r.id,
        "name": r.name,
        "role": r.role,
        "created": format_time(r.created_ms),
        "revoked": format_time(r.revoked_ms) if r.revoked_ms is not None else None,
        **r.binding(),
    }


@router.post("/agents/{agent}/bind", summary="Change an agent's cameras (operator token)")
async def agents_bind_route(request: Request, agent: str) -> Any:
    from custodes.fleet.ops import bind_agent

    st = _state(request)
    doc = await _operator_json(request, st)
    if isinstance(doc, JSONResponse):
        return doc
    binding = _binding_of(doc) if isinstance(doc, dict) else "the body must be an object"
    if isinstance(binding, str):
        return JSONResponse({"error": binding}, status_code=400)
    cams, district = binding
    rep = await run_in_threadpool(
        st.svc.write, lambda log: bind_agent(log, st.db, agent, cameras=cams, district=district)
    )
    st.forget_tokens()
    return rep


@router.post("/agents/{agent}/revoke", summary="Revoke an agent's token (operator token)")
async def agents_revoke_route(request: Request, agent: str) -> Any:
    from custodes.fleet.ops import revoke_agent

    st = _state(request)
    doc = await _operator_json(request, st)
    if isinstance(doc, JSONResponse):
        return doc
    reason = doc.get("reason") if isinstance(doc, dict) else None
    if not isinstance(reason, str):
        return JSONResponse({"error": "a revocation needs a reason"}, status_code=400)
    rep = await run_in_threadpool(st.svc.write, lambda log: revoke_agent(log, st.db, agent, reason))
    st.forget_tokens()
    return rep


@router.get("/footage", summary="Is this digest logged for this camera? With proofs")
async def footage(
    request: Request,
    camera: str = Query(max_length=128),
    sha256: str = Query(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$"),
    size: int = Query(alias="bytes", ge=0),
    start: str | None = Query(default=None, max_length=40),
) -> Any:
    from custodes.fleet.query import verify_digest

    try:
        start_ms = parse_time(start, "start") if start else None
    except FormatError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    data = request.app.state.ledger.instance.path
    ok, rep = await run_in_threadpool(
        lambda: verify_digest(data, sha256, size, camera, start_ms=start_ms)
    )
    return {"ok": ok, **rep}


@router.get("/incident", summary="Every camera near a place over a window, with flags")
async def incident_route(
    request: Request,
    at: str = Query(max_length=60),
    radius: str = Query(default="300m", max_length=20),
    from_: str = Query(alias="from", max_length=40),
    to: str = Query(max_length=40),
) -> Any:
    from custodes.fleet.query import check_public_query, incident, parse_radius

    try:
        lat_s, lon_s = at.split(",")
        lat, lon = float(lat_s), float(lon_s)
        f, t = parse_time(from_, "from"), parse_time(to, "to")
        metres = parse_radius(radius)
        check_public_query(metres, f, t)
    except (ValueError, FormatError) as err:
        msg = str(err) if isinstance(err, FormatError) else "at must be LAT,LON"
        return JSONResponse({"error": msg}, status_code=400)
    # A query only reads: correlated outages are logged when intervals close.
    data = request.app.state.ledger.instance.path
    return await run_in_threadpool(incident, data, lat, lon, metres, f, t)


# -- the archive: segment files, checked against their logged digest ---------------------

MAX_SEGMENT = 8 << 30


@router.put("/archive", summary="Upload a logged segment's file to the archive")
async def archive_put(
    request: Request,
    camera: str = Query(max_length=128),
    start: str = Query(max_length=40),
    suffix: str = Query(default=".mp4", pattern=r"^\.[a-z0-9]{1,5}$"),
) -> Any:
    """Archives the file (under ``DIR/archive/<camera>/<day>/``, or in the object store
    that ``fleet.json`` names) only if its SHA-256 is the one logged for the segment of
    ``camera`` starting at ``start``."""
    import hashlib
    import tempfile

    from custodes.fleet.model import valid_camera_id

    st = _state(request)
    row = await _auth(request, st, ("recorder", "operator"))
    if isinstance(row, JSONResponse):
        return row
    try:
        start_ms = parse_time(start, "start")
    except FormatError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    if not valid_camera_id(camera):
        return JSONResponse({"error": "camera must be a camera id"}, status_code=400)
    refusal = await run_in_threadpool(st.svc.read, lambda _log: st.outside(row, [camera]))
    if refusal is not None:
        return JSONResponse({"error": refusal.replace("in the request", "")}, status_code=403)
    logged = await run_in_threadpool(st.svc.read, lambda _log: st.db.segment(camera, start_ms))
    if logged is None:
        return JSONResponse(
            {"error": f"no segment of camera {camera} at {start} is logged; send its digest first"},
            status_code=404,
        )
    folder = st.svc.instance.path / "archive" / ".incoming"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", delete=False) as tmp:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_SEGMENT:
                    raise ValueError("the segment is larger than 8 GiB")
                digest.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            os.fsync(tmp.fileno())
        except ValueError as err:
            os.unlink(tmp.name)
            return JSONResponse({"error": str(err)}, status_code=413)
    if digest.hexdigest() != logged[0]:
        os.unlink(tmp.name)
        return JSONResponse(
            {
                "error": f"the file's sha256 {digest.hexdigest()} ({size} bytes) differs from"
                f" the one logged for camera {camera} at {start}, {logged[0]}"
            },
            status_code=422,
        )
    # logged: (the stored file's digest, batch, epoch): for a segment encrypted under
    # custody the digest is its ciphertext's, and the archive takes only that ciphertext.
    where = await run_in_threadpool(
        st.archive.store, Path(tmp.name), camera, start_ms, suffix, logged[2]
    )
    return {"stored": where, "sha256": logged[0]}
