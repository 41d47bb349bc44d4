"""``GET /access/requests/{id}/clip``: a released clip, again, for its requester.

A release that is logged stays downloadable by the investigator who made the
request until the approval expires: a download interrupted after
``access.released`` was logged (a dropped connection, Ctrl-C) loses nothing.
The clip is byte for byte the one the release entry names (its sha256 is
checked before it is sent), and each download is logged first
(``access.downloaded``).

A release of several cameras is an archive (:mod:`custodes.access.archive`): one MP4
per camera and ``manifest.json``, whose digest the entry names, checked file by file
before it is sent; every archive goes out as ``ID.zip`` with its receipt inside
(:func:`release_response`, also used by the release routes and the staff pages).
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from custodes.access.archive import is_archive
from custodes.web.routes.access import Investigator, RequestId, _clock, _run, _svc

__all__ = ["release_response", "router"]

router = APIRouter(prefix="/access", tags=["access"])


async def release_response(
    request: Request,
    user: Any,
    rid: str,
    path: Path,
    headers: dict[str, str],
    *,
    owned: Path | None = None,
) -> FileResponse:
    """The released clip at ``path`` as a download: an MP4 as it is, an archive as
    ``ID.zip`` with its receipt added.  ``owned`` is a folder that holds ``path`` and
    is removed once sent; without it ``path`` (the kept copy) is left untouched."""
    if not is_archive(path):
        return FileResponse(
            path, media_type="video/mp4", filename=f"{rid}.mp4", headers=headers,
            background=BackgroundTask(shutil.rmtree, owned, True) if owned else None,
        )  # fmt: skip
    from custodes.web.routes.receipts import attach_receipt

    folder = owned
    if folder is None:
        folder = _svc(request).data / "tmp" / ("release-" + secrets.token_hex(8))
        folder.mkdir(parents=True)
    try:
        out = folder / f"{rid}.zip"
        # A copy, always: the release's own file is a hard link of the kept one, which
        # must stay byte for byte what was logged.
        shutil.copyfile(path, out)
        inside = await _run(attach_receipt, request.app.state, user, rid, out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        out,
        media_type="application/zip",
        filename=f"{rid}.zip",
        headers={**headers, "X-Custodes-Receipt": "inside" if inside else "missing"},
        background=BackgroundTask(shutil.rmtree, folder, True),
    )


@router.get(
    "/requests/{rid}/clip",
    summary="The released clip again (its requester, until the approval expires)",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"video/mp4": {}, "application/zip": {}},
            "description": "The clip, or for several cameras the archive with its receipt.",
        }
    },
)
async def clip(rid: RequestId, request: Request, user: Investigator) -> Any:
    got = await _run(_svc(request).download, user, rid, _clock(request))
    headers = {
        "X-Custodes-Index": str(got["released"]),
        "X-Custodes-Sha256": got["sha256"],
        "X-Custodes-Download-Index": str(got["index"]),
        "Cache-Control": "no-store",
    }
    return await release_response(request, user, rid, got["path"], headers)
