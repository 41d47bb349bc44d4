"""The public view: a :class:`~custodes.reports.replay.PublicState` of the local log, kept current.

Every public page is computed from this state, and the state from nothing but
the public log, up to the checkpoint that ``/log/checkpoint`` serves.  So each
page can name the checkpoint (size and root) its figures rest on, and anyone
who replays the log up to that checkpoint gets the same figures.

The view is incremental: :meth:`PublicView.use` first compares the public
checkpoint with the one it last applied (one read, no entries), and only when
the log grew reads and applies the new entries.  The state is shared, so it
is read and updated under one lock.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from custodes.access.live_stats import live_from_state
from custodes.errors import NotFoundError
from custodes.fleet.model import format_time, parse_time
from custodes.geo.geometry import haversine_m, view_cone
from custodes.reports.replay import PublicState
from custodes.tlog import parse_checkpoint, parse_note
from custodes.web.entry_index import EntryIndex
from custodes.web.service import LedgerService

__all__ = [
    "PublicView",
    "Snapshot",
    "access_statistics",
    "camera_feature",
    "camera_features",
    "outage_item",
    "outage_timeline",
    "who_looked",
]

T = TypeVar("T")
CHUNK = 4096


@dataclass(frozen=True)
class Snapshot:
    """The checkpoint a view rests on: ``size``, ``root`` (base64, as in the note) and the note.

    The pages show the root as ``root_hex``, the way ``custodes verify`` prints it.
    """

    origin: str
    size: int
    root: str
    note: str
    signers: tuple[str, ...]

    @property
    def root_hex(self) -> str:
        return base64.b64decode(self.root).hex()

    @property
    def label(self) -> str:
        return f"checkpoint {self.size} (root {self.root_hex})"


class PublicView:
    """The public state of the log behind ``svc``, applied up to its public checkpoint."""

    def __init__(self, svc: LedgerService) -> None:
        self.svc = svc
        self.state = PublicState()
        self.entries = EntryIndex()
        self.snapshot: Snapshot | None = None
        self._note: bytes | None = None
        self._lock = threading.Lock()

    def _public_note(self) -> bytes | None:
        try:
            return self.svc.public_checkpoint()
        except NotFoundError:  # witnessed, and nothing cosigned yet
            return None

    def _read(self, start: int, stop: int) -> list[bytes]:
        return self.svc.read(lambda log: log.store.read_entries(start, stop))

    def _apply(self, index: int, raw: bytes) -> None:
        """Apply one entry to the state and to the entry index, parsing it once."""
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            obj = None
        self.entries.add(index, obj)
        if isinstance(obj, dict):
            # What PublicState.apply_bytes does, without parsing the bytes a second time.
            self.state._apply(index, obj)
        else:
            self.state.apply_bytes(index, raw)

    def refresh(self) -> None:
        """Apply the entries up to the current public checkpoint (cheap when unchanged)."""
        note = self._public_note()
        if note is None or note == self._note:
            return
        parsed = parse_note(note)
        cp = parse_checkpoint(parsed.text)
        start = self.state.size
        while start < cp.size:
            stop = min(cp.size, start + CHUNK)
            rows = self._read(start, stop)
            for offset, raw in enumerate(rows):
                self._apply(start + offset, bytes(raw))
            start = stop
        self._note = note
        self.snapshot = Snapshot(
            origin=cp.origin,
            size=cp.size,
            root=base64.b64encode(cp.root_hash).decode(),
            note=note.decode(),
            signers=tuple(s.name for s in parsed.signatures),
        )

    def use(self, fn: Callable[[PublicState, Snapshot | None], T]) -> T:
        """Run ``fn(state, snapshot)`` on an up-to-date state, holding the view's lock."""
        with self._lock:
            self.refresh()
            return fn(self.state, self.snapshot)


# -- what the public pages show, computed from the state ---------------------------------

STATUS_LABELS = {
    "recording": "recording",
    "silent": "silent",
    "unknown": "not heard yet",
    "retired": "retired",
}


def camera_feature(
    cid: str, cam: dict[str, Any], live: str | None, *, cone_range_m: float = 40.0
) -> dict[str, Any]:
    """One camera as a GeoJSON Point, with its record, status and view cone.

    ``live`` is the fleet's current status of the camera (``up``, ``silent``,
    ``unknown`` or None); the feature's ``status`` is ``recording`` (up),
    ``silent``, ``unknown`` (never heard) or ``retired`` (whatever the fleet says).
    """
    record = {k: v for k, v in cam.items() if k not in ("status", "retired_reason", "index")}
    raw = "retired" if cam.get("status") == "retired" else (live or "unknown")
    status = "recording" if raw == "up" else raw
    cone = None
    direction = cam.get("direction")
    if isinstance(direction, int | float) and not isinstance(direction, bool):
        fov = cam.get("field_of_view")
        fov = float(fov) if isinstance(fov, int | float) and not isinstance(fov, bool) else 60.0
        cone = view_cone(float(cam["lat"]), float(cam["lon"]), float(direction), fov, cone_range_m)
    return {
        "type": "Feature",
        "id": cid,
        "geometry": {"type": "Point", "coordinates": [cam["lon"], cam["lat"]]},
        "properties": {
            "id": cid,
            "status": status,
            "status_label": STATUS_LABELS.get(status, status),
            "capabilities": cam.get("capabilities") or {},
            "record": record,
            "retired_reason": cam.get("retired_reason"),
            "index": cam.get("index"),
            "cone": cone,
        },
    }


def camera_features(
    state: PublicState, live: dict[str, str], *, cone_range_m: float = 40.0
) -> dict[str, Any]:
    """Every camera in the log as a GeoJSON Point (:func:`camera_feature`), sorted by id.

    ``live`` maps camera ids to the fleet's current status.
    """
    feats = [
        camera_feature(cid, state.cameras[cid], live.get(cid), cone_range_m=cone_range_m)
        for cid in sorted(state.cameras)
    ]
    return {"type": "FeatureCollection", "features": feats}


def active_cameras(state: PublicState) -> list[dict[str, Any]]:
    return [c for c in state.cameras.values() if c.get("status") == "active"]


def _k(count: int, k: int) -> int | str:
    """A published count: below the minimum (but not zero) it reads "fewer than k"."""
    return f"fewer than {k}" if 0 < count < k else count


def _decided(req: dict[str, Any]) -> tuple[bool, bool, bool, bool]:
    approved = any(a.get("complete") for a in req["approvals"])
    denied = bool(req["denials"])
    released = bool(req["released"])
    return approved, denied, released, bool(req.get("expired"))


def access_statistics(state: PublicState) -> dict[str, Any]:
    """Requests, approvals, denials and releases by purpose, district and month; flags."""
    kinds = ("requested", "approved", "denied", "released", "expired")

    def blank() -> dict[str, int]:
        return dict.fromkeys(kinds, 0)

    by_purpose: dict[str, dict[str, int]] = {}
    by_district: dict[str, dict[str, int]] = {}
    by_month: dict[str, dict[str, int]] = {}
    total = blank()
    sensitive = blank()
    for req in state.requests.values():
        flags = (True, *_decided(req))
        rows = [total, by_purpose.setdefault(req["purpose"], blank())]
        rows.append(by_month.setdefault(str(req["time"])[:7], blank()))
        rows += [by_district.setdefault(d, blank()) for d in req.get("districts") or []]
        if req.get("sensitive"):
            rows.append(sensitive)
        for row in rows:
            for kind, on in zip(kinds, flags, strict=True):
                row[kind] += int(on)
    rules: dict[str, dict[str, int]] = {}
    for flag in state.flags.values():
        row = rules.setdefault(flag["rule"], {"raised": 0, "resolved": 0})
        row["raised"] += 1
        row["resolved"] += int(flag.get("resolved") is not None)
    return {
        "total": total,
        "sensitive": sensitive,
        "by_purpose": dict(sorted(by_purpose.items())),
        "by_district": dict(sorted(by_district.items())),
        "by_month": dict(sorted(by_month.items())),
        "flags": dict(sorted(rules.items())),
        "flags_open": sum(1 for f in state.flags.values() if f.get("resolved") is None),
        "live": live_from_state(state),  # live and emergency grants (custodes.access.live)
    }


def disclosure_policy(state: PublicState) -> tuple[int, int]:
    """(disclosure delay in seconds, minimum published count) from the policy in force."""
    policy = (state.policy or {}).get("policy") or {}
    delay = policy.get("disclosure_delay_s", DEFAULT_DELAY_S)
    k = policy.get("min_count", DEFAULT_MIN_COUNT)
    ok_delay = isinstance(delay, int) and not isinstance(delay, bool) and delay >= 0
    ok_k = isinstance(k, int) and not isinstance(k, bool) and k >= 1
    return (delay if ok_delay else DEFAULT_DELAY_S), (k if ok_k else DEFAULT_MIN_COUNT)


DEFAULT_DELAY_S = 30 * 86400
DEFAULT_MIN_COUNT = 3


def _overlaps(a_from: int, a_to: int, b_from: int, b_to: int) -> bool:
    return a_from < b_to and b_from < a_to


def recording_near(
    state: PublicState, cams: list[str], from_ms: int, to_ms: int
) -> list[dict[str, Any]]:
    """For each camera, the silences and declared outages the log shows over a window."""
    silent_since: dict[str, int] = {}
    gaps: dict[str, list[dict[str, Any]]] = {c: [] for c in cams}
    for ev in state.outages:
        kind = ev["type"]
        if kind == "camera.silent" and ev.get("camera") in gaps:
            silent_since[ev["camera"]] = parse_time(ev["since"])
        elif kind == "camera.back" and ev.get("camera") in gaps:
            start = parse_time(ev["silent_since"])
            end = parse_time(ev["time"])
            silent_since.pop(ev["camera"], None)
            if _overlaps(start, end, from_ms, to_ms):
                gaps[ev["camera"]].append({"kind": "silent", "from": ev["silent_since"],
                                           "to": ev["time"], "index": ev["index"]})  # fmt: skip
        elif kind in ("outage.declared", "maintenance.declared"):
            f, t = parse_time(ev["from"]), parse_time(ev["to"])
            for c in ev.get("cameras") or []:
                if c in gaps and _overlaps(f, t, from_ms, to_ms):
                    gaps[c].append({"kind": kind.split(".")[0], "from": ev["from"], "to": ev["to"],
                                    "late": ev.get("late"), "index": ev["index"]})  # fmt: skip
    for c, since in silent_since.items():
        if since < to_ms:
            gaps[c].append({"kind": "silent", "from": format_time(since), "to": None})
    return [{"camera": c, "recording": not gaps[c], "gaps": gaps[c]} for c in cams]


def who_looked(
    state: PublicState,
    lat: float,
    lon: float,
    radius_m: float,
    from_ms: int,
    to_ms: int,
    now_ms: int,
) -> dict[str, Any]:
    """How often footage of a place and window was requested, approved, denied, released.

    Counts only requests the gateway has disclosed (``access.disclosed``, written
    once the policy's delay has passed); counts below the policy's minimum read
    "fewer than k", and when the requests themselves are fewer than k nothing
    is broken down (no decisions, no purposes).  A request is counted when one
    of its disclosed cameras was ever registered within ``radius_m`` and its
    disclosed window overlaps ``[from_ms, to_ms)``, as in
    :func:`custodes.reports.figures.who_looked`.
    """
    delay_s, k = disclosure_policy(state)
    near = sorted(
        cid
        for cid, cam in state.cameras.items()
        if haversine_m(lat, lon, float(cam["lat"]), float(cam["lon"])) <= radius_m
    )
    near_set = set(near)
    kinds = ("requested", "approved", "denied", "released")
    total = dict.fromkeys(kinds, 0)
    by_purpose: dict[str, dict[str, int]] = {}
    for req in state.requests.values():
        disc = req.get("disclosed")
        if disc is None or not near_set.intersection(disc.get("cameras") or []):
            continue
        if not _overlaps(parse_time(disc["from"]), parse_time(disc["to"]), from_ms, to_ms):
            continue
        approved, denied, released, _expired = _decided(req)
        row = by_purpose.setdefault(req["purpose"], dict.fromkeys(kinds, 0))
        for kind, on in zip(kinds, (True, approved, denied, released), strict=True):
            row[kind] += int(on)
            total[kind] += int(on)
    not_yet = to_ms > now_ms - delay_s * 1000
    small = 0 < total["requested"] < k
    return {
        "at": {"lat": lat, "lon": lon},
        "radius_m": radius_m,
        "from": format_time(from_ms),
        "to": format_time(to_ms),
        "cameras": near,
        # Below the minimum, nothing is broken down: only "fewer than k" requests.
        "counts": {"requested": _k(total["requested"], k)}
        if small
        else {kind: _k(n, k) for kind, n in total.items()},
        "by_purpose": {}
        if small
        else {
            p: {kind: _k(n, k) for kind, n in row.items()} for p, row in sorted(by_purpose.items())
        },
        "recording": recording_near(state, near, from_ms, to_ms),
        "disclosure_delay_s": delay_s,
        "min_count": k,
        "within_delay": not_yet,
    }


def outage_timeline(state: PublicState) -> list[dict[str, Any]]:
    """The outage entries, newest first, each with a day, a kind and its cameras."""
    out = [outage_item(ev) for ev in state.outages]
    out.reverse()
    return out


def outage_item(ev: dict[str, Any]) -> dict[str, Any]:
    """One outage entry of the state as the timeline shows it: kind, day, cameras, words."""
    kind = ev["type"]
    cams = ev.get("cameras") or ([ev["camera"]] if "camera" in ev else [])
    item = {"kind": kind, "time": ev["time"], "day": ev["time"][:10], "cameras": cams,
            "index": ev["index"], "late": bool(ev.get("late"))}  # fmt: skip
    if kind == "camera.silent":
        item["detail"] = f"silent since {ev['since']}"
    elif kind == "camera.back":
        item["detail"] = f"back; silent since {ev['silent_since']}"
    elif kind == "outage.correlated":
        item["detail"] = (
            f"{plural(len(cams), 'camera')} within {ev['radius_m']} m of"
            f" {ev['lat']}, {ev['lon']}"
            f" fell silent together since {ev['since']}"
        )
    else:
        item["detail"] = f"{ev['from']} to {ev['to']}: {ev.get('reason', '')}"
    return item


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 camera``, ``6 cameras``, ``1,200 cameras``."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


TIMELINE_DAYS = 14
TIMELINE_ROWS = 60


def outage_chart(state: PublicState, now_ms: int) -> dict[str, Any] | None:
    """The outages as bars on a time axis: one row per camera, over the last two weeks of events.

    Silences run from ``since`` to the camera's ``camera.back`` (or now);
    declarations are drawn over them, marked when late; correlated outages are
    ticks.  Positions are percentages of the axis, so the page draws them
    without computing anything.
    """
    rows: dict[str, list[dict[str, Any]]] = {}
    open_since: dict[str, tuple[int, int]] = {}

    def add(cam: str, item: dict[str, Any]) -> None:
        rows.setdefault(cam, []).append(item)

    for ev in state.outages:
        kind = ev["type"]
        if kind == "camera.silent":
            open_since[ev["camera"]] = (parse_time(ev["since"]), ev["index"])
        elif kind == "camera.back":
            start = parse_time(ev["silent_since"])
            open_since.pop(ev["camera"], None)
            add(ev["camera"], {"kind": "silent", "a": start, "b": parse_time(ev["time"])})
        elif kind in ("outage.declared", "maintenance.declared"):
            a, b = parse_time(ev["from"]), parse_time(ev["to"])
            for cam in ev.get("cameras") or []:
                add(cam, {"kind": kind.split(".")[0], "a": a, "b": b, "late": bool(ev.get("late"))})
        elif kind == "outage.correlated":
            at = parse_time(ev["since"])
            for cam in ev.get("cameras") or []:
                add(cam, {"kind": "correlated", "a": at, "b": at})
    for cam, (since, _index) in open_since.items():
        add(cam, {"kind": "silent", "a": since, "b": max(since, now_ms), "open": True})
    if not rows:
        return None
    # The axis ends with the day of the latest event; a silence still open runs to its end.
    end: int = max(i["a" if i.get("open") else "b"] for items in rows.values() for i in items)
    first: int = min(i["a"] for items in rows.values() for i in items)
    start = max(first, end - TIMELINE_DAYS * 86400_000)
    day = 86400_000
    t0, t1 = start - start % day, end - end % day + day
    span = t1 - t0

    def pct(t: int) -> float:
        return round(100 * (min(max(t, t0), t1) - t0) / span, 3)

    chart_rows = []
    for cam in sorted(rows, key=lambda c: (min(i["a"] for i in rows[c]), c)):
        bars = []
        for i in rows[cam]:
            if i["b"] < t0:
                continue
            x = pct(i["a"])
            bars.append({**i, "x": x, "w": max(0.15, round(pct(i["b"]) - x, 3)),
                         "from": format_time(i["a"]), "to": format_time(i["b"])})  # fmt: skip
        if bars:
            chart_rows.append({"camera": cam, "bars": bars})
    days = [{"x": pct(t), "label": format_time(t)[:10]} for t in range(t0, t1, day)]
    return {
        "from": format_time(t0),
        "to": format_time(t1),
        "rows": chart_rows[:TIMELINE_ROWS],
        "more": max(0, len(chart_rows) - TIMELINE_ROWS),
        "days": days,
    }
