"""Reads the staff pages need beside what the access gateway answers.

Nothing here writes to the log or opens sealed details: it reads the fleet's
segment index (is there footage for a window?), the access store's requests,
decisions and flags (a requester's recent history, flags grouped by person and
place) through the public attributes of :class:`~custodes.access.service.AccessService`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from custodes.access.requests import DecisionRow, RequestRow
from custodes.fleet.model import format_time
from custodes.fleet.registry import FleetDB

__all__ = [
    "Footage",
    "flags_by_person",
    "flags_by_place",
    "footage",
    "hours_minutes",
    "decisions_by_request",
    "requester_history",
    "search_requests",
    "states",
]


def hours_minutes(seconds: float | None) -> str:
    """A length of time as people say it: "2 h 30 min", "45 min", "1 h", "20 s"."""
    if seconds is None:
        return ""
    total = int(round(float(seconds)))
    if total < 60:
        return f"{total} s"
    minutes = (total + 30) // 60
    h, m = divmod(minutes, 60)
    if h and m:
        return f"{h} h {m} min"
    return f"{h} h" if h else f"{m} min"


@dataclass(frozen=True)
class Footage:
    """What the segment index holds for some cameras over a window."""

    window_s: int
    cameras: list[dict[str, Any]]
    """Per camera: ``camera``, ``segments``, ``seconds`` (covered, within the window)."""

    @property
    def with_footage(self) -> int:
        return sum(1 for c in self.cameras if c["segments"])

    @property
    def seconds(self) -> int:
        return sum(int(c["seconds"]) for c in self.cameras)

    @property
    def share(self) -> float:
        """The covered share of the window over all the cameras (0 to 1)."""
        whole = self.window_s * len(self.cameras)
        return self.seconds / whole if whole else 0.0

    def summary(self) -> str:
        """One sentence, for the request form and the approver's queue."""
        n = len(self.cameras)
        if not self.with_footage:
            which = "this camera" if n == 1 else f"these {n} cameras"
            return f"No recorded footage on {which} in this window."
        return (
            f"{self.with_footage} of {n} camera{'s' if n != 1 else ''} recorded footage in this"
            f" window: {hours_minutes(self.seconds)} of {hours_minutes(self.window_s * n)}"
            f" ({self.share:.0%})."
        )


def footage(fleet: FleetDB, cameras: Iterable[str], from_ms: int, to_ms: int) -> Footage:
    """Which of ``cameras`` have logged segments in [from_ms, to_ms), and how much.

    Read from the segment index only: nothing is logged, nothing is opened.
    """
    out = []
    for camera in sorted(set(cameras)):
        rows = fleet.segments_for(camera, from_ms, to_ms)
        covered_ms = 0
        upto = from_ms
        for row in rows:  # ordered by start; overlapping segments count once
            start, end = max(row.start_ms, upto), min(row.end_ms, to_ms)
            if end > start:
                covered_ms += end - start
                upto = end
        out.append({"camera": camera, "segments": len(rows), "seconds": covered_ms // 1000})
    return Footage(window_s=max(0, (to_ms - from_ms) // 1000), cameras=out)


def decisions_by_request(access: Any) -> dict[str, list[DecisionRow]]:
    """Every decision in the access store, by request."""
    out: dict[str, list[DecisionRow]] = {}
    for d in access.db.decisions():
        out.setdefault(d.request, []).append(d)
    return out


def states(
    access: Any, rows: Iterable[RequestRow], decisions: dict[str, list[DecisionRow]], now: int
) -> dict[str, str]:
    """Each request's state (pending, approved, denied, expired, released), from the
    access store's decisions and releases and the policy's request lifetime."""
    ttl_ms = int(access.policy(now)["request_ttl_s"]) * 1000
    out = {}
    for row in rows:
        decs = decisions.get(row.id, [])
        yes = [d for d in decs if d.approved]
        complete = len(yes) >= row.approvals and (
            not row.judge or any(d.role == "judge" for d in yes)
        )
        if access.db.release(row.id) is not None:
            state = "released"
        elif any(not d.approved for d in decs):
            state = "denied"
        elif row.expired_ms is not None:
            state = "expired"
        elif complete:
            expires = min((d.expires_ms or 0) for d in yes)
            state = "approved" if now < expires else "expired"
        elif now >= row.created_ms + ttl_ms:
            state = "expired"
        else:
            state = "pending"
        out[row.id] = state
    return out


def requester_history(
    rows: list[RequestRow],
    decisions: dict[str, list[DecisionRow]],
    state_of: dict[str, str],
    pseudonym: str,
    *,
    skip: str = "",
    limit: int = 5,
) -> dict[str, Any]:
    """A requester's last requests (newest first) and what was decided on them.

    ``rows``: the access store's requests; ``decisions``: request id to its
    decision rows; ``state_of``: request id to its state.  Counts cover every
    request of the pseudonym, the list only the last ``limit`` (``skip`` left out).
    """
    mine = sorted(
        (r for r in rows if r.pseudonym == pseudonym and r.id != skip),
        key=lambda r: r.created_ms,
        reverse=True,
    )
    counts: dict[str, int] = {}
    for r in mine:
        st = state_of.get(r.id, "unknown")
        counts[st] = counts.get(st, 0) + 1
    recent = []
    for r in mine[:limit]:
        ds = decisions.get(r.id, [])
        recent.append(
            {
                "request": r.id,
                "created": format_time(r.created_ms),
                "purpose": r.purpose,
                "cameras": len(r.cameras),
                "window_s": (r.to_ms - r.from_ms + 999) // 1000,
                "state": state_of.get(r.id, "unknown"),
                "approved": sum(1 for d in ds if d.approved),
                "denied": sum(1 for d in ds if not d.approved),
                "reasons": [d.reason for d in ds if not d.approved and d.reason],
            }
        )
    return {"total": len(mine), "counts": counts, "recent": recent}


def _flag_requests(flag: dict[str, Any]) -> list[str]:
    return [str(r) for r in flag.get("requests") or []]


def flags_by_person(
    flags: list[dict[str, Any]], requests: dict[str, RequestRow]
) -> list[dict[str, Any]]:
    """Flags grouped by the pseudonym of the person whose requests they concern."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for flag in flags:
        people = {requests[r].pseudonym for r in _flag_requests(flag) if r in requests}
        subject = str(flag.get("subject") or "")
        if not people and subject.startswith("u-"):
            people = {subject}
        for who in sorted(people) or ["(no request on record)"]:
            groups.setdefault(who, []).append(flag)
    return [
        {"key": k, "flags": v}
        for k, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def flags_by_place(
    flags: list[dict[str, Any]], requests: dict[str, RequestRow], positions: dict[str, Any]
) -> list[dict[str, Any]]:
    """Flags grouped by district of the cameras their requests named, with a position.

    ``positions``: camera id to its registry record (``lat``, ``lon``,
    ``district``); a group's position is the mean of its cameras'.
    """
    groups: dict[str, dict[str, Any]] = {}
    for flag in flags:
        places: dict[str, set[str]] = {}
        for rid in _flag_requests(flag):
            row = requests.get(rid)
            if row is None:
                continue
            for cam in row.cameras:
                rec = positions.get(cam) or {}
                district = rec.get("district") or (row.districts[0] if row.districts else None)
                places.setdefault(district or "(no district)", set()).add(cam)
        for place, cams in sorted(places.items()) or [("(no request on record)", set())]:
            g = groups.setdefault(place, {"key": place, "flags": [], "cameras": set()})
            if flag not in g["flags"]:
                g["flags"].append(flag)
            g["cameras"] |= cams
    out = []
    for g in groups.values():
        pts = [
            (float(positions[c]["lat"]), float(positions[c]["lon"]))
            for c in g["cameras"]
            if c in positions and "lat" in positions[c]
        ]
        where = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
        out.append(
            {
                "key": g["key"],
                "flags": g["flags"],
                "cameras": sorted(g["cameras"]),
                "lat": where[0] if pts else None,
                "lon": where[1] if pts else None,
            }
        )
    out.sort(key=lambda g: (-len(g["flags"]), g["key"]))
    return out


def search_requests(
    rows: list[RequestRow], state_of: dict[str, str], query: str, limit: int = 200
) -> list[dict[str, Any]]:
    """Requests whose id, requester pseudonym, purpose, camera, district or state holds
    every word of ``query`` (case aside), newest first."""
    words = [w for w in query.lower().split() if w]
    out = []
    for r in sorted(rows, key=lambda r: r.created_ms, reverse=True):
        state = state_of.get(r.id, "unknown")
        hay = " ".join([r.id, r.pseudonym, r.purpose, state, *r.cameras, *r.districts]).lower()
        if all(w in hay for w in words):
            out.append(
                {
                    "request": r.id,
                    "requester": r.pseudonym,
                    "created": format_time(r.created_ms),
                    "purpose": r.purpose,
                    "cameras": len(r.cameras),
                    "districts": list(r.districts),
                    "window_s": (r.to_ms - r.from_ms + 999) // 1000,
                    "state": state,
                }
            )
            if len(out) >= limit:
                break
    return out
