"""How long the public rules take over a million-entry log (issue 11, item 4).

    .venv/bin/python benchmarks/public_rules_bench.py --entries 1000000 --runs 3

Builds, in memory, a synthetic public log of ``--entries`` canonical JSON
entries with the gateway's mix: accounts (``user.added``, some
``user.changed`` and ``user.revoked``), a few policy versions, and requests
that are approved (one approver, or two, or a judge) and released, denied,
left to expire, disclosed, or have their details read.  A handful of
releases break a rule on purpose (no approvals, a second release, a revoked
approver, an expired approval, self-approval).

Each run times, in this process:

* **baseline**: ``json.loads`` of every entry (what any reader of the log pays);
* **check**: ``json.loads`` and :meth:`RuleChecker.feed` of every entry, which
  is what ``custodes audit access`` does after the tree check.

It prints each run, the medians, the ratio, and what the check found: it must
name exactly the planted violations.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from custodes.access.public_rules import RuleChecker
from custodes.fleet.model import format_time

T0 = 1_780_000_000_000
DAY = 86_400_000
PLANTED = ("approvals-logged", "not-already-released", "approver-role", "approvals-unexpired",
           "not-self-approved")  # fmt: skip


def build(n: int, seed: int = 7) -> tuple[list[bytes], int]:
    """``n`` entries (canonical bytes) and how many violations were planted."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    now = T0

    def put(obj: dict[str, Any]) -> None:
        # the canonical form (RFC 8785) of these entries: sorted keys, no spaces, ASCII
        out.append(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())

    def base(kind: str, v: int = 1) -> dict[str, Any]:
        nonlocal now
        now += rnd.randint(50, 2_000)
        return {"type": kind, "v": v, "time": format_time(now)}

    districts = [f"d{i:02d}" for i in range(12)]
    inv = [f"u-inv{i:012x}" for i in range(400)]
    apr = [f"u-apr{i:012x}" for i in range(150)]
    judges = [f"u-jud{i:012x}" for i in range(20)]
    for u in inv:
        put({**base("user.added"), "user": u, "role": "investigator", "scope": "all"})
    for i, u in enumerate(apr):
        scope: Any = "all" if i % 3 else {"districts": [districts[i % 12]], "groups": []}
        put({**base("user.added"), "user": u, "role": "approver", "scope": scope})
    for u in judges:
        put({**base("user.added"), "user": u, "role": "judge", "scope": "all"})
    version = 1
    put({**base("policy.changed"), "version": 1, "sha256": "00" * 32, "policy": {}})
    wide = [a for i, a in enumerate(apr) if i % 3]
    planted = 0
    r = 0
    pending_disclose: list[dict[str, Any]] = []
    while len(out) < n:
        r += 1
        rid = f"r-{r:016x}"
        who = rnd.choice(inv)
        roll = rnd.random()
        two, judge = roll < 0.1, 0.1 <= roll < 0.15
        d = sorted(rnd.sample(districts, rnd.randint(1, 2)))
        req = {
            **base("access.requested", 2),
            "request": rid,
            "commitment": "ab" * 32,
            "requester": who,
            "purpose": "investigation",
            "cameras": 12 if two else 2,
            "districts": d,
            "groups": [],
            "window_s": 3600,
            "sensitive": judge,
            "needs": {"approvals": 2 if two else 1, "judge": judge},
            "policy": version,
        }
        put(req)
        ri = len(out) - 1
        fate = rnd.random()
        if fate < 0.08:
            dec = {**base("access.denied"), "request": rid, "approver": rnd.choice(wide),
                   "role": "approver", "reason": "no basis"}  # fmt: skip
            put(dec)
            continue
        deciders = [rnd.choice(judges)] if judge else rnd.sample(wide, 2 if two else 1)
        idx = []
        for a in deciders:
            b = base("access.approved")
            put({**b, "request": rid, "approver": a, "role": "judge" if judge else "approver",
                 "expires": format_time(now + DAY), "unredacted": False, "complete": True,
                 "reason": "approved"})  # fmt: skip
            idx.append(len(out) - 1)
        if fate < 0.13:
            put({**base("access.expired", 2), "request": rid, "reason": "approval lapsed"})
            continue
        if rnd.random() < 0.05:
            put({**base("access.details_read"), "request": rid, "by": "u-aud000000000001",
                 "role": "auditor", "why": "review"})  # fmt: skip
        rel = {
            **base("access.released", 2),
            "request": rid,
            "by": who,
            "segments": ["cd" * 32],
            "redaction": {"faces": True, "plates": True, "method": "blur"},
            "output": {"sha256": "ef" * 32, "bytes": 123456},
            "requested": ri,
            "approvals": idx,
            "policy": version,
        }
        put(rel)
        if rnd.random() < 0.5:
            pending_disclose.append({"request": rid, "cameras": ["cam-1", "cam-2"],
                                     "from": format_time(now - 7200_000),
                                     "to": format_time(now - 3600_000)})  # fmt: skip
        if len(pending_disclose) > 100:
            put({**base("access.disclosed"), **pending_disclose.pop(0)})
        if r % 20_000 == 0:  # an account's scope changes, now and then
            u = rnd.choice(wide)
            put({**base("user.changed", 2), "user": u, "role": "approver", "scope": "all"})
        if r % 50_000 == 0:
            version += 1
            put({**base("policy.changed"), "version": version, "sha256": "00" * 32,
                 "policy": {}})  # fmt: skip
        if r % 40_000 == 20_000 and planted < len(PLANTED):
            planted += _plant(PLANTED[planted], put, base, rid, ri, who, rnd.choice(inv), version,
                              now)  # fmt: skip
    return out[:n], planted


def _plant(rule: str, put: Any, base: Any, rid: str, ri: int, who: str, other: str,
           version: int, now: int) -> int:  # fmt: skip
    """Log one forged release that breaks ``rule``."""
    rel = {"by": who, "segments": ["cd" * 32], "redaction": {"method": "none"},
           "output": {"sha256": "ef" * 32, "bytes": 1}}  # fmt: skip
    if rule == "not-already-released":
        put({**base("access.released"), "request": rid, **rel})
        return 1
    fid = f"{rid}-forged"
    put(
        {
            **base("access.requested"),
            "request": fid,
            "commitment": "ab" * 32,
            "requester": who,
            "purpose": "investigation",
            "cameras": 1,
            "districts": ["d00"],
            "window_s": 60,
            "sensitive": False,
            "needs": {"approvals": 1, "judge": False},
            "policy": version,
        }
    )
    if rule == "approver-role":
        put({**base("user.revoked"), "user": "u-apr000000000001", "role": "approver"})
    if rule != "approvals-logged":
        approver = who if rule == "not-self-approved" else "u-apr000000000001"
        ttl = -1 if rule == "approvals-unexpired" else DAY
        put({**base("access.approved"), "request": fid, "approver": approver,
             "role": "approver", "expires": format_time(now + ttl), "unredacted": True,
             "complete": True, "reason": "ok"})  # fmt: skip
    put({**base("access.released"), "request": fid, **rel})
    if rule == "approver-role":  # the approver is back, so later honest approvals stay valid
        put({**base("user.added"), "user": "u-apr000000000001", "role": "approver",
             "scope": "all"})  # fmt: skip
    return 1


def baseline(entries: list[bytes]) -> float:
    t = time.perf_counter()
    for e in entries:
        json.loads(e)
    return time.perf_counter() - t


def check(entries: list[bytes]) -> tuple[float, RuleChecker]:
    t = time.perf_counter()
    checker = RuleChecker()
    feed, loads = checker.feed, json.loads
    for i, e in enumerate(entries):
        feed(i, loads(e))
    return time.perf_counter() - t, checker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    t = time.perf_counter()
    entries, planted = build(args.entries)
    kinds: dict[str, int] = {}
    for e in entries:
        k = json.loads(e)["type"]
        kinds[k] = kinds.get(k, 0) + 1
    print(f"built {len(entries):,} entries ({sum(map(len, entries)) / 2**20:.0f} MiB) in"
          f" {time.perf_counter() - t:.1f} s: {json.dumps(kinds)}")  # fmt: skip
    base_s, check_s = [], []
    checker = None
    for run in range(1, args.runs + 1):
        b = baseline(entries)
        c, checker = check(entries)
        base_s.append(b)
        check_s.append(c)
        print(f"run {run}: baseline {b:.2f} s, check {c:.2f} s ({c / b:.2f}x)")
    assert checker is not None
    rep = checker.report
    mb, mc = statistics.median(base_s), statistics.median(check_s)
    print(f"median: baseline {mb:.2f} s, check {mc:.2f} s, ratio {mc / mb:.2f}x;"
          f" {len(entries) / mc:,.0f} entries/s")  # fmt: skip
    print(f"checked {rep.releases:,} releases, {rep.denials:,} denials, {rep.expiries:,}"
          f" expiries, {rep.disclosures:,} disclosures; {len(rep.violations)} violations"
          f" ({sorted({v.rule for v in rep.violations})}), planted {planted};"
          f" {len(rep.cannot_check):,} cannot check")  # fmt: skip


if __name__ == "__main__":
    main()
