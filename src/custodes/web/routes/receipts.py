"""``GET /access/requests/{id}/receipt``: the receipt of a released clip, for the web.

A clip downloaded from the staff pages is as checkable as one the CLI wrote: this
route serves the same receipt ``custodes access release`` writes beside the clip (the
entry that names the clip, its RFC 9162 inclusion proof and a published checkpoint),
as JSON (``custodes-release-receipt/1``) or, with ``?format=tlog-proof``, as a
``c2sp.org/tlog-proof@v1`` file.  ``custodes access check-receipt`` checks either
against the clip with only the log's verifier key.  A release of several cameras is
an archive (:mod:`custodes.access.archive`) that carries its receipt inside
(:func:`attach_receipt`); this route gives the same receipt, named for ``ID.zip``.

A receipt holds only what the public log holds, and gives no footage, so reading one
writes nothing to the log; it is still only for the request's investigator, who holds
the clip.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from custodes.access.archive import add_receipt
from custodes.access.receipt import RECEIPT_FORMAT, as_tlog_proof
from custodes.access.service import Forbidden
from custodes.errors import ConflictError, CustodesError, NotFoundError
from custodes.tlog import parse_checkpoint, parse_note
from custodes.web.routes.access import Investigator, RequestId, _run

__all__ = ["attach_receipt", "clip_suffix", "receipt_for", "router"]

_log = logging.getLogger("custodes.web")

router = APIRouter(prefix="/access", tags=["access"])

WAIT_S = 30.0
"""How long a receipt waits for a published checkpoint that covers the entry."""


def receipt_for(app_state: Any, user: Any, rid: str, *, wait_s: float = WAIT_S) -> dict[str, Any]:
    """The receipt of request ``rid``'s clip, built from the running log."""
    svc = app_state.access
    me = svc._fresh(user, ("investigator",), "fetch a release receipt")
    row = svc._row(rid)
    if not svc._made_by(me, row):
        raise Forbidden("only the investigator who made the request holds its clip and receipt")
    req = svc.view.request(rid)
    if req is None or req.release_entry is None or not req.released:
        raise ConflictError(f"request {rid} was not released, so there is no receipt")
    index, _digest = svc._clip_of(rid, req.release_entry, req.released[0])
    ledger = app_state.ledger
    deadline = time.monotonic() + wait_s
    while True:
        note: bytes = ledger.public_checkpoint()
        size = parse_checkpoint(parse_note(note).text).size
        if size > index:
            break
        if time.monotonic() > deadline:
            raise NotFoundError(
                f"no published checkpoint covers the clip's entry (index {index}) after"
                f" {wait_s:g} s; try again shortly"
            )
        time.sleep(0.1)
    raw: bytes = ledger.read(lambda log: log.store.read_entries(index, index + 1)[0])
    proof: list[bytes] = ledger.read(lambda r: r.inclusion_proof(index, size))
    output = json.loads(raw)["output"]
    return {
        "format": RECEIPT_FORMAT,
        "request": rid,
        "clip": {"sha256": output["sha256"], "bytes": output["bytes"]},
        "entry": {"index": index, "json": raw.decode("utf-8")},
        "checkpoint": note.decode("utf-8"),
        "inclusion": [base64.b64encode(h).decode() for h in proof],
    }


def clip_suffix(receipt: dict[str, Any]) -> str:
    """``.zip`` for the archive of a release of several cameras, else ``.mp4``."""
    output = json.loads(receipt["entry"]["json"]).get("output") or {}
    return ".zip" if output.get("manifest") else ".mp4"


def attach_receipt(app_state: Any, user: Any, rid: str, archive: Path) -> bool:
    """Put the receipt into a release archive (``release.json`` and ``release.tlog-proof``).

    The archive is logged either way, so a receipt that cannot be had now (no published
    checkpoint covers the entry yet) is said in the server's log and False is returned:
    the receipt route, or ``custodes access release``, gives it later."""
    try:
        got = receipt_for(app_state, user, rid)
        add_receipt(archive, got, as_tlog_proof(got))
    except CustodesError as err:
        _log.warning("request %s: the archive goes without its receipt: %s", rid, err)
        return False
    return True


@router.get(
    "/requests/{rid}/receipt",
    summary="The released clip's receipt: its entry, inclusion proof and checkpoint",
    responses={
        200: {
            "content": {"application/json": {}, "text/plain": {}},
            "description": "The receipt (JSON), or with format=tlog-proof a tlog-proof file.",
        }
    },
)
async def receipt(
    rid: RequestId,
    request: Request,
    user: Investigator,
    format: Literal["json", "tlog-proof"] = Query(  # noqa: A002  (the query's name)
        "json", description="json (custodes-release-receipt/1) or tlog-proof (c2sp.org)"
    ),
) -> Response:
    got = await _run(receipt_for, request.app.state, user, rid)
    clip = f"{rid}{clip_suffix(got)}"
    if format == "tlog-proof":
        return Response(
            as_tlog_proof(got),
            media_type="text/plain; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{clip}.tlog-proof"',
                "Cache-Control": "no-store",
            },
        )
    return JSONResponse(
        got,
        headers={
            "Content-Disposition": f'attachment; filename="{clip}.release.json"',
            "Cache-Control": "no-store",
        },
    )
