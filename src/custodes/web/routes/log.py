"""The log over HTTP: C2SP tlog-tiles paths, plus JSON proofs for light clients.

``/log/checkpoint`` and ``/log/tile/...`` follow tlog-tiles, so any standard
client can read the log; full tiles are immutable and cached for a year.
"""

from __future__ import annotations

import base64
import json

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from custodes.errors import NotFoundError
from custodes.tlog import ENTRIES_LEVEL, TILE_WIDTH, parse_tile_path

router = APIRouter(prefix="/log", tags=["log"])

_IMMUTABLE = "public, max-age=31536000, immutable"
_SHORT = "public, max-age=1"


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


@router.get("/checkpoint", response_class=Response, summary="The latest signed checkpoint")
def checkpoint(request: Request) -> Response:
    note = request.app.state.ledger.public_checkpoint()
    return Response(
        note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get("/tile/{path:path}", response_class=Response, summary="A hash tile or entry bundle")
def tile(path: str, request: Request) -> Response:
    t = parse_tile_path("tile/" + path)
    if t.level == ENTRIES_LEVEL:
        data = request.app.state.ledger.read(lambda r: r.entry_bundle(t.index, t.width))
    else:
        data = request.app.state.ledger.read(lambda r: r.hash_tile(t.level, t.index, t.width))
    cache = _IMMUTABLE if t.width == TILE_WIDTH else _SHORT
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})


@router.get("/proof/inclusion", summary="An RFC 9162 inclusion proof")
def inclusion(
    request: Request,
    index: int = Query(ge=0, le=2**63 - 1),
    size: int = Query(ge=1, le=2**63 - 1),
) -> dict[str, object]:
    proof = request.app.state.ledger.read(lambda r: r.inclusion_proof(index, size))
    return {"index": index, "size": size, "proof": _b64(proof)}


@router.get("/proof/consistency", summary="An RFC 9162 consistency proof")
def consistency(
    request: Request,
    old: int = Query(ge=1, le=2**63 - 1),
    new: int = Query(ge=1, le=2**63 - 1),
) -> dict[str, object]:
    proof = request.app.state.ledger.read(lambda r: r.consistency_proof(old, new))
    return {"old_size": old, "new_size": new, "proof": _b64(proof)}


@router.get("/entry/{index}", summary="One integrated entry, as its canonical JSON")
def entry(index: int, request: Request) -> Response:
    def read(r: object) -> bytes:
        size = r.size()  # type: ignore[attr-defined]
        if not 0 <= index < size:
            raise NotFoundError(f"index {index} is not in the log of size {size}")
        data: bytes = r.store.read_entries(index, index + 1)[0]  # type: ignore[attr-defined]
        return data

    data = request.app.state.ledger.read(read)
    try:
        json.loads(data)
    except ValueError:
        return Response(data, media_type="application/octet-stream")
    return Response(data, media_type="application/json")
