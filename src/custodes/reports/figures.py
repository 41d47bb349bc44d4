"""The published figures, each defined as a function of the public log alone.

A report covers a *period* ``[from, to)`` (a calendar month or year, UTC) and is
computed from a :class:`~custodes.reports.replay.PublicState`: the log replayed
up to the checkpoint the report names.  "In the period" means the entry's own
``time`` falls in ``[from, to)``.  "At the end" means at ``to`` (cameras
registered before ``to`` and not retired before it, and so on).  Counts are
integers; ratios and durations are floats rounded as stated, so that anyone
recomputing them gets exactly the same numbers.  A figure whose value is
undefined (a median of nothing, a density over no area) is left out.

Deployment (``deployment.*``)
    ``cameras``                 cameras in service at the end
    ``cameras.by_district.D``   of those, in district D: the first defined
                                district (by id) whose polygon holds the camera,
                                else the camera's own ``district`` field, else
                                ``outside`` (as the dashboard's coverage page)
    ``cameras.by_type.T``       by the camera's ``type`` (``unknown`` when unset)
    ``capability.C``            in service at the end with capability C true
                                (``face_recognition_capable`` records what the
                                *hardware* is sold as able to do)
    ``added`` / ``retired``     ``camera.registered`` / ``camera.retired`` in
                                the period
    ``districts``               districts defined at the checkpoint
    ``per_km2.D``               cameras in D at the end / D's ``area_km2``, 2 dp
    ``per_1000.D``              cameras in D at the end * 1000 / population, 2 dp
    ``places.K.places`` / ``places.K.watched``
                                places of category K, and those with a camera in
                                service at the end within 100 m (haversine)
Use (``access.*``)
    ``requests``                ``access.requested`` in the period, also
                                ``.by_purpose.P``, ``.by_district.D`` (a request
                                counts once in each district it names),
                                ``.by_month.YYYY-MM``, ``.sensitive``,
                                ``.needing_judge``, ``.needing_two_approvals``
    ``requests.outcome.O``      what became of the period's requests by the
                                checkpoint: ``released``, ``expired``,
                                ``denied``, ``approved`` (approved, not yet
                                released or expired), ``pending``
    ``approvals``, ``denials``, ``expired``, ``releases``
                                entries of each kind in the period
    ``requesters`` / ``approvers``  distinct pseudonyms among the period's
                                requests / approvals and denials
    ``approval_hours.median``   median hours from a request to its completing
                                approval, over approvals in the period, 2 dp
Sharing (``sharing.*``)
    ``releases``, ``releases.redacted``, ``releases.unredacted`` (redaction
    method ``none``), ``releases.faces_masked`` and ``releases.plates_masked``
    (releases whose ``redaction`` says ``faces`` / ``plates`` is true),
    ``segments`` (segments used), ``bytes`` (the clips' bytes: a release's
    ``output``, or under custody, where the release is logged before the cut,
    the ``access.exported`` that names it, counted in the period of the export),
    ``exports`` (``access.exported`` entries in the period),
    ``unredacted_granted`` (approvals granting an unredacted export),
    ``disclosed`` and ``revealed`` (entries in the period)
Violations (``violations.*``), from the log's own order
    ``self_approval``           approvals in the period by the requester
    ``release_without_approval``  releases in the period with no completing
                                approval earlier in the log
    ``release_after_expiry``    releases in the period after the latest
                                completing approval had expired
Anomaly flags (``flags.*``)
    ``raised``, ``raised.by_rule.R``, ``resolved``, ``resolved.by_rule.R`` (in
    the period) and ``open_at_end`` (raised before ``to``, not resolved before)
Outages (``outages.*``)
    ``silent`` / ``back``       ``camera.silent`` / ``camera.back`` in the period
    ``cameras_silent``          distinct cameras that fell silent in the period
    ``silent_hours``            camera-hours of silence inside the period: each
                                silence runs from its ``since`` to the entry
                                time of the camera's next ``camera.back`` (or
                                the last entry of the log), 2 dp
    ``correlated``, ``correlated.cameras``  ``outage.correlated`` entries and
                                the cameras they name
    ``correlated.undeclared``   of those, the ones whose ``since`` no outage or
                                maintenance declaration in the log covers for
                                any of their cameras
    ``declared``, ``maintenance``, ``declared_late`` (either kind, ``late``)
``segments.recorded``           segments logged by batches in the period
Data retention (``retention.*``)
    ``actions`` and ``actions.by_type.T``: ``retention.*`` entries in the period
Accounts (``users.*``)
    ``added``, ``revoked`` (in the period), ``active.by_role.R`` (at the end)
Live viewing (``live.*``, only when the period has a live grant)
    ``grants``, ``emergency``, ``minutes_granted``, ``minutes_live``, ``segments_viewed``,
    ``reviews_late``, ``reviews_missing`` and ``pending``
    (:func:`custodes.access.live_stats.live_period`)
Policy (``policy.*``)
    ``version_at_end`` (0 when none), ``changes`` (in the period) and
    ``in_force.V`` = 1 for each version in force at some time in the period
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from custodes.errors import UsageError
from custodes.fleet.model import format_time, parse_time
from custodes.geo.geometry import bbox, haversine_m, point_in_polygon
from custodes.reports.replay import PublicState, time_ms

__all__ = [
    "Districts",
    "Figures",
    "compute",
    "coverage",
    "district_of",
    "parse_period",
    "place_categories",
    "who_looked",
]

Figures = dict[str, int | float]

_PERIOD = re.compile(r"(\d{4})(?:-(\d{2}))?")
_CAPABILITIES = ("recording", "audio", "ptz", "face_recognition_capable")


def parse_period(text: str) -> tuple[int, int]:
    """``YYYY-MM`` or ``YYYY`` as ``(from_ms, to_ms)``, UTC, ``to`` exclusive."""
    m = _PERIOD.fullmatch(text.strip())
    month = int(m.group(2)) if m and m.group(2) else None
    if (
        m is None
        or not 1970 <= int(m.group(1)) <= 9998
        or (month is not None and not 1 <= month <= 12)
    ):
        raise UsageError(
            f"the period {text!r} must be a month such as 2026-11 or a year such as 2026"
        )
    year = int(m.group(1))
    if month is None:
        start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    else:
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()) * 1000, int(end.timestamp()) * 1000


@functools.lru_cache(maxsize=1 << 16)
def _ms_cached(text: str) -> int:
    return time_ms(text)


def _ms(text: Any) -> int:
    return _ms_cached(text) if isinstance(text, str) else parse_time(text)


def _active_at(cam: dict[str, Any], at_ms: int | None) -> bool:
    if at_ms is None:
        return bool(cam.get("status") == "active")
    if _ms(cam["registered"]) >= at_ms:
        return False
    retired = cam.get("retired")
    return retired is None or _ms(retired) >= at_ms


_BOX_CELL = 0.05
"""Degrees: district bounding boxes are indexed in cells this wide."""


class Districts:
    """Which district each camera is in: the first defined district (by id) whose polygon
    holds it, else the camera's own ``district`` field, else ``outside``."""

    def __init__(self, state: PublicState) -> None:
        self._memo: dict[str, str] = {}
        self.boxes: list[tuple[str, dict[str, Any], tuple[float, float, float, float]]] = []
        for key in sorted(state.districts):
            polygon = state.districts[key].get("polygon")
            if isinstance(polygon, dict):
                try:
                    self.boxes.append((key, polygon, bbox(polygon)))
                except (ValueError, TypeError, IndexError):
                    continue
        # Each box is listed in the cells it overlaps; a huge one is checked everywhere.
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._everywhere: list[int] = []
        for i, (_, _, (x0, y0, x1, y1)) in enumerate(self.boxes):
            cx0, cy0 = math.floor(x0 / _BOX_CELL), math.floor(y0 / _BOX_CELL)
            cx1, cy1 = math.floor(x1 / _BOX_CELL), math.floor(y1 / _BOX_CELL)
            if (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > 4096:
                self._everywhere.append(i)
                continue
            for cx in range(cx0, cx1 + 1):
                for cy in range(cy0, cy1 + 1):
                    self._cells.setdefault((cx, cy), []).append(i)

    def of(self, cam: dict[str, Any]) -> str:
        lat, lon, own = cam["lat"], cam["lon"], cam.get("district")
        memo_key = str(cam.get("id"))
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        found = own if isinstance(own, str) and own else "outside"
        cell = (math.floor(lon / _BOX_CELL), math.floor(lat / _BOX_CELL))
        candidates = self._cells.get(cell, [])
        if self._everywhere:
            candidates = sorted({*candidates, *self._everywhere})
        for i in candidates:
            key, polygon, (x0, y0, x1, y1) = self.boxes[i]
            if x0 <= lon <= x1 and y0 <= lat <= y1 and point_in_polygon(lat, lon, polygon):
                found = key
                break
        self._memo[memo_key] = found
        return found


def district_of(cam: dict[str, Any], state: PublicState) -> str:
    """The district a camera counts in (see :class:`Districts`)."""
    return Districts(state).of(cam)


def _by_district(
    state: PublicState, at_ms: int | None, where: Districts | None = None
) -> Counter[str]:
    where = where or Districts(state)
    return Counter(where.of(cam) for cam in state.cameras.values() if _active_at(cam, at_ms))


def coverage(
    state: PublicState, at_ms: int | None = None, *, where: Districts | None = None
) -> list[dict[str, Any]]:
    """One row per district: cameras in service (now, or at ``at_ms``) and their density.

    Rows: ``district``, ``name``, ``cameras``, ``area_km2``, ``per_km2`` (2 dp),
    ``population``, ``per_1000`` (2 dp); densities are None where undefined.
    Districts named by cameras but not defined in the log come last, without
    area or population.
    """
    counts = _by_district(state, at_ms, where)
    rows: list[dict[str, Any]] = []
    for key in sorted(state.districts):
        d = state.districts[key]
        n = counts.get(key, 0)
        raw_area, raw_pop = d.get("area_km2"), d.get("population")
        area = raw_area if isinstance(raw_area, int | float) and raw_area is not True else 0
        pop = raw_pop if isinstance(raw_pop, int) and not isinstance(raw_pop, bool) else 0
        area_ok, pop_ok = area > 0, pop > 0
        rows.append(
            {
                "district": key,
                "name": d.get("name", key),
                "cameras": n,
                "area_km2": area if area_ok else None,
                "per_km2": round(n / area, 2) if area_ok else None,
                "population": pop if pop_ok else None,
                "per_1000": round(n * 1000 / pop, 2) if pop_ok else None,
            }
        )
    for key in sorted(set(counts) - set(state.districts)):
        rows.append(
            {
                "district": key,
                "name": key,
                "cameras": counts[key],
                "area_km2": None,
                "per_km2": None,
                "population": None,
                "per_1000": None,
            }
        )
    return rows


class _Grid:
    """Camera positions bucketed into cells about ``radius_m`` wide, for near queries."""

    def __init__(self, points: Iterable[tuple[str, float, float]], radius_m: float) -> None:
        pts = list(points)
        self.radius = radius_m
        self.dlat = max(radius_m, 1.0) / 111_000.0
        top = max((abs(lat) for _, lat, _ in pts), default=0.0)
        self.dlon = self.dlat / max(math.cos(math.radians(min(top + 1.0, 89.0))), 0.01)
        self.cells: dict[tuple[int, int], list[tuple[str, float, float]]] = {}
        for p in pts:
            self.cells.setdefault(self._cell(p[1], p[2]), []).append(p)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.dlat), math.floor(lon / self.dlon)

    def near(self, lat: float, lon: float) -> list[str]:
        if abs(lat) > 89.0:  # the grid is not built for the poles: check everything
            cands = [p for cell in self.cells.values() for p in cell]
        else:
            ci, cj = self._cell(lat, lon)
            cands = [
                p
                for di in (-1, 0, 1)
                for dj in (-1, 0, 1)
                for p in self.cells.get((ci + di, cj + dj), ())
            ]
        return sorted(
            ident for ident, plat, plon in cands if haversine_m(lat, lon, plat, plon) <= self.radius
        )


def _camera_grid(state: PublicState, radius_m: float, at_ms: int | None) -> _Grid:
    return _Grid(
        ((k, c["lat"], c["lon"]) for k, c in state.cameras.items() if _active_at(c, at_ms)),
        radius_m,
    )


def place_categories(
    state: PublicState, radius_m: float = 100, at_ms: int | None = None
) -> list[dict[str, Any]]:
    """One row per place category: how watched that kind of place is.

    Rows: ``category``, ``places``, ``watched`` (places with a camera in service
    within ``radius_m``), ``share`` (watched / places, 3 dp) and ``cameras``
    (distinct cameras within ``radius_m`` of some place of the category).
    """
    grid = _camera_grid(state, radius_m, at_ms)
    acc: dict[str, tuple[int, int, set[str]]] = {}
    for place in state.places.values():
        near = grid.near(place["lat"], place["lon"])
        places, watched, cams = acc.get(place.get("category") or "uncategorised", (0, 0, set()))
        cams.update(near)
        acc[place.get("category") or "uncategorised"] = (places + 1, watched + bool(near), cams)
    return [
        {
            "category": cat,
            "places": places,
            "watched": watched,
            "share": round(watched / places, 3),
            "cameras": len(cams),
        }
        for cat, (places, watched, cams) in sorted(acc.items())
    ]


# -- the report's figures ------------------------------------------------------


def compute(state: PublicState, period_from_ms: int, period_to_ms: int) -> Figures:
    """Every published figure for the period, named as in the module docstring."""
    lo, hi = period_from_ms, period_to_ms

    def inside(text: Any) -> bool:
        return lo <= _ms(text) < hi

    fig: Figures = {}

    def bump(key: str, by: int = 1) -> None:
        fig[key] = fig.get(key, 0) + by

    _deployment(state, lo, hi, inside, fig, bump)
    _use(state, lo, hi, inside, fig, bump)
    _outages(state, lo, hi, inside, fig, bump)
    for day, count in state.segments.items():
        if inside(day + "T00:00:00Z"):
            bump("segments.recorded", count)
    fig.setdefault("segments.recorded", 0)
    fig["retention.actions"] = 0
    for entry in state.retention:
        if inside(entry["time"]):
            bump("retention.actions")
            bump(f"retention.actions.by_type.{entry['type'].removeprefix('retention.')}")
    fig["users.added"] = sum(inside(u["added"]) for u in state.users.values())
    fig["users.revoked"] = sum(
        bool(u["revoked"]) and inside(u["revoked"]) for u in state.users.values()
    )
    for user in state.users.values():
        if _ms(user["added"]) < hi and (user["revoked"] is None or _ms(user["revoked"]) >= hi):
            bump(f"users.active.by_role.{user['role']}")
    _policy(state, lo, hi, fig)
    from custodes.access.live_stats import live_period

    fig.update(live_period(state, lo, hi))
    return dict(sorted(fig.items()))


def _deployment(state: PublicState, lo: int, hi: int, inside: Any, fig: Figures, bump: Any) -> None:
    fig["deployment.cameras"] = 0
    fig["deployment.added"] = sum(inside(c["registered"]) for c in state.cameras.values())
    fig["deployment.retired"] = sum(
        c["retired"] is not None and inside(c["retired"]) for c in state.cameras.values()
    )
    for cap in _CAPABILITIES:
        fig[f"deployment.capability.{cap}"] = 0
    where = Districts(state)
    for cam in state.cameras.values():
        if not _active_at(cam, hi):
            continue
        bump("deployment.cameras")
        bump(f"deployment.cameras.by_district.{where.of(cam)}")
        kind = cam.get("type")
        bump(f"deployment.cameras.by_type.{kind if isinstance(kind, str) and kind else 'unknown'}")
        caps = cam.get("capabilities")
        if isinstance(caps, dict):
            for cap in _CAPABILITIES:
                if caps.get(cap) is True:
                    bump(f"deployment.capability.{cap}")
    fig["deployment.districts"] = len(state.districts)
    for row in coverage(state, hi, where=where):
        if row["per_km2"] is not None:
            fig[f"deployment.per_km2.{row['district']}"] = row["per_km2"]
        if row["per_1000"] is not None:
            fig[f"deployment.per_1000.{row['district']}"] = row["per_1000"]
    for row in place_categories(state, 100, hi):
        fig[f"deployment.places.{row['category']}.places"] = row["places"]
        fig[f"deployment.places.{row['category']}.watched"] = row["watched"]


def _complete_before(req: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The latest completing approval logged before ``index``."""
    done = [a for a in req["approvals"] if a.get("complete") is True and a["index"] < index]
    return done[-1] if done else None


def _use(state: PublicState, lo: int, hi: int, inside: Any, fig: Figures, bump: Any) -> None:
    for key in ("requests", "approvals", "denials", "expired", "releases"):
        fig[f"access.{key}"] = 0
    released = ("releases", "releases.redacted", "releases.unredacted", "releases.faces_masked")
    for key in (*released, "releases.plates_masked", "segments", "bytes", "exports"):
        fig[f"sharing.{key}"] = 0
    for key in ("unredacted_granted", "disclosed", "revealed"):
        fig[f"sharing.{key}"] = 0
    for key in ("self_approval", "release_without_approval", "release_after_expiry"):
        fig[f"violations.{key}"] = 0
    requesters: set[str] = set()
    deciders: set[str] = set()
    hours: list[float] = []
    for req in state.requests.values():
        if inside(req["time"]):
            bump("access.requests")
            requesters.add(str(req.get("requester")))
            bump(f"access.requests.by_purpose.{req['purpose']}")
            for d in req.get("districts") or []:
                bump(f"access.requests.by_district.{d}")
            bump(f"access.requests.by_month.{req['time'][:7]}")
            raw_needs = req.get("needs")
            needs: dict[str, Any] = raw_needs if isinstance(raw_needs, dict) else {}
            if req.get("sensitive") is True:
                bump("access.requests.sensitive")
            if needs.get("judge") is True:
                bump("access.requests.needing_judge")
            if isinstance(needs.get("approvals"), int) and needs["approvals"] >= 2:
                bump("access.requests.needing_two_approvals")
            bump(f"access.requests.outcome.{_outcome(req)}")
        started = _ms(req["time"])
        completed = False
        for appr in req["approvals"]:
            if not inside(appr["time"]):
                completed = completed or appr.get("complete") is True
                continue
            bump("access.approvals")
            deciders.add(str(appr.get("approver")))
            if appr.get("approver") == req.get("requester"):
                bump("violations.self_approval")
            if appr.get("unredacted") is True:
                bump("sharing.unredacted_granted")
            if appr.get("complete") is True and not completed:
                completed = True
                hours.append((_ms(appr["time"]) - started) / 3_600_000)
        for denial in req["denials"]:
            if inside(denial["time"]):
                bump("access.denials")
                deciders.add(str(denial.get("approver")))
        if req["expired"] and inside(req["expired_at"]):
            bump("access.expired")
        for rel in req["released"]:
            if not inside(rel["time"]):
                continue
            bump("access.releases")
            bump("sharing.releases")
            redaction = rel.get("redaction")
            plain = isinstance(redaction, dict) and redaction.get("method") == "none"
            bump("sharing.releases.unredacted" if plain else "sharing.releases.redacted")
            for part in ("faces", "plates"):  # what the entry says was masked, nothing assumed
                if not plain and isinstance(redaction, dict) and redaction.get(part) is True:
                    bump(f"sharing.releases.{part}_masked")
            bump("sharing.segments", len(rel["segments"]))
            _bytes(rel, bump)
            grant = _complete_before(req, rel["index"])
            if grant is None:
                bump("violations.release_without_approval")
            elif _ms(grant["expires"]) < _ms(rel["time"]):
                bump("violations.release_after_expiry")
        for ex in req.get("exported", ()):  # under custody: the clip, after its release
            if inside(ex["time"]):
                bump("sharing.exports")
                _bytes(ex, bump)
        for key in ("disclosed", "revealed"):
            if req[key] is not None and inside(req[key]["time"]):
                bump(f"sharing.{key}")
    fig["access.requesters"] = len(requesters)
    fig["access.approvers"] = len(deciders)
    if hours:
        fig["access.approval_hours.median"] = round(statistics.median(hours), 2)
    fig["flags.raised"] = 0
    fig["flags.resolved"] = 0
    fig["flags.open_at_end"] = 0
    for flag in state.flags.values():
        rule = flag["rule"]
        if inside(flag["time"]):
            bump("flags.raised")
            bump(f"flags.raised.by_rule.{rule}")
        res = flag["resolved"]
        if res is not None and inside(res["time"]):
            bump("flags.resolved")
            bump(f"flags.resolved.by_rule.{rule}")
        if _ms(flag["time"]) < hi and (res is None or _ms(res["time"]) >= hi):
            bump("flags.open_at_end")


def _bytes(entry: dict[str, Any], bump: Any) -> None:
    """Add the clip size an ``access.released`` or ``access.exported`` names, if any."""
    output = entry.get("output")
    size = output.get("bytes") if isinstance(output, dict) else None
    if isinstance(output, dict) and isinstance(output.get("manifest"), dict):
        size = output["manifest"].get("bytes")  # an archive: its files, not its manifest
    if isinstance(size, int) and not isinstance(size, bool):
        bump("sharing.bytes", size)


def _outcome(req: dict[str, Any]) -> str:
    if req["released"]:
        return "released"
    if req["expired"]:
        return "expired"
    if any(a.get("complete") is True for a in req["approvals"]):
        return "approved"
    if req["denials"]:
        return "denied"
    return "pending"


def _covered(declarations: list[dict[str, Any]], cameras: Iterable[str], at: int) -> bool:
    wanted = set(cameras)
    return any(
        wanted & set(d.get("cameras") or []) and _ms(d["from"]) <= at < _ms(d["to"])
        for d in declarations
    )


def _outages(state: PublicState, lo: int, hi: int, inside: Any, fig: Figures, bump: Any) -> None:
    for key in ("silent", "back", "cameras_silent", "correlated", "correlated.cameras"):
        fig[f"outages.{key}"] = 0
    for key in ("correlated.undeclared", "declared", "maintenance", "declared_late"):
        fig[f"outages.{key}"] = 0
    declarations = [
        o for o in state.outages if o["type"] in ("outage.declared", "maintenance.declared")
    ]
    silent_cams: set[str] = set()
    open_since: dict[str, int] = {}
    spans: list[tuple[int, int]] = []
    for o in state.outages:
        kind = o["type"]
        if kind == "camera.silent":
            open_since.setdefault(o["camera"], _ms(o["since"]))
            if inside(o["time"]):
                bump("outages.silent")
                silent_cams.add(o["camera"])
        elif kind == "camera.back":
            since = open_since.pop(o["camera"], None)
            if since is not None:
                spans.append((since, _ms(o["time"])))
            if inside(o["time"]):
                bump("outages.back")
        elif kind == "outage.correlated" and inside(o["time"]):
            bump("outages.correlated")
            bump("outages.correlated.cameras", len(o["cameras"]))
            if not _covered(declarations, o["cameras"], _ms(o["since"])):
                bump("outages.correlated.undeclared")
        elif kind in ("outage.declared", "maintenance.declared") and inside(o["time"]):
            bump("outages.declared" if kind == "outage.declared" else "outages.maintenance")
            if o.get("late") is True:
                bump("outages.declared_late")
    end = state.last_ms if state.last_ms is not None else lo
    spans.extend((since, end) for since in open_since.values())
    total_ms = sum(max(0, min(b, hi) - max(a, lo)) for a, b in spans)
    fig["outages.cameras_silent"] = len(silent_cams)
    fig["outages.silent_hours"] = round(total_ms / 3_600_000, 2)


def _policy(state: PublicState, lo: int, hi: int, fig: Figures) -> None:
    versions = state.policies
    fig["policy.changes"] = sum(lo <= _ms(p["time"]) < hi for p in versions)
    at_end = [p for p in versions if _ms(p["time"]) < hi]
    fig["policy.version_at_end"] = at_end[-1]["version"] if at_end else 0
    for i, p in enumerate(versions):
        start = _ms(p["time"])
        stop = _ms(versions[i + 1]["time"]) if i + 1 < len(versions) else None
        if start < hi and (stop is None or stop > lo):
            fig[f"policy.in_force.{p['version']}"] = 1


# -- who looked at this place and time? ----------------------------------------


def who_looked(
    state: PublicState,
    lat: float,
    lon: float,
    radius_m: float,
    from_ms: int,
    to_ms: int,
    now_ms: int,
    delay_s: int,
    min_count: int,
) -> dict[str, Any]:
    """How many requests looked at cameras near a place during a window.

    Answered from ``access.disclosed`` entries only: a request's cameras and
    window are published once the policy's disclosure delay has passed, so the
    answer is complete only for windows that end before ``now - delay``
    (``complete``).  A count of 1 to ``min_count - 1`` is shown as "fewer than
    k" (``requests`` is then None), and so is each purpose's count.

    Returns ``cameras`` (ids within ``radius_m`` that were ever registered),
    ``requests``, ``shown``, ``by_purpose``, ``complete_until``, ``complete``
    and the question itself.
    """
    if from_ms >= to_ms:
        raise UsageError("the window must end after it starts")
    if radius_m <= 0 or radius_m > 50_000:
        raise UsageError("the radius must be between 0 and 50,000 metres")
    grid = _Grid(((k, c["lat"], c["lon"]) for k, c in state.cameras.items()), radius_m)
    cameras = set(grid.near(lat, lon))
    purposes: Counter[str] = Counter()
    count = 0
    for req in state.requests.values():
        disc = req["disclosed"]
        if disc is None or not cameras & set(disc.get("cameras") or []):
            continue
        if _ms(disc["from"]) < to_ms and _ms(disc["to"]) > from_ms:
            count += 1
            purposes[str(req.get("purpose"))] += 1
    k = max(1, min_count)
    small = 0 < count < k

    def show(n: int) -> int | str:
        return f"fewer than {k}" if 0 < n < k else n

    until = now_ms - delay_s * 1000
    return {
        "lat": lat,
        "lon": lon,
        "radius_m": radius_m,
        "from": format_time(from_ms),
        "to": format_time(to_ms),
        "cameras": sorted(cameras),
        "requests": None if small else count,
        "shown": str(show(count)),
        "by_purpose": {} if small else {p: show(n) for p, n in sorted(purposes.items())},
        "complete_until": format_time(until),
        "complete": to_ms <= until,
    }
