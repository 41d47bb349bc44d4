"""Insider-abuse flags: six rules over what the access log already says, pure functions, no I/O.

The gateway hands :func:`evaluate` the facts of every recent request
(:class:`RequestFacts`) and decision (:class:`DecisionFacts`); it returns the
findings (:class:`Flag`), each with a rule, a subject, a one-sentence reason and
the requests it rests on.  The gateway appends one ``anomaly.flagged`` entry per
finding whose ``key`` it has not flagged before, and the flag goes to the
auditors' queue.  People appear only as pseudonyms, places only as 100 m cell
ids (:func:`cell_of`), cases only as keyed hashes that are never printed.

The rules and their thresholds (every one is a field of :class:`AnomalyConfig`;
the defaults are shown):

``volume``
    One requester's count over the last 7 days (``volume_window_days``) against
    (a) their own weekly average over the 4 weeks before it
    (``volume_baseline_weeks``) and (b) the median count of their peers, the
    other requesters active in the same 7 days.  It fires when the count is at
    least 20 (``volume_min_requests``: about three a day, below which volume is
    not the concern), at least 3 times the own average (``volume_own_factor``,
    the average taken as at least 1 a week) and at least 5 times the peers'
    median (``volume_peer_factor``).  The own baseline is used only with 2
    weeks of the requester's history before the window
    (``volume_min_history_weeks``; averaged over the whole days of history
    there are, up to 4 weeks); the peers' median only with at least 5 peers
    (``volume_min_peers``) and only when the facts given cover the whole
    window (the earliest request is at least 7 days old).  With neither
    comparison, nothing fires: a few days of counts make noise, not evidence.
    So pass :func:`evaluate` at least the last 35 days of requests.
``repeated-place``
    One 100 m cell requested under at least 4 different cases
    (``place_min_cases``, by case key) within 30 days (``place_window_days``):
    the pattern of someone following one home or one door, case after case.
    Several requests under one case are normal and count once.
``odd-hours``
    One requester with at least 4 requests (``odd_min_requests``) made between
    00:00 and 05:00 local time (``odd_from_hour``, ``odd_to_hour``, local time
    is UTC plus ``utc_offset_min``) within 30 days (``odd_window_days``), and
    that being at least a quarter of their requests then (``odd_min_share``).
    One urgent request on night duty is routine; a habit of asking when nobody
    else is at work is what a seller of footage looks like.
``sensitive-zone``
    Every request that touches a sensitive zone (``sensitive``) or an
    assembly's place and time (``assembly``), one flag per request.
``dragnet``
    Every request wider than one case plausibly needs, one flag per request:
    more than 50 cameras (``dragnet_max_cameras``), a window longer than 24
    hours (``dragnet_max_hours``), or an assembly's place and time with at
    least 5 cameras (``dragnet_assembly_cameras``).
``rubber-stamp``
    One approver with at least 20 decisions (``stamp_min_decisions``) in 30
    days (``stamp_window_days``) who approved at least 95% of them
    (``stamp_min_approval_rate``) with a median under 30 seconds
    (``stamp_max_median_s``) from request to decision.

Keys.  A finding's ``key`` is stable while the finding stays the same, so a
gateway that runs the rules every few minutes flags it once.  Per-request rules
use the request id.  The rules over a window use the subject and the period
(local ISO week for ``volume``, local month for the 30-day rules) of the newest
request or decision in the finding: the key does not move while old items slide
out of the window, and a pattern that goes on into a new period, or comes back
after stopping, is flagged again.  :attr:`Flag.id` is derived from the key.

Example::

    >>> r = RequestFacts("r-1", "u-00000000000000aa", 0, "investigation", "k1",
    ...                  ("cam-1",), (cell_of(55.75, 37.62),), 0, 3_600_000,
    ...                  sensitive=True, assembly=False)
    >>> [f.rule for f in evaluate([r], [], AnomalyConfig(), now_ms=60_000)]
    ['sensitive-zone']
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from custodes.errors import FormatError

__all__ = [
    "RULES",
    "AnomalyConfig",
    "DecisionFacts",
    "Flag",
    "RequestFacts",
    "cell_of",
    "evaluate",
]

RULES = ("volume", "repeated-place", "odd-hours", "sensitive-zone", "dragnet", "rubber-stamp")

_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
_M_PER_DEG = math.pi * 6_371_008.8 / 180  # metres per degree of latitude, mean Earth radius
_NAMES_SHOWN = 5


@dataclass(frozen=True)
class RequestFacts:
    """What the rules need to know about one request (no case text, no coordinates)."""

    request: str
    requester: str
    created_ms: int
    purpose: str
    case_key: str
    cameras: tuple[str, ...]
    cells: tuple[str, ...]
    from_ms: int
    to_ms: int
    sensitive: bool
    assembly: bool


@dataclass(frozen=True)
class DecisionFacts:
    """One approval or denial: who decided, and how long after the request."""

    request: str
    approver: str
    requested_ms: int
    decided_ms: int
    approved: bool


@dataclass(frozen=True)
class Flag:
    """One finding: ``subject`` is a pseudonym or a cell id; ``key`` dedupes it."""

    rule: str
    subject: str
    reason: str
    requests: tuple[str, ...]
    key: str

    @property
    def id(self) -> str:
        """``f-`` and 16 hex digits of SHA-256(key): stable, for the private side only.

        The key may hold a cell id, so this id is never published: the log
        carries :func:`custodes.access.flags.public_flag_id` instead.
        """
        return "f-" + hashlib.sha256(self.key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AnomalyConfig:
    """Every threshold of every rule; the module docstring explains each one."""

    utc_offset_min: int = 0
    volume_window_days: int = 7
    volume_baseline_weeks: int = 4
    volume_min_history_weeks: int = 2
    volume_min_requests: int = 20
    volume_own_factor: float = 3.0
    volume_peer_factor: float = 5.0
    volume_min_peers: int = 5
    place_window_days: int = 30
    place_min_cases: int = 4
    odd_from_hour: int = 0
    odd_to_hour: int = 5
    odd_window_days: int = 30
    odd_min_requests: int = 4
    odd_min_share: float = 0.25
    dragnet_max_cameras: int = 50
    dragnet_max_hours: float = 24.0
    dragnet_assembly_cameras: int = 5
    stamp_window_days: int = 30
    stamp_min_decisions: int = 20
    stamp_min_approval_rate: float = 0.95
    stamp_max_median_s: float = 30.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FormatError(f"anomaly setting {f.name} must be a number.")
            if f.type == "int" and not isinstance(value, int):
                raise FormatError(f"anomaly setting {f.name} must be a whole number.")
            if not math.isfinite(value):
                raise FormatError(f"anomaly setting {f.name} must be finite.")
            if f.name != "utc_offset_min" and value < 0:
                raise FormatError(f"anomaly setting {f.name} must not be negative.")
        if not -14 * 60 <= self.utc_offset_min <= 14 * 60:
            raise FormatError("anomaly setting utc_offset_min must be within 14 hours of UTC.")
        for name in ("odd_from_hour", "odd_to_hour"):
            if not 0 <= getattr(self, name) <= 24:
                raise FormatError(f"anomaly setting {name} must be an hour from 0 to 24.")
        for name in ("odd_min_share", "stamp_min_approval_rate"):
            if getattr(self, name) > 1:
                raise FormatError(f"anomaly setting {name} must be a fraction from 0 to 1.")

    @classmethod
    def from_policy(cls, policy: Mapping[str, Any]) -> AnomalyConfig:
        """The settings a policy document asks for, defaults for the rest.

        Read from the policy: ``anomaly`` (an object whose keys are this class's
        field names) and ``odd_hours`` (``{"from": 0, "to": 5,
        "utc_offset_min": 180}`` or ``[0, 5]``); an unknown setting is refused.
        """
        if not isinstance(policy, Mapping):
            raise FormatError("the policy must be a JSON object.")
        values: dict[str, Any] = {}
        odd = policy.get("odd_hours")
        if isinstance(odd, Sequence) and not isinstance(odd, str) and len(odd) == 2:
            values["odd_from_hour"], values["odd_to_hour"] = odd[0], odd[1]
        elif isinstance(odd, Mapping):
            names = {"from": "odd_from_hour", "to": "odd_to_hour"}
            names["utc_offset_min"] = "utc_offset_min"
            for k, v in odd.items():
                if k not in names:
                    raise FormatError(f"the policy's odd_hours has an unknown setting {k!r}.")
                values[names[k]] = v
        elif odd is not None:
            raise FormatError("the policy's odd_hours must be [from, to] or an object.")
        extra = policy.get("anomaly", {})
        if not isinstance(extra, Mapping):
            raise FormatError("the policy's anomaly settings must be a JSON object.")
        known = {f.name for f in fields(cls)}
        for k, v in extra.items():
            if k not in known:
                raise FormatError(f"the policy names an unknown anomaly setting {k!r}.")
            values[k] = v
        return replace(cls(), **values)


def cell_of(lat: float, lon: float, size_m: float = 100) -> str:
    """The id ``cell:LAT,LON`` of the grid cell of about ``size_m`` that holds the point.

    Rows are equal bands of latitude ``size_m`` high; each row is cut into
    equal columns about ``size_m`` wide at its middle.  The id is the cell's
    south-west corner, so it says no more about the place than the cell does.
    """
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise FormatError("a cell needs a latitude within ±90 and a longitude within ±180.")
    if not (math.isfinite(size_m) and 1 <= size_m <= 100_000):
        raise FormatError("a cell must be from 1 m to 100 km across.")
    rows = max(1, round(180 * _M_PER_DEG / size_m))
    lat_step = 180 / rows
    row = min(rows - 1, math.floor((lat + 90) / lat_step))
    south = row * lat_step - 90
    width_deg = size_m / (_M_PER_DEG * max(math.cos(math.radians(south + lat_step / 2)), 1e-6))
    cols = max(1, round(360 / width_deg))
    lon_step = 360 / cols
    col = math.floor((lon + 180) / lon_step) % cols
    west = col * lon_step - 180
    digits = max(0, math.ceil(-math.log10(lat_step))) + 1
    return f"cell:{south:.{digits}f},{west:.{digits}f}"


def evaluate(
    requests: Iterable[RequestFacts],
    decisions: Iterable[DecisionFacts],
    cfg: AnomalyConfig,
    now_ms: int,
) -> list[Flag]:
    """Every finding of every rule as of ``now_ms``, sorted by rule then key.

    Facts dated after ``now_ms`` are ignored.  The answer depends only on the
    facts, not on their order.
    """
    reqs = sorted(
        (r for r in requests if r.created_ms <= now_ms), key=lambda r: (r.created_ms, r.request)
    )
    decs = sorted(
        (d for d in decisions if d.decided_ms <= now_ms),
        key=lambda d: (d.decided_ms, d.request, d.approver, d.approved, d.requested_ms),
    )
    flags = [
        *_volume(reqs, cfg, now_ms),
        *_repeated_place(reqs, cfg, now_ms),
        *_odd_hours(reqs, cfg, now_ms),
        *_per_request(reqs, cfg),
        *_rubber_stamp(decs, cfg, now_ms),
    ]
    order = {rule: i for i, rule in enumerate(RULES)}
    return sorted(flags, key=lambda f: (order[f.rule], f.key))


# -- the rules over a window --------------------------------------------------


def _volume(reqs: list[RequestFacts], cfg: AnomalyConfig, now_ms: int) -> list[Flag]:
    start = now_ms - cfg.volume_window_days * _DAY_MS
    by_user: dict[str, list[RequestFacts]] = defaultdict(list)
    for r in reqs:
        by_user[r.requester].append(r)
    recent: dict[str, list[RequestFacts]] = {}
    first: dict[str, int] = {}
    times: dict[str, list[int]] = {}
    for user, rs in by_user.items():
        ts = [r.created_ms for r in rs]
        i = bisect_right(ts, start)
        if i < len(rs):
            recent[user] = rs[i:]
            first[user] = ts[0]
            times[user] = ts
    counts = sorted(len(rs) for rs in recent.values())
    full = bool(reqs) and reqs[0].created_ms <= start
    out = []
    for user, rs in recent.items():
        n = len(rs)
        if n < cfg.volume_min_requests:
            continue
        peers = None
        if full and len(counts) - 1 >= max(cfg.volume_min_peers, 1):
            peers = _median_without(counts, n)
        history = start - first[user]
        own: tuple[int, float] | None = None  # (days of history used, weekly average)
        if history >= cfg.volume_min_history_weeks * _WEEK_MS and history > 0:
            days = min(7 * cfg.volume_baseline_weeks, -(-history // _DAY_MS))
            ts = times[user]
            before = bisect_right(ts, start) - bisect_right(ts, start - days * _DAY_MS)
            own = (days, before * 7 / days)
        if own is None and peers is None:
            continue
        if own is not None and n < cfg.volume_own_factor * max(own[1], 1.0):
            continue
        if peers is not None and n < cfg.volume_peer_factor * max(peers, 1.0):
            continue
        parts = []
        if own is not None:
            parts.append(
                f"{_times(n, own[1])} their own weekly average of {own[1]:.1f} over the "
                f"previous {own[0]} days"
            )
        if peers is not None:
            parts.append(
                f"{_times(n, peers)} the median of {len(counts) - 1} peers ({_num(peers)})"
            )
        reason = (
            f"{user} made {n} requests in the {cfg.volume_window_days} days to "
            f"{_date(now_ms, cfg)}, {' and '.join(parts)}."
        )
        newest = rs[-1].created_ms
        out.append(Flag("volume", user, reason, _ids(rs), f"volume:{user}:{_week(newest, cfg)}"))
    return out


def _repeated_place(reqs: list[RequestFacts], cfg: AnomalyConfig, now_ms: int) -> list[Flag]:
    start = now_ms - cfg.place_window_days * _DAY_MS
    by_cell: dict[str, list[RequestFacts]] = defaultdict(list)
    for r in reqs[bisect_right([r.created_ms for r in reqs], start) :]:
        for cell in r.cells if len(r.cells) == 1 else set(r.cells):
            by_cell[cell].append(r)
    out = []
    for cell, rs in by_cell.items():
        if len(rs) < cfg.place_min_cases:
            continue
        cases = {r.case_key for r in rs}
        if len(cases) < cfg.place_min_cases or cfg.place_min_cases == 0:
            continue
        reason = (
            f"{cell} was requested under {len(cases)} different cases in the "
            f"{cfg.place_window_days} days to {_date(now_ms, cfg)}, by "
            f"{_names({r.requester for r in rs})}."
        )
        key = f"repeated-place:{cell}:{_month(rs[-1].created_ms, cfg)}"
        out.append(Flag("repeated-place", cell, reason, _ids(rs), key))
    return out


def _odd_hours(reqs: list[RequestFacts], cfg: AnomalyConfig, now_ms: int) -> list[Flag]:
    start = now_ms - cfg.odd_window_days * _DAY_MS
    total: dict[str, int] = defaultdict(int)
    odd: dict[str, list[RequestFacts]] = defaultdict(list)
    for r in reqs[bisect_right([r.created_ms for r in reqs], start) :]:
        total[r.requester] += 1
        if _is_odd(r.created_ms, cfg):
            odd[r.requester].append(r)
    out = []
    for user, rs in odd.items():
        if len(rs) < max(cfg.odd_min_requests, 1) or len(rs) < cfg.odd_min_share * total[user]:
            continue
        reason = (
            f"{user} made {len(rs)} of their {total[user]} requests in the "
            f"{cfg.odd_window_days} days to {_date(now_ms, cfg)} between "
            f"{cfg.odd_from_hour:02d}:00 and {cfg.odd_to_hour:02d}:00 local time."
        )
        key = f"odd-hours:{user}:{_month(rs[-1].created_ms, cfg)}"
        out.append(Flag("odd-hours", user, reason, _ids(rs), key))
    return out


def _rubber_stamp(decs: list[DecisionFacts], cfg: AnomalyConfig, now_ms: int) -> list[Flag]:
    start = now_ms - cfg.stamp_window_days * _DAY_MS
    by_approver: dict[str, list[DecisionFacts]] = defaultdict(list)
    for d in decs[bisect_right([d.decided_ms for d in decs], start) :]:
        by_approver[d.approver].append(d)
    out = []
    for approver, ds in by_approver.items():
        n = len(ds)
        if n < max(cfg.stamp_min_decisions, 1):
            continue
        approved = sum(d.approved for d in ds)
        if approved < cfg.stamp_min_approval_rate * n:
            continue
        waits = sorted(d.decided_ms - d.requested_ms for d in ds)
        median_s = _median(waits) / 1000
        if median_s >= cfg.stamp_max_median_s:
            continue
        reason = (
            f"{approver} approved {approved} of {n} requests decided in the "
            f"{cfg.stamp_window_days} days to {_date(now_ms, cfg)}, a median of "
            f"{_num(median_s)} seconds after each was made."
        )
        key = f"rubber-stamp:{approver}:{_month(ds[-1].decided_ms, cfg)}"
        out.append(Flag("rubber-stamp", approver, reason, _ids(ds), key))
    return out


# -- the rules over one request ---------------------------------------------------


def _per_request(reqs: list[RequestFacts], cfg: AnomalyConfig) -> list[Flag]:
    out = []
    for r in reqs:
        if r.sensitive or r.assembly:
            what = "an assembly's place and time" if r.assembly else "a sensitive zone"
            if r.sensitive and r.assembly:
                what = "a sensitive zone and an assembly's place and time"
            reason = f"{r.requester} made request {r.request}, which touches {what}."
            key = f"sensitive-zone:{r.request}"
            out.append(Flag("sensitive-zone", r.requester, reason, (r.request,), key))
        cams = len(r.cameras)
        if cams > cfg.dragnet_max_cameras or (r.assembly and cams >= cfg.dragnet_assembly_cameras):
            cams = len(set(r.cameras))  # count each camera once
        hours = (r.to_ms - r.from_ms) / 3_600_000
        wide = []
        if cams > cfg.dragnet_max_cameras:
            wide.append(f"{cams} cameras (more than {cfg.dragnet_max_cameras})")
        if hours > cfg.dragnet_max_hours:
            wide.append(f"a {_num(hours)}-hour window (more than {_num(cfg.dragnet_max_hours)})")
        if r.assembly and cams >= cfg.dragnet_assembly_cameras:
            wide.append(f"{cams} cameras at an assembly's place and time")
        if wide:
            reason = f"{r.requester} made request {r.request}, a dragnet of {' and '.join(wide)}."
            key = f"dragnet:{r.request}"
            out.append(Flag("dragnet", r.requester, reason, (r.request,), key))
    return out


# -- helpers -----------------------------------------------------------------------


def _ids(items: Iterable[RequestFacts | DecisionFacts]) -> tuple[str, ...]:
    return tuple(sorted({i.request for i in items}))


def _median(sorted_values: Sequence[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return float(sorted_values[mid]) if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _median_without(sorted_values: Sequence[int], value: int) -> float:
    """The median of ``sorted_values`` with one occurrence of ``value`` left out."""
    skip = bisect_left(sorted_values, value)
    n = len(sorted_values) - 1

    def at(k: int) -> int:
        return sorted_values[k if k < skip else k + 1]

    mid = n // 2
    return float(at(mid)) if n % 2 else (at(mid - 1) + at(mid)) / 2


def _local(ms: int, cfg: AnomalyConfig) -> datetime:
    return datetime.fromtimestamp((ms + cfg.utc_offset_min * 60_000) / 1000, UTC)


def _is_odd(ms: int, cfg: AnomalyConfig) -> bool:
    hour = (ms + cfg.utc_offset_min * 60_000) // 3_600_000 % 24
    lo, hi = cfg.odd_from_hour, cfg.odd_to_hour
    return lo <= hour < hi if lo <= hi else hour >= lo or hour < hi


def _date(ms: int, cfg: AnomalyConfig) -> str:
    return _local(ms, cfg).date().isoformat()


def _week(ms: int, cfg: AnomalyConfig) -> str:
    year, week, _ = _local(ms, cfg).isocalendar()
    return f"{year}-W{week:02d}"


def _month(ms: int, cfg: AnomalyConfig) -> str:
    return _local(ms, cfg).strftime("%Y-%m")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _times(n: int, base: float) -> str:
    return f"{n / max(base, 1.0):.1f} times"


def _names(names: set[str]) -> str:
    shown = sorted(names)
    if len(shown) == 1:
        return shown[0]
    if len(shown) > _NAMES_SHOWN:
        rest = len(shown) - _NAMES_SHOWN + 1
        return ", ".join(shown[: _NAMES_SHOWN - 1]) + f" and {rest} others"
    return ", ".join(shown[:-1]) + " and " + shown[-1]
