"""Serving a live grant: an HLS playlist of the grant's segments, each one a logged release.

:meth:`LiveView.playlist` lists, for one camera of a live grant, the segments recorded since
the grant started (as the recorder agents store them).  :meth:`LiveView.segment` serves
one of them, and only after every step below has passed; a step that fails serves nothing:

1. the requester (nobody else) asks, the grant is live now (approved and not ended, denied
   or revoked; an emergency grant within its minutes), the camera is one of the grant's and
   the segment starts inside the grant's window (else :class:`Forbidden`, HTTP 403);
2. ``access.viewed`` (the grant, the segment's plaintext digest, the redaction) is durably
   in the log (else :class:`~custodes.errors.StoreUnavailableError`, HTTP 503: fail closed);
   the segments of one grant asked for within :data:`BATCH_S` of each other (several
   cameras, several players) share one entry;
3. under custody the custodians open the segment for that entry, exactly as for a release
   (:meth:`custodes.access.opening.Opening._open`: a witnessed checkpoint, their partials
   checked); the plaintext lives in memory only;
4. it is cut and redacted as a clip is (:func:`custodes.access.release.build_clip`, faces
   blurred unless every approval granted unredacted footage), then remuxed to MPEG-TS with
   its time since the grant's start, so the player's timeline runs on.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custodes.access.live import LiveGrants, access_viewed
from custodes.access.requests import Forbidden
from custodes.errors import NotFoundError, StoreUnavailableError, VerificationError
from custodes.fleet.model import now_ms as _now_ms

if TYPE_CHECKING:
    from custodes.access.identity import User
    from custodes.access.service import AccessService
    from custodes.fleet.registry import SegmentRow

__all__ = ["LiveView", "segment_name", "to_ts"]

PLAYLIST_LENGTH = 6
BATCH_S = 0.2
"""How long the first segment of a grant waits for others to share its ``access.viewed``."""


def segment_name(camera: str, start_ms: int) -> str:
    """The playlist's name for a segment: ``CAMERA_STARTMS``."""
    return f"{camera}_{start_ms}"


def parse_segment_name(name: str) -> tuple[str, int]:
    camera, sep, start = name.rpartition("_")
    if not sep or not camera or not start.isdigit() or len(start) > 15:
        raise NotFoundError(f"{name[:80]!r} is not a segment name (CAMERA_STARTMS)")
    return camera, int(start)


def to_ts(src: Path, offset_s: float) -> bytes:
    """The clip at ``src`` as MPEG-TS, its timestamps moved on by ``offset_s``."""
    import av

    buf = io.BytesIO()
    with av.open(str(src), "r") as inp, av.open(buf, "w", format="mpegts") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        assert ist.time_base is not None
        shift = int(offset_s / ist.time_base)
        for pkt in inp.demux(ist):
            if pkt.dts is None:
                continue
            pkt.pts = (pkt.pts or 0) + shift
            pkt.dts += shift
            pkt.stream = ost
            out.mux(pkt)
    return buf.getvalue()


@dataclass
class _Batch:
    """The segments of one grant asked for within one batch window, logged together."""

    by: str
    redaction: dict[str, Any]
    now: int
    segments: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    index: int | None = None
    error: BaseException | None = None


class _Batcher:
    """``access.viewed`` batched: the first segment of a grant asked for opens a batch, the
    segments of that grant asked for in the next ``batch_s`` seconds join it, and one entry
    names them all; each caller goes on only once that entry is durable (and gets its
    index), or raises what the log raised."""

    def __init__(self, svc: AccessService, batch_s: float) -> None:
        self.svc = svc
        self.batch_s = batch_s
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], _Batch] = {}

    def view(self, rid: str, by: str, sha256: str, redaction: dict[str, Any], now: int) -> int:
        key = (rid, json.dumps(redaction, sort_keys=True))
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch(by, redaction, now)
            if sha256 not in batch.segments:
                batch.segments.append(sha256)
        if leader:
            time.sleep(self.batch_s)
            with self._lock:
                del self._open[key]
            try:
                entry = access_viewed(rid, by, batch.segments, redaction, batch.now)
                batch.index = self.svc._commit([(entry, "", "")])
            except BaseException as exc:
                batch.error = exc
                raise
            finally:
                batch.done.set()
        else:
            batch.done.wait()
            if batch.error is not None:
                raise StoreUnavailableError(
                    "the view could not be logged, so the segment is not shown"
                ) from batch.error
        assert batch.index is not None
        return batch.index


class LiveView:
    """The playlist and the segments of live grants, through one gateway."""

    def __init__(
        self, svc: AccessService, grants: LiveGrants | None = None, batch_s: float = BATCH_S
    ) -> None:
        self.svc = svc
        self.grants = grants or LiveGrants(svc)
        self._batcher = _Batcher(svc, batch_s)

    def _segments(self, camera: str, from_ms: int, to_ms: int) -> list[SegmentRow]:
        svc = self.svc
        rows = svc.ledger.read(lambda _log: svc.fleet.segments_for(camera, from_ms, to_ms))
        custody = svc.opening.on()
        return [
            s
            for s in rows
            if from_ms <= s.start_ms < to_ms
            and not (custody and s.encrypted and s.log_index is None)
        ]

    def _camera(self, cameras: tuple[str, ...], camera: str | None) -> str:
        if camera is None:
            return cameras[0]
        if camera not in cameras:
            raise Forbidden(f"camera {camera[:80]} is not one of this grant's cameras")
        return camera

    def playlist(
        self, user: User, rid: str, camera: str | None = None, now_ms: int | None = None
    ) -> str:
        """An HLS media playlist of the grant's latest segments of ``camera`` (default: its
        first camera)."""
        now = _now_ms() if now_ms is None else now_ms
        _me, row, g = self.grants.watcher(user, rid, now)
        cam = self._camera(row.cameras, camera)
        assert g.start_ms is not None and g.end_ms is not None
        segs = self._segments(cam, g.start_ms, min(now, g.end_ms) + 1)
        shown = segs[-PLAYLIST_LENGTH:]
        longest = max([(s.end_ms - s.start_ms + 999) // 1000 for s in shown] or [4])
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{max(1, longest)}",
            f"#EXT-X-MEDIA-SEQUENCE:{len(segs) - len(shown)}",
        ]
        for s in shown:
            lines.append(f"#EXTINF:{(s.end_ms - s.start_ms) / 1000:.3f},")
            lines.append(f"{segment_name(s.camera, s.start_ms)}.ts")
        return "\n".join(lines) + "\n"

    def segment(self, user: User, rid: str, name: str, now_ms: int | None = None) -> dict[str, Any]:
        """One segment of the grant as MPEG-TS, once its view is logged and it is opened:
        ``{"body": bytes, "index": the access.viewed index, "sha256": ..., "redaction": ...}``."""
        from custodes.access.opening import _plaintexts, redaction_for
        from custodes.access.release import build_clip
        from custodes.access.service import ReleasePlan

        svc = self.svc
        now = _now_ms() if now_ms is None else now_ms
        camera, start = parse_segment_name(name)
        me, row, g = self.grants.watcher(user, rid, now)
        assert g.start_ms is not None and g.end_ms is not None
        if camera not in row.cameras:
            raise Forbidden(f"camera {camera[:80]} is not one of this grant's cameras")
        if not g.start_ms <= start < g.end_ms:
            raise Forbidden("that segment lies outside the grant's window, so it is not shown")
        found = [s for s in self._segments(camera, start, start + 1) if s.start_ms == start]
        if not found:
            raise NotFoundError(f"camera {camera} has no logged segment starting then")
        seg = found[0]
        redaction = redaction_for(g.unredacted)
        index = self._batcher.view(rid, me.pseudonym, seg.sha256, redaction, now)
        keys: dict[tuple[str, int], bytes] = {}
        if seg.encrypted:
            keys = svc.opening._open(rid, index, [seg])
        plan = ReleasePlan(row, (camera,), seg.start_ms, seg.end_ms, g.unredacted)
        work = svc.data / "tmp" / ("live-" + secrets.token_hex(8))
        work.mkdir(parents=True, exist_ok=True)
        try:
            out = work / "seg.mp4"
            with _plaintexts() as memory, svc._cutting:
                built = build_clip(
                    svc.data, [seg], plan, out, opener=svc.opening._opener(keys, memory)
                )
            if built.segments != [seg.sha256] or built.redaction != redaction:
                raise VerificationError(
                    f"the segment was cut or redacted otherwise than log entry {index} says,"
                    " so it is not shown"
                )
            body = to_ts(out, (seg.start_ms - g.start_ms) / 1000)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {"body": body, "index": index, "sha256": seg.sha256, "redaction": redaction}
