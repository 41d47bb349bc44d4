"""The demo city's people: users, a week of footage requests, and one insider.

Everything goes through the access gateway (:class:`AccessService`) with the
simulated clock, so the log holds exactly what a live gateway would write:

* users for every role (``user.added``), each with a random password;
* the demo policy (``policy.changed``): the places of worship are sensitive
  always, the two protest sites during the assembly on one afternoon;
  disclosure after a short delay, so "who looked at this place?" has answers;
* investigators' requests in working hours, for a few cameras or an area and
  a window before the request; approvals and denials by a careful approver
  (minutes to hours, some denials), a hurried one (seconds) and a judge (for
  sensitive zones); releases of real archived footage; approvals that lapse
  unused; a dragnet over the assembly that the judge denies;
* the insider: one investigator asks, night after night, for the courtyard of
  the same block of flats under a new case each time, and the hurried
  approver waves each through in seconds.  The anomaly rules flag the place
  (``repeated-place``), the hours (``odd-hours``) and the approver
  (``rubber-stamp``);
* daily sweeps (expiries, disclosures) and anomaly runs; an auditor reveals
  one closed case and resolves one flag.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from custodes.access.archive import is_archive
from custodes.access.identity import Identities, Scope, User
from custodes.access.policy import DEFAULT_POLICY, haversine_m
from custodes.access.service import AccessService, RequestInput
from custodes.access.users import add_user
from custodes.errors import CustodesError
from custodes.fleet.model import format_time

if TYPE_CHECKING:
    from custodes.demo.build import Week

__all__ = ["USERS", "People"]

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

USERS: tuple[tuple[str, str, str], ...] = (
    # (name, role, scope)
    ("admin", "admin", ""),
    ("oksana", "operator", ""),
    ("ivan", "investigator", ""),
    ("irina", "investigator", "district:centre,district:east,district:west,group:metro"),
    ("ilya", "investigator", ""),
    ("igor", "investigator", ""),
    ("anna", "approver", ""),
    ("arkady", "approver", ""),
    ("yulia", "judge", ""),
    ("audrey", "auditor", ""),
)
INSIDER, CAREFUL, HURRIED, JUDGE, AUDITOR = "igor", "anna", "arkady", "yulia", "audrey"
_HONEST = ("ivan", "irina", "ilya")
_PURPOSES = ("investigation",) * 6 + ("public-safety",) * 2 + ("missing-person", "court-order")
_WHY = (
    "A bag was snatched near here; the victim gave this time.",
    "A car was set alight; looking for the moment it started.",
    "A missing teenager was last seen walking this way.",
    "A shop window was smashed; the owner reported the time.",
    "A cyclist was hit and the driver left; checking the crossing.",
    "A fight outside a bar; two people were taken to hospital.",
    "The court ordered this footage for a trial next month.",
)
_DENY = (
    "The window is far wider than the reported incident needs.",
    "The justification does not explain why these cameras.",
    "The case reference is not an open case in this unit.",
)


@dataclass
class Ask:
    """One planned request and what happens to it."""

    who: str
    at: int
    inp: RequestInput
    outcome: str  # approve | deny | wait (never decided)
    decider: str
    delay: int
    release_after: int | None = None
    reason: str = ""
    unredacted: bool = False
    rid: str = ""
    tags: set[str] = field(default_factory=set)


class People:
    def __init__(self, week: Week) -> None:
        self.week = week
        self.rng = random.Random(week.cfg.seed * 104729 + 3)
        self.ids = Identities(week.data)
        self.access: AccessService | None = None
        self.users: dict[str, User] = {}
        self.logins: list[dict[str, str]] = []
        self.asks: list[Ask] = []
        self.failures: list[str] = []
        self.cases = 0
        self.assembly = (0, 0)

    def close(self) -> None:
        if self.access is not None:
            self.access.close()
        self.ids.close()

    # -- set-up ------------------------------------------------------------------------

    def setup(self) -> None:
        w = self.week
        at = w.t0 - HOUR
        for k, (name, role, scope) in enumerate(USERS):
            password = secrets.token_urlsafe(9)
            user, token = add_user(
                w.log, self.ids, name, role, Scope.parse(scope or None), password, at + k * 1000
            )
            self.users[name] = user
            self.logins.append(
                {"name": name, "password": password, "role": role, "scope": scope or "all",
                 "token": token}
            )  # fmt: skip
        self.access = AccessService(w.svc, w.db, self.ids, w.data)
        self.access.set_policy(self.users["admin"], self.policy_doc(), now_ms=at + 5 * MIN)

    def policy_doc(self) -> dict[str, Any]:
        w = self.week
        mid = w.t0 + (w.end - w.t0) // 2
        day = mid - mid % DAY
        self.assembly = (day + 15 * HOUR, day + 20 * HOUR)
        # Ends at least 2 h before the week does: the dragnet over it is asked for up to 2 h
        # after it ends but no later than 90 min before the week ends, and a window may not
        # end after its request.
        if self.assembly[1] > w.end - 2 * HOUR:
            self.assembly = (w.end - 7 * HOUR, w.end - 2 * HOUR)
        window = [format_time(t) for t in self.assembly]
        zones: list[dict[str, Any]] = []
        for p in w.city.places:
            if p.category == "protest-site":
                zones.append({"name": p.name, "kind": "assembly", "lat": p.lat, "lon": p.lon,
                              "radius_m": 300, "windows": [window]})  # fmt: skip
            elif p.category == "worship":
                zones.append(
                    {"name": p.name, "kind": "worship", "lat": p.lat, "lon": p.lon, "radius_m": 100}
                )
        delay = max(3 * HOUR, int((w.end - w.t0) * 2 / 7)) // 1000
        return {
            "purposes": list(DEFAULT_POLICY["purposes"]),
            "max_cameras": 10,
            "max_hours": 6,
            "approval_ttl_s": 86400,
            "request_ttl_s": 3 * 86400,
            "sensitive_zones": zones,
            "disclosure_delay_s": delay,
            "min_count": 3,
            "odd_hours": [0, 5],
        }

    # -- the plan ----------------------------------------------------------------------

    def _case(self) -> str:
        self.cases += 1
        return f"CASE-2026-{1000 + self.cases * 37 % 9000:04d}"

    def _near(self, cam: str, k: int, t: int) -> list[str]:
        """The ``k`` cameras nearest ``cam`` (itself first) that recorded the hour before ``t``."""
        w = self.week
        c0 = w.cams[cam]
        hlat, hlon = w.city.home
        live = [
            c
            for c in w.cams.values()
            if w.recording(c.id, t - HOUR, t) and haversine_m(hlat, hlon, c.lat, c.lon) > 400
        ]
        live.sort(key=lambda c: haversine_m(c0.lat, c0.lon, c.lat, c.lon))
        return [c.id for c in live[:k]]

    def _working_time(self, lo: int, hi: int) -> int:
        """A moment between 08:00 and 18:00 UTC within [lo, hi], or ``lo`` if there is none."""
        for _ in range(50):
            t = self.rng.randrange(lo, max(lo + 1, hi), 1000)
            if 8 <= (t % DAY) // HOUR < 18:
                return t
        return lo

    def plan(self) -> None:
        w, rng = self.week, self.rng
        total = max(12, w.cfg.requests)
        lo, hi = w.t0 + 4 * HOUR, w.end - 2 * HOUR
        # Honest requests stay away from the insider's courtyard, so its flag is his alone.
        hlat, hlon = w.city.home
        street = [
            c.id
            for c in w.city.cameras
            if c.id not in w.reserved and haversine_m(hlat, hlon, c.lat, c.lon) > 400
        ]
        # (1) The insider: the same courtyard, at night, a new case each time.
        nights = max(4, min(6, total // 10))
        for at in self._night_slots(nights):
            f = at - at % HOUR - rng.choice((14, 16, 18)) * HOUR
            seen = self._within(*w.city.home, 60.0)
            ok = all(w.recording(c, f, f + HOUR) for c in seen)
            ask = Ask(
                INSIDER, at,
                RequestInput(from_ms=f, to_ms=f + HOUR, purpose="investigation", case=self._case(),
                             justification="Burglary reported in the building; checking who"
                             " entered the courtyard.", area=(*w.city.home, 60.0)),
                "approve", HURRIED, rng.randrange(6, 24) * 1000,
                release_after=rng.randrange(3, 20) * MIN if ok and len(self.asks) < 2 else None,
                tags={"insider"},
            )  # fmt: skip
            self._plan_real(ask, seen)
            self.asks.append(ask)
        # The insider's daytime requests look ordinary.
        for _ in range(2):
            self.asks.append(self._ordinary(INSIDER, street, lo, hi))
        # (2) The assembly: a dragnet the judge denies, and one narrow request she allows.
        sq = next(p for p in w.city.places if p.category == "protest-site")
        a0, a1 = self.assembly
        at = min(a1 + 2 * HOUR, w.end - 90 * MIN)
        self.asks.append(
            Ask("ilya", at,
                RequestInput(from_ms=a0, to_ms=a1, purpose="public-safety", case=self._case(),
                             justification="Identify everyone who attended the demonstration.",
                             area=(sq.lat, sq.lon, 400.0)),
                "deny", JUDGE, 3 * HOUR,
                reason="A sweep over a lawful assembly is not proportionate to any case.",
                tags={"dragnet"})
        )  # fmt: skip
        near = [c.id for c in w.city.cameras if c.name and c.name.startswith("Freedom Square")]
        self.asks.append(
            Ask("ivan", at + 20 * MIN,
                RequestInput(from_ms=a1 - HOUR, to_ms=a1 - 30 * MIN, purpose="investigation",
                             case=self._case(), cameras=tuple(near[:1]),
                             justification="A police officer was assaulted at the corner;"
                             " the officer gave the time."),
                "approve", JUDGE, 4 * HOUR, tags={"sensitive"})
        )  # fmt: skip
        # (3) Ordinary requests, by the honest investigators.
        while len(self.asks) < total:
            who = _HONEST[len(self.asks) % len(_HONEST)]
            self.asks.append(self._ordinary(who, street, lo, hi))
        # (4) A few are still waiting when the week ends.
        for k in range(min(3, total // 20 + 1)):
            who = _HONEST[k % len(_HONEST)]
            ask = self._ordinary(who, street, w.end - 3 * HOUR, w.end - 20 * MIN)
            ask.outcome = "wait"
            self.asks.append(ask)
        for ask in self.asks:
            w.timeline.at(ask.at, partial(self._request, ask))
        # (5) Daily sweeps and anomaly runs, and the auditor's work at the end.
        for d in range(w.t0 - w.t0 % DAY + DAY + 6 * HOUR, w.end, DAY):
            w.timeline.at(d, self._daily)
        w.timeline.at(w.end - 10 * MIN, self._audit)

    def _within(self, lat: float, lon: float, radius: float) -> list[str]:
        """Every camera, of the whole week, within ``radius`` metres."""
        cams = self.week.city.cameras + self.week.city.later
        return [c.id for c in cams if haversine_m(lat, lon, c.lat, c.lon) <= radius]

    def _night_slots(self, n: int) -> list[int]:
        """``n`` moments between 00:15 and 04:50 UTC, on as many different nights as there are."""
        w = self.week
        by_night: dict[int, list[int]] = {}
        for t in range(w.t0 + HOUR, w.end - 30 * MIN, 10 * MIN):
            if 15 * MIN <= t % DAY < 4 * HOUR + 40 * MIN:
                by_night.setdefault(t // DAY, []).append(t + self.rng.randrange(8) * MIN)
        nights = sorted(by_night.values(), key=lambda ts: -ts[0])
        out: list[int] = []
        k = 0
        while len(out) < n and any(nights):
            slots = nights[k % len(nights)]
            if slots:
                out.append(slots.pop(self.rng.randrange(len(slots))))
            k += 1
        return sorted(out)

    def _ordinary(self, who: str, street: list[str], lo: int, hi: int) -> Ask:
        w, rng = self.week, self.rng
        scope = self.users[who].scope
        at = self._working_time(lo, hi)
        f = at - at % HOUR - rng.randrange(1, 36) * HOUR
        f = max(f, w.t0)
        hours = rng.choice((1, 1, 1, 2, 2, 3, 4, 8))
        t = min(f + hours * HOUR, at - at % HOUR)
        if t <= f:
            f, t = t - HOUR, t
        pool = [c for c in street if scope.covers(w.cams[c].district, _groups(w.cams[c].zone))]
        anchor = rng.choice(pool)
        # An area is asked for only by investigators whose scope is the whole city.
        as_area = scope.whole_network and rng.random() < 0.3
        inp: RequestInput
        if as_area:
            c = w.cams[anchor]
            radius = float(rng.choice((80, 150, 250)))
            inp = RequestInput(from_ms=f, to_ms=t, purpose=rng.choice(_PURPOSES),
                               case=self._case(), justification=rng.choice(_WHY),
                               area=(c.lat, c.lon, radius))  # fmt: skip
            cams = self._within(c.lat, c.lon, radius)
        else:
            cams = [c for c in self._near(anchor, rng.randrange(1, 4), f + HOUR)
                    if scope.covers(w.cams[c].district, _groups(w.cams[c].zone))]  # fmt: skip
            cams = cams or [anchor]
            inp = RequestInput(from_ms=f, to_ms=t, purpose=rng.choice(_PURPOSES),
                               case=self._case(), justification=rng.choice(_WHY),
                               cameras=tuple(cams))  # fmt: skip
        # The hurried approver approves everything; the careful one denies one in four.
        decider = HURRIED if rng.random() < 0.45 else CAREFUL
        outcome, reason = "approve", ""
        if decider == CAREFUL and rng.random() < 0.25:
            outcome, reason = "deny", rng.choice(_DENY)
        delay = rng.randrange(6, 28) * 1000 if decider == HURRIED else rng.randrange(4, 180) * MIN
        release = None
        if outcome == "approve" and len(cams) <= 3 and rng.random() < 0.85:
            # Released footage is real: one hour from the start of the window.
            if all(w.recording(c, f, f + HOUR) for c in cams):
                release = rng.randrange(10, 180) * MIN
                inp = replace(inp, to_ms=f + HOUR)
        ask = Ask(who, at, inp, outcome, decider, delay, release, reason)
        if release is not None:
            self._plan_real(ask, cams)
        return ask

    def _plan_real(self, ask: Ask, cams: list[str]) -> None:
        if ask.release_after is None:
            return
        if not self.week.cfg.clips:
            ask.release_after = None
            return
        for c in cams:
            self.week.real.add((c, ask.inp.from_ms))

    # -- running it --------------------------------------------------------------------

    def _try(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except CustodesError as err:
            self.failures.append(f"{what}: {err}")
            return None

    def _request(self, ask: Ask, at: int) -> None:
        assert self.access is not None
        acc = self.access
        rid = self._try(
            f"{ask.who}'s request", lambda: acc.request(self.users[ask.who], ask.inp, now_ms=at)
        )
        if rid is None:
            return
        ask.rid = rid
        self.week.count("access.requested")
        if ask.outcome == "wait":
            return
        decide = at + ask.delay
        if ask.decider == CAREFUL and not 8 <= (decide % DAY) // HOUR < 19:
            decide = decide - decide % DAY + (DAY if (decide % DAY) // HOUR >= 19 else 0)
            decide += 8 * HOUR + self.rng.randrange(60) * MIN
        self.week.timeline.at(decide, partial(self._decide, ask))

    def _decide(self, ask: Ask, at: int) -> None:
        assert self.access is not None
        acc = self.access
        row = acc.db.request(ask.rid)
        assert row is not None
        if ask.outcome == "deny":
            who = JUDGE if row.judge else ask.decider
            if self._try("a denial", lambda: acc.deny(self.users[who], ask.rid, ask.reason,
                                                       now_ms=at)) is not None:  # fmt: skip
                self.week.count("access.denied")
            return
        order = [ask.decider] if ask.decider != JUDGE else []
        if row.approvals > 1:
            order.append(CAREFUL if ask.decider != CAREFUL else HURRIED)
        order = order[: row.approvals - (1 if row.judge else 0)]
        if row.judge:
            order.append(JUDGE)
        order = order or [CAREFUL]
        t = at
        for i, who in enumerate(order):
            if i:
                t += 12 * 1000 if who == HURRIED else self.rng.randrange(20, 90) * MIN
            last = i == len(order) - 1
            self.week.timeline.at(t, partial(self._approve, ask, who, last))

    def _approve(self, ask: Ask, who: str, last: bool, at: int) -> None:
        assert self.access is not None
        acc = self.access
        reason = "Proportionate to the case." if who != HURRIED else ""
        got = self._try(
            f"{who}'s approval",
            lambda: acc.approve(self.users[who], ask.rid, unredacted=ask.unredacted,
                                reason=reason, now_ms=at),
        )  # fmt: skip
        if got is None:
            return
        self.week.count("access.approved")
        if last and got["complete"] and ask.release_after is not None:
            self.week.timeline.at(at + ask.release_after, partial(self._release, ask))

    def _release(self, ask: Ask, at: int) -> None:
        assert self.access is not None
        acc = self.access
        out = self.week.data / "demo" / "released" / f"{ask.rid}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        got = self._try(
            f"{ask.who}'s release",
            lambda: acc.release(self.users[ask.who], ask.rid, out, now_ms=at),
        )
        if got is not None:
            if is_archive(out):  # several cameras: one MP4 each, in a zip with its manifest
                out.rename(out.with_suffix(".zip"))
            self.week.count("access.released")

    def _daily(self, at: int) -> None:
        assert self.access is not None
        acc = self.access
        swept = self._try("the sweep", lambda: acc.sweep(now_ms=at)) or {}
        for k, v in swept.items():
            self.week.count(f"access.{k}", v)
        flags = self._try("the anomaly rules", lambda: acc.run_anomaly_rules(now_ms=at)) or []
        self.week.count("anomaly.flagged", len(flags))

    def _audit(self, at: int) -> None:
        """The auditor reveals one closed case and resolves the dragnet's flag."""
        assert self.access is not None
        acc = self.access
        self._daily(at)
        auditor = self.users[AUDITOR]
        done = [a for a in self.asks if a.rid and a.release_after and "insider" not in a.tags]
        if done:
            rid = done[0].rid
            if self._try("the reveal", lambda: acc.reveal(
                    auditor, rid, "The case is closed; the court allowed publication.",
                    now_ms=at)) is not None:  # fmt: skip
                self.week.count("access.revealed")
        dragnet = {a.rid for a in self.asks if "dragnet" in a.tags}
        for f in self._try("the flags", lambda: acc.flags(auditor)) or []:
            if f.get("rule") == "dragnet" and dragnet & set(f.get("requests", [])):
                if self._try("resolving a flag", lambda fl=f: acc.resolve_flag(
                        auditor, fl["flag"], "The judge denied it; no footage left.",
                        now_ms=at + MIN)) is not None:  # fmt: skip
                    self.week.count("anomaly.resolved")
                break

    # -- the end -----------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Save the demo logins (mode 0600) and say what happened."""
        from custodes.demo.build import LOGINS_FILE, _write_private

        w = self.week
        _write_private(w.data / LOGINS_FILE, self.logins)
        insider = self.users[INSIDER].pseudonym
        hurried = self.users[HURRIED].pseudonym
        assert self.access is not None
        flags = self.access.db.flags(open_only=False)
        return {
            "users": [{k: v for k, v in u.items() if k != "token"} for u in self.logins],
            "insider": {
                "name": INSIDER,
                "pseudonym": insider,
                "approver": HURRIED,
                "approver_pseudonym": hurried,
            },  # fmt: skip
            "flags": sorted({f["rule"] for f in flags}),
            "failures": self.failures,
        }


def _groups(zone: str | None) -> tuple[str, ...]:
    return (zone,) if zone else ()
