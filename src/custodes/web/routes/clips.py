"""``GET /access/requests/{id}/clip``: a released clip, again, for its requester.

A release that is logged stays downloadable by the investigator who made the
request until the approval expires: a download interrupted after
``access.released`` was logged (a dropped connection, Ctrl-C) loses nothing.
The clip is byte for byte the one the release entry names (its sha256 is
checked before it is sent), and each download is logged first
(``access.downloaded``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from custodes.web.routes.access import Investigator, RequestId, _clock, _run, _svc

__all__ = ["router"]

router = APIRouter(prefix="/access", tags=["access"])


@router.get(
    "/requests/{rid}/clip",
    summary="The released clip again (its requester, until the approval expires)",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "The clip."}},
)
async def clip(rid: RequestId, request: Request, user: Investigator) -> Any:
    got = await _run(_svc(request).download, user, rid, _clock(request))
    return FileResponse(
        got["path"],
        media_type="video/mp4",
        filename=f"{rid}.mp4",
        headers={
            "X-Custodes-Index": str(got["released"]),
            "X-Custodes-Sha256": got["sha256"],
            "X-Custodes-Download-Index": str(got["index"]),
            "Cache-Control": "no-store",
        },
    )
