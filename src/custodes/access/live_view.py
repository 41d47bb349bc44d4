"""Serving a live grant: an HLS playlist of the grant's segments, each one a logged release.

:meth:`LiveView.playlist` lists, for one camera of a live grant, the segments recorded since
the grant started (as the recorder agents store them).  :meth:`LiveView.segment` serves
one of them, and only after every step below has passed; a step that fails serves nothing:

1. the requester (nobody else) asks, the grant is live now (approved and not ended, denied
   or revoked; an emergency grant within its minutes), the camera is one of the grant's and
   the segment starts inside the grant's window (else :class:`Forbidden`, HTTP 403);
2. ``access.viewed`` (the grant, the segment's plaintext digest, the redaction) is durably
   in the log (else :class:`~custodes.errors.StoreUnavailableError`, HTTP 503: fail closed);
   one entry names the segment and those about to be served to the grant's other players
   (listed in their playlists), so a grant's views take about one entry per refresh of
   its playlists; the first segment waits for nothing but its own entry (:class:`_Batcher`);
3. under custody the custodians open the segment for that entry, exactly as for a release
   (:meth:`custodes.access.opening.Opening._open`: a witnessed checkpoint, their partials
   checked); the plaintext lives in memory only;
4. it is decoded once (its decoded length checked against the logged one, as for a clip),
   its faces hidden unless every approval granted unredacted footage, and encoded once to
   MPEG-TS timed from the grant's start, so the player's timeline runs on
   (:func:`custodes.redact.live.encode_segment`: the clip path's redaction and its check
   that the detector finds no face in any frame as encoded; a face found serves nothing).
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custodes.access.live import LiveGrants, access_viewed
from custodes.access.requests import Forbidden
from custodes.errors import NotFoundError, StoreUnavailableError
from custodes.fleet.model import now_ms as _now_ms

if TYPE_CHECKING:
    from custodes.access.identity import User
    from custodes.access.service import AccessService
    from custodes.fleet.containers import Container
    from custodes.fleet.registry import SegmentRow
    from custodes.redact.live import Detectors, LiveSegment

__all__ = ["LiveView", "segment_name"]

PLAYLIST_LENGTH = 6


def segment_name(camera: str, start_ms: int) -> str:
    """The playlist's name for a segment: ``CAMERA_STARTMS``."""
    return f"{camera}_{start_ms}"


def parse_segment_name(name: str) -> tuple[str, int]:
    camera, sep, start = name.rpartition("_")
    if not sep or not camera or not start.isdigit() or len(start) > 15:
        raise NotFoundError(f"{name[:80]!r} is not a segment name (CAMERA_STARTMS)")
    return camera, int(start)


@dataclass
class _Batch:
    """One ``access.viewed`` being written: the segments it names, who waits on it."""

    segments: list[str]
    starts: dict[str, tuple[str, int]] = field(default_factory=dict)  # sha -> camera, start
    done: threading.Event = field(default_factory=threading.Event)
    index: int | None = None
    error: BaseException | None = None


@dataclass
class _GrantViews:
    """What one grant's players were offered and what the log already names as viewed."""

    listed: dict[str, dict[str, int]] = field(default_factory=dict)  # camera -> sha -> start
    named: dict[str, int] = field(default_factory=dict)  # sha -> its access.viewed index
    newest: dict[str, int] = field(default_factory=dict)  # camera -> newest start named
    inflight: _Batch | None = None
    nxt: _Batch | None = None


#: Segments the playlist remembers having found in the archive (the oldest forgotten first).
STORED_KEPT = 4096

#: Segments a grant's log entry remembers having named (the oldest are forgotten first).
NAMED_KEPT = 512


class _Batcher:
    """``access.viewed`` batched without delaying anyone.

    A segment asked for that no entry names yet is logged at once, in an entry that also
    names the segments *about to be served* to the grant's players: those that the
    grant's playlists list now, newer than what the log names of their camera (the newest
    one only, for a camera not yet watched: the player starts at the live edge).  The
    players of the other cameras then find their next segment already named, so a grant's
    views take about one entry per refresh of its playlists, not one per segment.
    Segments asked for while a grant's entry is being written share the next entry, which
    is written as soon as that one is durable.  Every caller goes on only once an entry
    naming its segment is durable (and gets its index), or raises what the log raised:
    a segment is never served on an entry that failed."""

    def __init__(self, svc: AccessService) -> None:
        self.svc = svc
        self._lock = threading.Lock()
        self._grants: dict[tuple[str, str], _GrantViews] = {}

    def _views(self, rid: str, redaction: dict[str, Any]) -> _GrantViews:
        key = (rid, json.dumps(redaction, sort_keys=True))
        got = self._grants.get(key)
        if got is None:
            got = self._grants[key] = _GrantViews()
        return got

    def listed(
        self, rid: str, redaction: dict[str, Any], camera: str, segs: dict[str, int]
    ) -> None:
        """A playlist of ``camera`` was handed to the grant's player: sha256 -> start."""
        with self._lock:
            self._views(rid, redaction).listed[camera] = dict(segs)

    def _ahead(self, v: _GrantViews, batch: _Batch) -> None:
        """Add to ``batch`` the segments about to be served to the grant's players."""
        floor = dict(v.newest)
        for camera, start in batch.starts.values():
            floor[camera] = max(start, floor.get(camera, -1))
        for camera, segs in v.listed.items():
            fresh = sorted(
                (start, sha)
                for sha, start in segs.items()
                if sha not in v.named and sha not in batch.starts and start > floor.get(camera, -1)
            )
            if camera not in floor:
                fresh = fresh[-1:]
            for start, sha in fresh:
                batch.segments.append(sha)
                batch.starts[sha] = (camera, start)

    def view(self, rid: str, by: str, seg: SegmentRow, redaction: dict[str, Any], now: int) -> int:
        """The index of a durable ``access.viewed`` of grant ``rid`` naming ``seg``."""
        sha256 = seg.sha256
        lead = False
        with self._lock:
            v = self._views(rid, redaction)
            if sha256 in v.named:
                return v.named[sha256]
            waiting = [b for b in (v.inflight, v.nxt) if b is not None]
            joined = [b for b in waiting if sha256 in b.segments]
            if joined:
                batch = joined[0]
            elif not waiting:
                batch = v.inflight = _Batch([sha256], {sha256: (seg.camera, seg.start_ms)})
                self._ahead(v, batch)
                lead = True
            else:
                if v.nxt is None:
                    v.nxt = _Batch([])
                    lead = True
                batch = v.nxt
                batch.segments.append(sha256)
                batch.starts[sha256] = (seg.camera, seg.start_ms)
        if lead:
            self._write(v, batch, rid, by, redaction, now)
        batch.done.wait()
        if batch.error is not None:
            raise StoreUnavailableError(
                "the view could not be logged, so the segment is not shown"
            ) from batch.error
        assert batch.index is not None
        return batch.index

    def _write(
        self, v: _GrantViews, batch: _Batch, rid: str, by: str, redaction: dict[str, Any], now: int
    ) -> None:
        if v.inflight is not batch:  # the next entry: wait for the one being written
            with self._lock:
                ahead = v.inflight
            if ahead is not None:
                ahead.done.wait()
            with self._lock:
                v.nxt = None
                v.inflight = batch
                self._ahead(v, batch)
        try:
            entry = access_viewed(rid, by, list(batch.segments), redaction, now)
            batch.index = self.svc._commit([(entry, "", "")])
        except BaseException as exc:
            batch.error = exc
        finally:
            with self._lock:
                if batch.index is not None:
                    for sha in batch.segments:
                        v.named[sha] = batch.index
                    for cam, t in batch.starts.values():
                        v.newest[cam] = max(t, v.newest.get(cam, -1))
                    while len(v.named) > NAMED_KEPT:
                        del v.named[next(iter(v.named))]
                if v.inflight is batch:
                    v.inflight = None
            batch.done.set()


class LiveView:
    """The playlist and the segments of live grants, through one gateway."""

    def __init__(self, svc: AccessService, grants: LiveGrants | None = None) -> None:
        self.svc = svc
        self.grants = grants or LiveGrants(svc)
        self._batcher = _Batcher(svc)
        self._detectors_made: Detectors | None = None
        self._stored: dict[tuple[str, int], None] = {}  # segments seen in the archive

    @property
    def _detectors(self) -> Detectors:
        """The face detectors kept for this gateway's live segments (made at first use)."""
        if self._detectors_made is None:
            from custodes.redact.live import Detectors

            self._detectors_made = Detectors(threads=1)
            self._detectors_made.warm()
        return self._detectors_made

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

    def _archived(self, segs: list[SegmentRow]) -> list[SegmentRow]:
        """The segments up to the first one not in the archive yet: an agent logs a segment,
        then uploads it, and a player that was offered it too soon would stop."""
        from custodes.access.release import segment_path

        tail = max(0, len(segs) - PLAYLIST_LENGTH - 2)  # older ones are not listed anyway
        for n, s in enumerate(segs[tail:], start=tail):
            key = (s.camera, s.start_ms)
            if key in self._stored:
                continue
            if segment_path(self.svc.data, s.camera, s.start_ms) is None:
                return segs[:n]
            self._stored[key] = None
            while len(self._stored) > STORED_KEPT:
                del self._stored[next(iter(self._stored))]
        return segs

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
        from custodes.access.opening import redaction_for

        now = _now_ms() if now_ms is None else now_ms
        _me, row, g = self.grants.watcher(user, rid, now)
        if not g.unredacted:
            _ = self._detectors  # made now, so that the first segment does not wait for them
        cam = self._camera(row.cameras, camera)
        assert g.start_ms is not None and g.end_ms is not None
        segs = self._archived(self._segments(cam, g.start_ms, min(now, g.end_ms) + 1))
        shown = segs[-PLAYLIST_LENGTH:]
        self._batcher.listed(
            rid, redaction_for(g.unredacted), cam, {s.sha256: s.start_ms for s in shown}
        )
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
        index = self._batcher.view(rid, me.pseudonym, seg, redaction, now)
        keys: dict[tuple[str, int], bytes] = {}
        if seg.encrypted:
            keys = svc.opening._open(rid, index, [seg])
        work = svc.data / "tmp" / ("live-" + secrets.token_hex(8))
        work.mkdir(parents=True, exist_ok=True)
        try:
            with _plaintexts() as memory, svc._cutting:
                path, kind = svc.opening._opener(keys, memory)(seg, work, 0)
                shown = self._encode(seg, path, kind, g.unredacted, seg.start_ms - g.start_ms)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {
            "body": shown.body,
            "index": index,
            "sha256": seg.sha256,
            "redaction": redaction,
            "checked": shown.checked,
        }

    def _encode(
        self, seg: SegmentRow, path: Path, kind: Container, unredacted: bool, offset_ms: int
    ) -> LiveSegment:
        """Decode the checked plaintext once (its length checked against the log), hide the
        faces unless the grant allows otherwise, encode once to MPEG-TS."""
        from custodes.access.release import _segment_frames
        from custodes.redact.live import encode_segment
        from custodes.redact.options import RedactOptions

        decoded = iter(_segment_frames(path, kind, seg))
        first = next(decoded, None)
        if first is None:
            raise NotFoundError(f"the segment of camera {seg.camera} holds no frame to show")
        rate = first[2]
        frames = ((frame, round(t_ms - seg.start_ms)) for frame, t_ms, _ in chain([first], decoded))
        opts = None if unredacted else RedactOptions()
        return encode_segment(
            frames, offset_ms=offset_ms, rate=rate, opts=opts, detectors=self._detectors
        )
