"""Public figures of live viewing, recomputable from the log alone.

:func:`live_figures` folds the log's entries (``access.requested`` with ``live``, the
decisions, ``access.revoked``, ``access.viewed``, ``policy.changed``) into, per month of
the grant's start (UTC, ``YYYY-MM``):

``live``                live grants that started (approved), and ``emergency`` grants
``minutes_granted``     the minutes those grants allowed
``minutes_live``        how long they lasted: to their end, revocation or denial, whichever
                        came first (a grant still running counts up to ``now``)
``segments_viewed``     segments logged as viewed under them
``reviews_late``        emergency grants reviewed after their deadline
``reviews_missing``     emergency grants past their deadline and still not reviewed

and, at the top, the same totals and ``pending`` (live grants asked for, not started).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from custodes.access.live import live_of
from custodes.errors import CustodesError
from custodes.fleet.model import format_time, parse_time

__all__ = ["live_figures", "live_from_state", "live_period"]

DEFAULT_REVIEW_S = 4 * 3600
_FIELDS = (
    "live", "emergency", "minutes_granted", "minutes_live", "segments_viewed",
    "reviews_late", "reviews_missing",
)  # fmt: skip


@dataclass
class _Grant:
    requested_ms: int
    minutes: int
    emergency: bool
    needed: int
    review_s: int
    approvals: list[int] = field(default_factory=list)
    stopped_ms: int | None = None
    decided_ms: int | None = None
    viewed: int = 0

    def start(self) -> int | None:
        if self.emergency:
            return self.requested_ms
        if len(self.approvals) >= self.needed:
            return sorted(self.approvals)[self.needed - 1]
        return None


def _t(obj: dict[str, Any]) -> int | None:
    try:
        return parse_time(obj["time"], "time")
    except (KeyError, TypeError, CustodesError):  # a malformed entry counts nowhere
        return None


def live_figures(
    entries: Iterable[tuple[int, Any]],
    now_ms: int,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """The live figures of the log (entries as (index, parsed body) in log order); with
    ``since_ms``/``until_ms``, of the grants that started (or were asked for) in that period."""
    grants: dict[str, _Grant] = {}
    review_s: dict[int, int] = {}
    for _i, obj in entries:
        if not isinstance(obj, dict):
            continue
        kind = obj.get("type")
        if kind == "policy.changed":
            pol = obj.get("policy") or {}
            v = obj.get("version")
            if isinstance(v, int) and isinstance(pol, dict):
                got = pol.get("emergency_review_s", DEFAULT_REVIEW_S)
                review_s[v] = got if isinstance(got, int) else DEFAULT_REVIEW_S
            continue
        rid = obj.get("request")
        if not isinstance(rid, str):
            continue
        t = _t(obj)
        if t is None:
            continue
        if kind == "access.requested":
            live = live_of(obj)
            if live is not None and rid not in grants:
                needed = (obj.get("needs") or {}).get("approvals", 1)
                grants[rid] = _Grant(
                    t, live[0], live[1], needed if isinstance(needed, int) else 1,
                    review_s.get(obj.get("policy"), DEFAULT_REVIEW_S),  # type: ignore[arg-type]
                )  # fmt: skip
            continue
        g = grants.get(rid)
        if g is None:
            continue
        if kind == "access.approved":
            g.approvals.append(t)
            g.decided_ms = g.decided_ms if g.decided_ms is not None else t
        elif kind == "access.denied":
            g.decided_ms = g.decided_ms if g.decided_ms is not None else t
            g.stopped_ms = g.stopped_ms if g.stopped_ms is not None else t
        elif kind == "access.revoked":
            g.stopped_ms = g.stopped_ms if g.stopped_ms is not None else t
        elif kind == "access.viewed":
            segs = obj.get("segments")
            g.viewed += len(segs) if isinstance(segs, list) else 0
    months: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(_FIELDS, 0)
    pending = 0
    for g in grants.values():
        start = g.start()
        when = g.requested_ms if start is None else start
        if (since_ms is not None and when < since_ms) or (
            until_ms is not None and when >= until_ms
        ):
            continue
        if start is None:
            pending += 1
            continue
        end = start + g.minutes * 60_000
        stop = min(x for x in (end, g.stopped_ms, now_ms) if x is not None)
        row = months.setdefault(format_time(start)[:7], dict.fromkeys(_FIELDS, 0))
        due = g.requested_ms + g.review_s * 1000
        add = {
            "live": 1,
            "emergency": int(g.emergency),
            "minutes_granted": g.minutes,
            "minutes_live": max(0, stop - start) // 60_000,
            "segments_viewed": g.viewed,
            "reviews_late": int(g.emergency and g.decided_ms is not None and g.decided_ms > due),
            "reviews_missing": int(g.emergency and g.decided_ms is None and now_ms >= due),
        }
        for k, v in add.items():
            row[k] += v
            total[k] += v
    return {"computed_at": format_time(now_ms), **total, "pending": pending,
            "months": dict(sorted(months.items()))}  # fmt: skip


def live_from_state(
    state: Any,
    now_ms: int | None = None,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """:func:`live_figures` from a replayed public state's requests
    (:class:`custodes.reports.replay.PublicState`: each request's body with its
    ``approvals`` and ``denials``, and where the replay keeps them its ``revoked`` entry and
    ``viewed`` entries), as of ``now_ms`` (default: the state's latest entry time)."""
    made: list[tuple[int, dict[str, Any]]] = []
    latest = getattr(state, "policy", None)  # the one version whose document it keeps
    if isinstance(latest, dict):
        made.append((-1, {**latest, "type": "policy.changed"}))
    for rid, req in state.requests.items():
        if not isinstance(req, dict) or "live" not in req:
            continue
        made.append((req.get("index", 0), {**req, "type": "access.requested", "request": rid}))
        for kind, key in (("access.approved", "approvals"), ("access.denied", "denials"),
                          ("access.viewed", "viewed")):  # fmt: skip
            for e in req.get(key) or []:
                made.append((e.get("index", 0), {**e, "type": kind, "request": rid}))
        if isinstance(req.get("revoked"), dict):
            e = req["revoked"]
            made.append((e.get("index", 0), {**e, "type": "access.revoked", "request": rid}))
    made.sort(key=lambda x: x[0])
    now = now_ms if now_ms is not None else (getattr(state, "last_ms", None) or 0)
    return live_figures(made, now, since_ms=since_ms, until_ms=until_ms)


def live_period(state: Any, from_ms: int, to_ms: int) -> dict[str, int]:
    """The report's ``live.*`` figures for a period: of the live grants that started in it
    (``live.grants``, ``live.emergency``, ``live.minutes_granted``, ``live.minutes_live``,
    ``live.segments_viewed``, ``live.reviews_late``, ``live.reviews_missing``) and those
    asked for in it that never started (``live.pending``), as of the period's end or the
    log's last entry, whichever is earlier.  Empty when the period has no live grant, so a
    report of a log without any has no live figures at all."""
    last = getattr(state, "last_ms", None)
    now = to_ms if last is None else min(to_ms, last)
    got = live_from_state(state, now, since_ms=from_ms, until_ms=to_ms)
    if not got["live"] and not got["pending"]:
        return {}
    names = {"live": "grants"}
    return {f"live.{names.get(k, k)}": int(got[k]) for k in (*_FIELDS, "pending")}
