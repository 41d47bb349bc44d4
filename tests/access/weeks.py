"""Access traffic for the anomaly rules: a realistic normal week, and scripted insider patterns.

:func:`normal_traffic` makes weeks of ordinary work in a city of about 1,000 km²:
20 investigators (each with their own pace), 6 approvers, about 300 requests a
week under cases of one to three requests each, each case at its own place,
mostly in working hours with the odd urgent one at night, windows of 15 minutes
to 6 hours on 1 to 8 cameras, decided minutes to hours later, about one in
eight denied.  ``places`` holds 1,000 more spots for the scripted patterns.
It is seeded, so a test sees the same week every time.

Each ``add_*`` function scripts one insider pattern on top of such traffic and
returns what the rule should report: the subject and the request ids.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from custodes.access.anomaly import DecisionFacts, RequestFacts, cell_of

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONDAY = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)
PURPOSES = ("investigation", "missing-person", "traffic-collision", "public-safety")

# The city's box: about 33 km north to south and 31 km east to west.
_LAT = (55.60, 55.90)
_LON = (37.35, 37.85)


@dataclass
class Traffic:
    """Requests and decisions, with who is who; ``end_ms`` is when the traffic stops."""

    rng: random.Random
    investigators: list[str]
    approvers: list[str]
    places: list[tuple[float, float]]
    start_ms: int
    end_ms: int
    requests: list[RequestFacts] = field(default_factory=list)
    decisions: list[DecisionFacts] = field(default_factory=list)
    serial: int = 0

    def pseudonym(self) -> str:
        return f"u-{self.rng.getrandbits(64):016x}"

    def case(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def request(
        self,
        requester: str,
        created_ms: int,
        case_key: str,
        place: tuple[float, float],
        *,
        cameras: int = 2,
        hours: float = 1.0,
        sensitive: bool = False,
        assembly: bool = False,
    ) -> RequestFacts:
        """Add one request for ``cameras`` cameras around ``place``; returns its facts."""
        self.serial += 1
        rid = f"r-{self.serial:06d}"
        to_ms = created_ms - self.rng.randrange(HOUR, 3 * DAY)
        cams = tuple(f"cam-{place[0]:.4f}-{place[1]:.4f}-{k}" for k in range(cameras))
        r = RequestFacts(
            request=rid,
            requester=requester,
            created_ms=created_ms,
            purpose=self.rng.choice(PURPOSES),
            case_key=case_key,
            cameras=cams,
            cells=(cell_of(*place),),
            from_ms=to_ms - int(hours * HOUR),
            to_ms=to_ms,
            sensitive=sensitive,
            assembly=assembly,
        )
        self.requests.append(r)
        return r

    def decide(self, r: RequestFacts, approver: str, after_ms: int, approved: bool) -> None:
        self.decisions.append(
            DecisionFacts(r.request, approver, r.created_ms, r.created_ms + after_ms, approved)
        )

    def daytime(self, day_ms: int) -> int:
        """A time on the day starting at ``day_ms``: mostly 08-20, some evenings, rare nights."""
        x = self.rng.random()
        if x < 0.02:
            hour = self.rng.uniform(0, 5)
        elif x < 0.10:
            hour = self.rng.choice((self.rng.uniform(5, 8), self.rng.uniform(20, 24)))
        else:
            hour = self.rng.uniform(8, 20)
        return day_ms + int(hour * HOUR)


def normal_traffic(weeks: int = 1, seed: int = 7, per_week: int = 300) -> Traffic:
    """``weeks`` weeks of ordinary requests and decisions, starting on a Monday (UTC)."""
    rng = random.Random(seed)
    t = Traffic(rng, [], [], [], MONDAY, MONDAY + weeks * WEEK)
    t.investigators = [t.pseudonym() for _ in range(20)]
    t.approvers = [t.pseudonym() for _ in range(6)]
    t.places = [(rng.uniform(*_LAT), rng.uniform(*_LON)) for _ in range(1000)]
    pace = [rng.uniform(0.6, 1.4) for _ in t.investigators]
    for week in range(weeks):
        made = 0
        while made < per_week:
            who = rng.choices(t.investigators, pace)[0]
            case, place = t.case(), (rng.uniform(*_LAT), rng.uniform(*_LON))
            at = t.daytime(t.start_ms + week * WEEK + rng.randrange(7) * DAY)
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                if at >= t.end_ms:
                    break
                r = t.request(
                    who,
                    at,
                    case,
                    place,
                    cameras=rng.randint(1, 8),
                    hours=rng.choice((0.25, 0.5, 1, 2, 4, 6)),
                )
                made += 1
                _decide_normally(t, r)
                at += rng.randrange(2 * HOUR, 2 * DAY)
                if not 8 <= (at % DAY) / HOUR < 20:
                    at = t.daytime(at - at % DAY + DAY)
    return t


def _decide_normally(t: Traffic, r: RequestFacts) -> None:
    rng = t.rng
    first = rng.choice(t.approvers)
    wait = max(90_000, int(math.exp(rng.gauss(math.log(20 * MINUTE), 0.9))))
    approved = rng.random() < 0.87
    t.decide(r, first, wait, approved)
    if approved and rng.random() < 0.1:
        second = rng.choice([a for a in t.approvers if a != first])
        t.decide(r, second, wait + int(math.exp(rng.gauss(math.log(HOUR), 0.7))), True)


# -- scripted insider patterns ---------------------------------------------------------


def add_volume_burst(t: Traffic, extra: int = 100) -> tuple[str, tuple[str, ...]]:
    """One investigator makes ``extra`` more requests than usual in the last week."""
    who = t.investigators[0]
    start = t.end_ms - WEEK
    case = ""
    for i in range(extra):
        case = t.case() if i % 5 == 0 else case
        place = t.places[i // 5]
        day = start + (i % 7) * DAY
        t.request(who, day + 9 * HOUR + i * 5 * MINUTE, case, place)
    mine = [r.request for r in t.requests if r.requester == who and r.created_ms > start]
    return who, tuple(sorted(mine))


def add_repeated_place(t: Traffic, cases: int = 5) -> tuple[str, tuple[str, ...]]:
    """One doorway requested again and again under unrelated cases, by three colleagues."""
    home = (55.7301, 37.5903)
    cell = cell_of(*home)
    assert all(cell not in r.cells for r in t.requests), "the scripted cell is already busy"
    ids = []
    for i in range(cases):
        who = t.investigators[2 + i % 3]
        at = t.end_ms - (3 + 4 * i) * DAY + 11 * HOUR
        ids.append(t.request(who, at, t.case(), home, cameras=3).request)
    return cell, tuple(sorted(ids))


def add_odd_hours(t: Traffic, nights: int = 8) -> tuple[str, tuple[str, ...]]:
    """An investigator who never worked at night asks for footage at 01:00-04:00.

    At least ``nights`` nights, and enough to be a third of their month's requests.
    """
    night = {r.requester for r in t.requests if (r.created_ms % DAY) < 5 * HOUR}
    month = [r.requester for r in t.requests if r.created_ms > t.end_ms - 30 * DAY]
    who = min((u for u in t.investigators if u not in night), key=lambda u: (month.count(u), u))
    ids = []
    for i in range(max(nights, month.count(who) // 3 + 1)):
        at = t.end_ms - (1 + i % 28) * DAY + HOUR + (i // 28 + i % 5) * 30 * MINUTE
        ids.append(t.request(who, at, t.case(), t.places[100 + i]).request)
    return who, tuple(sorted(ids))


def add_sensitive(t: Traffic) -> list[tuple[str, tuple[str, ...]]]:
    """One request into a sensitive zone and one at an assembly, each small."""
    who = t.investigators[5]
    at = t.end_ms - 2 * DAY + 10 * HOUR
    a = t.request(who, at, t.case(), t.places[200], sensitive=True)
    b = t.request(who, at + HOUR, t.case(), t.places[201], cameras=2, assembly=True)
    return [(who, (a.request,)), (who, (b.request,))]


def add_dragnet(t: Traffic) -> list[tuple[str, tuple[str, ...]]]:
    """Too many cameras; too long a window; and many cameras at an assembly."""
    who = t.investigators[6]
    at = t.end_ms - 3 * DAY + 14 * HOUR
    a = t.request(who, at, t.case(), t.places[300], cameras=80)
    b = t.request(who, at + HOUR, t.case(), t.places[301], hours=72)
    c = t.request(who, at + 2 * HOUR, t.case(), t.places[302], cameras=8, assembly=True)
    return [(who, (a.request,)), (who, (b.request,)), (who, (c.request,))]


def add_rubber_stamp(t: Traffic, decisions: int = 30) -> tuple[str, tuple[str, ...]]:
    """A new approver who approves every request put to them within seconds."""
    stamper = t.pseudonym()
    t.approvers.append(stamper)
    recent = [r for r in t.requests if r.created_ms > t.end_ms - 10 * DAY]
    chosen = t.rng.sample(recent, decisions)
    for r in chosen:
        t.decide(r, stamper, t.rng.randrange(4_000, 25_000), True)
    return stamper, tuple(sorted(r.request for r in chosen))
