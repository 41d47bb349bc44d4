"""The approval policy: data in a versioned file, every change logged, every decision a value.

``DIR/policy.json`` holds ``{"version": N, "policy": {...}}``.  The document
(every key optional when set; missing keys take the defaults below)::

    purposes            allowed purpose categories
    case_pattern        a regular expression every case reference must match
    max_cameras         a request over this many cameras needs two approvers
    max_hours           a request over this many hours needs two approvers
    approval_ttl_s      how long an approval stays usable
    request_ttl_s       how long a request may wait for its approvals
    sensitive_zones     places that need a judge: [{"name", "kind", "polygon":
                        [[lat, lon], ...]} or {"name", "kind", "lat", "lon",
                        "radius_m"}, optionally "windows": [[from, to], ...]
                        (RFC 3339) outside which the zone is not sensitive]
    disclosure_delay_s  after a request's window ends, its cameras and window
                        are published (``access.disclosed``) once this passes
    min_count           public figures below it are shown as "fewer than k"
    odd_hours           [from_hour, to_hour] (or {"from", "to", "utc_offset_min"}):
                        a habit of requests made then is flagged
    anomaly             thresholds of the insider-abuse rules, by the field names
                        of :class:`custodes.access.anomaly.AnomalyConfig`
    live_max_minutes    the longest live grant: its window starts when the approval
                        that completes it is logged and lasts at most this long
    emergency_max_minutes  the longest emergency grant, which starts at once,
                        before any approval
    emergency_review_s  an emergency grant must be approved or denied by an approver
                        within this many seconds of its start; until a late one is,
                        its requester may make no further emergency grant

The policy is evaluated as :class:`Decision` values (``allow`` and a
``reason`` sentence), never as bare booleans.  ``custodes access policy set``
replaces the file and logs ``policy.changed`` with the whole document; the
default is written and logged at first use, so the log always says which rules
judged each request.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.access.entries import policy_changed
from custodes.errors import FormatError, UsageError
from custodes.fleet.model import parse_time
from custodes.ledger.lock import atomic_write
from custodes.records.canonical import canonicalize

__all__ = [
    "DEFAULT_POLICY",
    "POLICY_FILE",
    "Decision",
    "Policy",
    "PolicyFile",
    "Zone",
    "haversine_m",
    "point_in_polygon",
]

POLICY_FILE = "policy.json"

DEFAULT_POLICY: dict[str, Any] = {
    "purposes": ["investigation", "missing-person", "public-safety", "court-order"],
    "case_pattern": r"^CASE-\d{4}-\d{4,}$",
    "max_cameras": 10,
    "max_hours": 6,
    "approval_ttl_s": 86400,
    "request_ttl_s": 7 * 86400,
    "sensitive_zones": [],
    "disclosure_delay_s": 90 * 86400,
    "min_count": 5,
    "odd_hours": [0, 5],
    "anomaly": {},
    "live_max_minutes": 60,
    "emergency_max_minutes": 30,
    "emergency_review_s": 4 * 3600,
}

_INT_KEYS = {
    "max_cameras": (1, 1_000_000),
    "max_hours": (1, 24 * 366),
    "approval_ttl_s": (1, 366 * 86400),
    "request_ttl_s": (1, 366 * 86400),
    "disclosure_delay_s": (0, 10 * 366 * 86400),
    "min_count": (1, 1000),
    "live_max_minutes": (1, 24 * 60),
    "emergency_max_minutes": (1, 24 * 60),
    "emergency_review_s": (1, 30 * 86400),
}
_PURPOSE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:'()-]{0,79}")


@dataclass(frozen=True)
class Decision:
    """One evaluated rule: allowed or not, and the sentence that says why."""

    allow: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allow


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


def point_in_polygon(lat: float, lon: float, polygon: list[tuple[float, float]]) -> bool:
    """Ray casting on (lat, lon) vertices; the ring need not be closed."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (a_lat, a_lon), (b_lat, b_lon) = polygon[i], polygon[(i + 1) % n]
        if (a_lat > lat) != (b_lat > lat):
            cross = a_lon + (lat - a_lat) * (b_lon - a_lon) / (b_lat - a_lat)
            if lon < cross:
                inside = not inside
    return inside


def _num(value: object, lo: float, hi: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"{what} must be a number")
    if not lo <= value <= hi:
        raise FormatError(f"{what} must lie between {lo:g} and {hi:g}")
    return float(value)


def parse_polygon(raw: object, what: str = "the polygon") -> tuple[tuple[float, float], ...]:
    """A ring of 3 to 1000 [lat, lon] points."""
    if not isinstance(raw, list) or not 3 <= len(raw) <= 1000:
        raise FormatError(f"{what} must be a list of 3 to 1000 [lat, lon] points")
    out = []
    for p in raw:
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise FormatError(f"each point of {what} must be [lat, lon]")
        out.append((_num(p[0], -90, 90, "a latitude"), _num(p[1], -180, 180, "a longitude")))
    return tuple(out)


@dataclass(frozen=True)
class Zone:
    """A sensitive place: a polygon or a circle, sensitive always or only in its windows."""

    name: str
    kind: str
    polygon: tuple[tuple[float, float], ...] = ()
    centre: tuple[float, float] | None = None
    radius_m: float = 0.0
    windows: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, raw: object) -> Zone:
        if not isinstance(raw, dict):
            raise FormatError("a sensitive zone must be an object")
        extra = set(raw) - {"name", "kind", "polygon", "lat", "lon", "radius_m", "windows"}
        if extra:
            raise FormatError(f"a sensitive zone has unknown keys: {', '.join(sorted(extra))}")
        name, kind = raw.get("name"), raw.get("kind")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise FormatError("a sensitive zone needs a name of 1-80 plain characters")
        if not isinstance(kind, str) or not _PURPOSE.fullmatch(kind):
            raise FormatError(f"zone {name}: kind must be a lower-case word such as clinic")
        windows = []
        for w in raw.get("windows") or []:
            if not isinstance(w, list) or len(w) != 2:
                raise FormatError(f"zone {name}: each window must be [from, to]")
            f, t = parse_time(w[0], "window start"), parse_time(w[1], "window end")
            if t <= f:
                raise FormatError(f"zone {name}: a window must end after it starts")
            windows.append((f, t))
        if "polygon" in raw:
            if any(k in raw for k in ("lat", "lon", "radius_m")):
                raise FormatError(f"zone {name}: give a polygon or lat/lon/radius_m, not both")
            poly = parse_polygon(raw["polygon"], f"zone {name}'s polygon")
            return cls(name, kind, polygon=poly, windows=tuple(windows))
        lat = _num(raw.get("lat"), -90, 90, f"zone {name}'s lat")
        lon = _num(raw.get("lon"), -180, 180, f"zone {name}'s lon")
        radius = _num(raw.get("radius_m"), 1, 50_000, f"zone {name}'s radius_m")
        return cls(name, kind, centre=(lat, lon), radius_m=radius, windows=tuple(windows))

    def contains(self, lat: float, lon: float) -> bool:
        if self.centre is not None:
            return haversine_m(lat, lon, *self.centre) <= self.radius_m
        return point_in_polygon(lat, lon, list(self.polygon))

    def active(self, from_ms: int, to_ms: int) -> bool:
        """Whether the zone is sensitive at any time of the window."""
        return not self.windows or any(f < to_ms and t > from_ms for f, t in self.windows)


@dataclass(frozen=True)
class Policy:
    """A validated policy document and the version it was logged under."""

    version: int
    doc: dict[str, Any]
    zones: tuple[Zone, ...]
    case_re: re.Pattern[str]

    @classmethod
    def parse(cls, raw: object, version: int = 0) -> Policy:
        """Validate a policy document; missing keys take the defaults."""
        if not isinstance(raw, dict):
            raise FormatError("a policy must be a JSON object")
        extra = set(raw) - set(DEFAULT_POLICY)
        if extra:
            raise FormatError(f"the policy has unknown keys: {', '.join(sorted(extra))}")
        doc = {**DEFAULT_POLICY, **raw}
        purposes = doc["purposes"]
        if (
            not isinstance(purposes, list)
            or not purposes
            or not all(isinstance(p, str) and _PURPOSE.fullmatch(p) for p in purposes)
            or len(set(purposes)) != len(purposes)
        ):
            raise FormatError("purposes must be a non-empty list of distinct lower-case words")
        pattern = doc["case_pattern"]
        if not isinstance(pattern, str) or not 0 < len(pattern) <= 200:
            raise FormatError("case_pattern must be a regular expression of 1-200 characters")
        try:
            case_re = re.compile(pattern, re.ASCII)  # \d and \w: ASCII only
        except re.error as err:
            raise FormatError(f"case_pattern is not a regular expression ({err})") from None
        for key, (lo, hi) in _INT_KEYS.items():
            v = doc[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise FormatError(f"{key} must be a whole number between {lo} and {hi}")
        from custodes.access.anomaly import AnomalyConfig

        AnomalyConfig.from_policy(doc)  # refuses bad odd_hours and anomaly settings
        zones_raw = doc["sensitive_zones"]
        if not isinstance(zones_raw, list) or len(zones_raw) > 10_000:
            raise FormatError("sensitive_zones must be a list of at most 10000 zones")
        zones = tuple(Zone.parse(z) for z in zones_raw)
        canonicalize(doc)  # refuses what the log could not hold
        return cls(version=version, doc=doc, zones=zones, case_re=case_re)

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    # -- decisions ----------------------------------------------------------------------

    def check_purpose(self, purpose: str) -> Decision:
        if purpose in self.doc["purposes"]:
            return Decision(True, f"the purpose {purpose} is allowed")
        allowed = ", ".join(self.doc["purposes"])
        return Decision(False, f"the purpose {purpose!r} is not one of {allowed}")

    def check_case(self, case: str) -> Decision:
        if len(case) <= 200 and self.case_re.fullmatch(case):
            return Decision(True, "the case reference matches the policy's pattern")
        return Decision(
            False,
            f"the case reference {case[:60]!r} does not match the pattern"
            f" {self.doc['case_pattern']}",
        )

    def touched_zones(
        self, points: list[tuple[float, float]], from_ms: int, to_ms: int
    ) -> list[Zone]:
        """The zones, sensitive during the window, that contain any of ``points``."""
        return [
            z
            for z in self.zones
            if z.active(from_ms, to_ms) and any(z.contains(lat, lon) for lat, lon in points)
        ]

    def needs(self, cameras: int, window_s: int, sensitive: bool) -> tuple[int, bool, str]:
        """(approvals needed, judge needed, the sentence that says why)."""
        why = []
        approvals = 1
        if cameras > self.doc["max_cameras"]:
            approvals = 2
            why.append(f"{cameras} cameras is over {self.doc['max_cameras']}")
        if window_s > self.doc["max_hours"] * 3600:
            approvals = 2
            why.append(f"the window is over {self.doc['max_hours']} hours")
        if sensitive:
            why.append("it touches a sensitive zone, so a judge must approve")
        reason = "; ".join(why) if why else "one approver suffices"
        return approvals, sensitive, reason

    def check_live(self, minutes: int, emergency: bool) -> Decision:
        """A live grant of ``minutes``: within the policy's longest live (or emergency) grant."""
        key = "emergency_max_minutes" if emergency else "live_max_minutes"
        kind = "an emergency grant" if emergency else "a live grant"
        limit = int(self.doc[key])
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            return Decision(False, f"{kind} lasts a whole number of minutes, at least 1")
        if minutes > limit:
            return Decision(False, f"{kind} may last at most {limit} minutes ({key})")
        return Decision(True, f"{kind} of {minutes} minutes is within the policy's {limit}")


class PolicyFile:
    """``DIR/policy.json``: the current policy, versioned; changes go to the log first."""

    def __init__(self, data: Path) -> None:
        self.path = data / POLICY_FILE

    def read(self) -> Policy | None:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            raise UsageError(
                f"{self.path} is not JSON; restore it or set the policy again"
            ) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("version"), int):
            raise UsageError(f"{self.path} is damaged; set the policy again")
        return Policy.parse(raw.get("policy"), raw["version"])

    def entry_for(self, doc: object, now_ms: int) -> tuple[Policy, dict[str, Any]]:
        """The next version of the policy and its ``policy.changed`` entry (not yet logged)."""
        current = self.read()
        policy = Policy.parse(doc, (current.version if current else 0) + 1)
        return policy, policy_changed(policy.version, policy.doc, now_ms)

    def write(self, policy: Policy) -> None:
        """Call only once the ``policy.changed`` entry is durably logged."""
        body = {"version": policy.version, "policy": policy.doc}
        atomic_write(self.path, json.dumps(body, indent=2).encode() + b"\n")
