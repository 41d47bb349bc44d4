"""``POST /custody/entries``: custodians append their signed entries to the log.

No token: the entry's own signature is its credential.  The server folds the custody
entries it has sequenced (:class:`~custodes.custody.daemon.ledger.CustodyLog`) and appends
an entry only if a reader of the log would accept it: a ``custody.set`` signed as
:func:`~custodes.custody.daemon.entries.accept_set` requires, any other custody entry
signed by a custodian of the set it names.  A second ``custody.epoch`` for one epoch is
refused (409), so that custodians racing to log the key leave one entry.  Readers check
everything again; this only keeps rubbish out of the log.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from custodes.custody.daemon.entries import now_ms
from custodes.custody.daemon.ledger import CustodyLog
from custodes.errors import CustodesError
from custodes.records.canonical import canonicalize

router = APIRouter(tags=["custody"])

_MAX_BODY = 64 << 10
_MAKING = threading.Lock()


def _fold(state: Any) -> tuple[threading.Lock, CustodyLog]:
    """The app's fold of the custody entries (on ``app.state``), made on first use."""
    with _MAKING:
        if getattr(state, "custody_lock", None) is None:
            state.custody_lock = threading.Lock()
        if getattr(state, "custody_fold", None) is None:
            state.custody_fold = CustodyLog()
        return state.custody_lock, state.custody_fold


def _catch_up(log: Any, fold: CustodyLog) -> None:
    end = log.store.next_index()
    start = fold.size
    while start < end:
        stop = min(end, start + 4096)
        for i, raw in enumerate(log.store.read_entries(start, stop), start):
            fold.feed_raw(i, raw)
        start = stop


def _append(state: Any, obj: dict[str, Any]) -> tuple[int, int | str]:
    svc = state.ledger
    lock, fold = _fold(state)

    def work(log: Any) -> tuple[int, int | str]:
        _catch_up(log, fold)
        before = len(fold.rejected)
        kind = obj.get("type")
        if kind == "custody.epoch":
            view = fold.view(str(obj.get("epoch")))
            if view is not None and view.logged is not None:
                return 409, f"the key of epoch {obj.get('epoch')} is logged already"
        sets, msgs = len(fold.sets), sum(len(fold.messages(e)) for e in fold.epochs())
        shredded = {e: set(v) for e, v in fold.shredded.items()}
        fold_size = fold.size
        fold.feed(fold_size, obj)
        if len(fold.rejected) > before:
            reason = fold.rejected.pop()[1]
            fold.size = fold_size
            return 403, reason
        accepted = (
            len(fold.sets) > sets
            or sum(len(fold.messages(e)) for e in fold.epochs()) > msgs
            or fold.shredded != shredded
        )
        if not accepted:
            fold.size = fold_size
            return 403, "the entry says nothing the log does not say already"
        try:
            first, _ = log.append([canonicalize(obj)])
        except BaseException:
            state.custody_fold = None  # the fold took an entry the log did not: refold
            raise
        if first != fold_size:  # another writer got in between: refold from the log
            state.custody_fold = None
        return 200, first

    with lock:
        result: tuple[int, int | str] = svc.write(work)
        return result


def custody_on(state: Any) -> bool:
    """The log holds a custodian set (``custody init``): footage must come encrypted.
    Takes the fold's lock, then the log's, in that order (as :func:`_append` does)."""
    svc = state.ledger
    lock, fold = _fold(state)
    with lock:
        svc.read(lambda log: _catch_up(log, fold))
        return fold.current is not None


def _status(state: Any) -> dict[str, Any]:
    svc = state.ledger
    lock, fold = _fold(state)
    with lock:
        svc.read(lambda log: _catch_up(log, fold))
        return {**fold.status(), "unready": fold.unready(now_ms(), ahead=1)}


@router.get("/custody/status", summary="The custodian set, the epochs and their state")
async def custody_status(request: Request) -> JSONResponse:
    """As ``custodes custody status --json``, plus ``unready``: today's and tomorrow's epochs
    whose key is not logged yet (with custody on, nothing can be recorded into them)."""
    return JSONResponse(await run_in_threadpool(_status, request.app.state))


@router.post("/custody/entries", summary="Append a custodian-signed custody entry")
async def custody_entries(request: Request) -> JSONResponse:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        return JSONResponse({"error": "the entry is too large"}, status_code=413)
    try:
        obj = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "the entry is not JSON"}, status_code=400)
    if not isinstance(obj, dict) or not str(obj.get("type", "")).startswith("custody."):
        return JSONResponse({"error": "expected a custody.* entry"}, status_code=400)
    try:
        status, out = await run_in_threadpool(_append, request.app.state, obj)
    except CustodesError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if status != 200:
        return JSONResponse({"error": out}, status_code=status)
    return JSONResponse({"index": out})
