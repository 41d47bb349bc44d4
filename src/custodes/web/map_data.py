"""The map's own data: compact, built once per registry change, sent gzip-compressed.

The camera map does not read the GeoJSON download (``/public/cameras.geojson``,
every camera with its full record and view cone: 183 MB for 189,000 cameras).
It reads two small documents:

``/public/map/cameras.json``
    one column per field (``id``, ``lon``, ``lat``, ``direction``, ``fov``,
    ``caps`` as a bit mask over ``capabilities``, ``operator`` as an index into
    ``operators``, ``index`` of the camera's log entry), with the checkpoint it
    rests on and its ``version``.  It changes only when the registry does (a
    camera, district or place entry), so it is built once per change, kept,
    and answered ``304 Not Modified`` to a client that sends its ETag back.
``/public/map/status.json``
    one character per camera, in the same order: ``statuses[int(c)]`` is its
    status (``recording``, ``silent``, ``unknown``, ``retired``).  The fleet's
    live status changes all the time, so this document is small, and it is
    rebuilt in the background once it is a few seconds old (the answer is the
    last one built, never more than a rebuild behind).

A camera's record is read when its popup opens (``/public/cameras/{id}.json``).
Every body is sent gzip-compressed to a client that accepts it (compressed
once, when built), with an ETag, ``Cache-Control: no-cache`` and
``Vary: Accept-Encoding``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from custodes.reports.replay import PublicState
from custodes.web.public import STATUS_LABELS

__all__ = [
    "STATUSES",
    "Body",
    "BodyCache",
    "compact_cameras",
    "registry_version",
    "respond",
    "status_codes",
]

STATUSES = ("recording", "silent", "unknown", "retired")
_CODE = {s: str(i) for i, s in enumerate(STATUSES)}
_REGISTRY_KINDS = (
    "camera.registered",
    "camera.changed",
    "camera.retired",
    "district.defined",
    "district.removed",
    "place.defined",
    "place.removed",
)


def registry_version(state: PublicState) -> tuple[int, ...]:
    """A value that changes whenever a camera, district or place entry is applied."""
    return tuple(state.counts.get(kind, 0) for kind in _REGISTRY_KINDS)


@dataclass(frozen=True)
class Body:
    """A response body, as built and gzip-compressed, with its ETag."""

    raw: bytes
    gz: bytes | None  # None when compressing would not make it smaller
    etag: str
    media_type: str

    @classmethod
    def of(cls, raw: bytes, media_type: str) -> Body:
        tag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        return cls(raw, gz if len(gz) < len(raw) else None, tag, media_type)


class BodyCache:
    """One body per name, rebuilt only when its key changes; and the registry's sorted ids."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Hashable, Body]] = {}
        self._ids: tuple[Hashable, list[str]] | None = None
        self._born: dict[str, float] = {}
        self._refreshing: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, name: str, key: Hashable, build: Callable[[], Body]) -> Body:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # two requests for a stale body build it once
            item = self._items.get(name)
            if item is not None and item[0] == key:
                return item[1]
            body = build()
            self._items[name] = (key, body)
            return body

    def get_fresh(
        self, name: str, key: Hashable, build: Callable[[], Body], max_age_s: float
    ) -> Body:
        """Like :meth:`get`, but a body older than ``max_age_s`` is still answered while a
        background thread builds its successor (stale while revalidating).

        Only a body of the same ``key`` is answered stale; a new key builds at once.
        """
        now = time.monotonic()
        with self._guard:
            item = self._items.get(name)
            born = self._born.get(name, 0.0)
            stale = item is not None and item[0] == key
            if stale and now - born > max_age_s and name not in self._refreshing:
                self._refreshing.add(name)
                threading.Thread(target=self._refresh, args=(name, key, build), daemon=True).start()
        if stale and item is not None:
            return item[1]
        body = self.get(name, key, build)
        with self._guard:
            self._born[name] = now
        return body

    def _refresh(self, name: str, key: Hashable, build: Callable[[], Body]) -> None:
        try:
            body = build()
            with self._guard:
                self._items[name] = (key, body)
                self._born[name] = time.monotonic()
        finally:
            with self._guard:
                self._refreshing.discard(name)

    def ids(self, state: PublicState) -> list[str]:
        """The camera ids in order, sorted once per registry change."""
        key = registry_version(state)
        with self._guard:
            if self._ids is None or self._ids[0] != key:
                self._ids = (key, sorted(state.cameras))
            return self._ids[1]


def _accepts_gzip(value: str | None) -> bool:
    from custodes.client.http import accepts_gzip

    return accepts_gzip(value)


def respond(request: Request, body: Body, headers: dict[str, str] | None = None) -> Response:
    """``body`` for ``request``: 304 when its ETag matches, gzip when accepted."""
    out = {"ETag": body.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    out.update(headers or {})
    sent = request.headers.get("if-none-match", "")
    if body.etag in (t.strip().removeprefix("W/") for t in sent.split(",")) or sent == "*":
        return Response(status_code=304, headers=out)
    if body.gz is not None and _accepts_gzip(request.headers.get("accept-encoding")):
        out["Content-Encoding"] = "gzip"
        return Response(body.gz, media_type=body.media_type, headers=out)
    return Response(body.raw, media_type=body.media_type, headers=out)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def compact_cameras(state: PublicState, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """Every camera in the log as columns (see the module's docstring), sorted by id."""
    ids = sorted(state.cameras)
    caps: dict[str, int] = {}
    operators: dict[str, int] = {}
    cols: dict[str, list[Any]] = {
        k: [] for k in ("id", "lon", "lat", "direction", "fov", "caps", "operator", "index")
    }
    for cid in ids:
        cam = state.cameras[cid]
        mask = 0
        for name, on in sorted((cam.get("capabilities") or {}).items()):
            if on is True:
                mask |= 1 << caps.setdefault(name, len(caps))
        op = cam.get("operator")
        cols["id"].append(cid)
        cols["lon"].append(round(float(cam["lon"]), 7))
        cols["lat"].append(round(float(cam["lat"]), 7))
        cols["direction"].append(_number(cam.get("direction")))
        cols["fov"].append(_number(cam.get("field_of_view")))
        cols["caps"].append(mask)
        cols["operator"].append(operators.setdefault(op, len(operators)) if isinstance(op, str)
                                else -1)  # fmt: skip
        cols["index"].append(cam.get("index"))
    return {
        "count": len(ids),
        "statuses": list(STATUSES),
        "status_labels": [STATUS_LABELS[s] for s in STATUSES],
        "capabilities": list(caps),
        "operators": list(operators),
        "columns": cols,
        "checkpoint": checkpoint,
    }


def status_codes(state: PublicState, ids: list[str], live: dict[str, str]) -> str:
    """One digit per camera of ``ids`` (sorted): its index in :data:`STATUSES`."""
    out = []
    for cid in ids:
        if state.cameras[cid].get("status") == "retired":
            out.append("3")
        else:
            raw = live.get(cid, "unknown")
            out.append(_CODE.get("recording" if raw == "up" else raw, "2"))
    return "".join(out)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
