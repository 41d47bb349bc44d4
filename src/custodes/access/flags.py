"""From the gateway's private tables to ``anomaly.flagged`` entries fit for the public log.

The rules (:mod:`custodes.access.anomaly`) see everything: who asked, for
which cells, under which case (as a keyed hash).  What they find is
published, so this module is where it is made safe: people appear as their
pseudonyms, and a place that keeps being requested (which may be the home of
the person an insider is following) only as a keyed place id, never as
coordinates.  Auditors find the place in the sealed details of the requests
the flag lists.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from custodes.access import entries as E
from custodes.access.anomaly import AnomalyConfig, DecisionFacts, RequestFacts, evaluate
from custodes.access.requests import AccessDB

__all__ = ["LOOKBACK_MS", "flag_entries", "public_subject"]

LOOKBACK_MS = 36 * 86_400_000
"""How far back the facts go: the longest span a rule looks at is 35 days."""


def public_subject(key: bytes, subject: str, reason: str) -> tuple[str, str]:
    """A flag's subject and reason as the public log may show them."""
    if not subject.startswith("cell:"):
        return subject, reason
    digest = hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()
    place = "place-" + digest[:16]
    return place, reason.replace(subject, place)


def flag_entries(
    db: AccessDB, policy: Callable[[], dict[str, Any]], key: bytes, now: int
) -> list[tuple[dict[str, Any], str, str]]:
    """The entries (with their dedupe keys) for findings not flagged before.

    ``policy`` is called only when there are requests to judge, so an idle
    gateway does not log a default policy just to find nothing.
    """
    since = now - LOOKBACK_MS
    rows = db.requests("created_ms >= ?", (since,))
    if not rows:
        return []
    cfg = AnomalyConfig.from_policy(policy())
    created = {r.id: r.created_ms for r in rows}
    reqs = [
        RequestFacts(
            r.id,
            r.pseudonym,
            r.created_ms,
            r.purpose,
            r.case_key,
            r.cameras,
            r.cells,
            r.from_ms,
            r.to_ms,
            r.sensitive,
            r.assembly,
        )  # fmt: skip
        for r in rows
    ]
    decs = [
        DecisionFacts(d.request, d.pseudonym, created[d.request], d.decided_ms, d.approved)
        for d in db.decisions(since_ms=since)
        if d.request in created
    ]
    known = db.flag_keys()
    out = []
    for f in evaluate(reqs, decs, cfg, now):
        if f.key in known:
            continue
        subject, reason = public_subject(key, f.subject, f.reason)
        entry = E.anomaly_flagged(f.id, f.rule, subject, reason, list(f.requests), now)
        out.append((entry, f.key, ""))
    return out
