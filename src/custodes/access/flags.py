"""From the gateway's private tables to ``anomaly.flagged`` entries fit for the public log.

The rules (:mod:`custodes.access.anomaly`) see everything: who asked, for
which cells, under which case (as a keyed hash).  What they find is
published, so this module is where it is made safe.  People appear as their
pseudonyms.  A place that keeps being requested (which may be the home of
the person an insider is following) appears as no place at all: the subject
is the word ``place`` and the reason says "one place".  A stable place id,
even a keyed one, would not do: once the requests a flag lists are disclosed
(``access.disclosed`` names their cameras), the id would be tied to those
cameras, and every later flag carrying it would name the same place before
its own requests were disclosed.  For the same reason the published flag id
is a keyed hash (the gateway's case key) of the finding's dedupe key, which
holds the cell: an unkeyed hash of it could be recomputed from the disclosed
cameras' positions.  Auditors find the place in the sealed details of the
requests the flag lists.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from custodes.access import entries as E
from custodes.access.anomaly import AnomalyConfig, DecisionFacts, RequestFacts, evaluate
from custodes.access.requests import AccessDB

__all__ = ["LOOKBACK_MS", "flag_entries", "public_flag_id", "public_subject"]

LOOKBACK_MS = 36 * 86_400_000
"""How far back the facts go: the longest span a rule looks at is 35 days."""


def public_subject(subject: str, reason: str) -> tuple[str, str]:
    """A flag's subject and reason as the public log may show them: no place is named."""
    if not subject.startswith("cell:"):
        return subject, reason
    said = reason.replace(subject, "one place")
    if said.startswith("one place"):
        said = "O" + said[1:]
    return "place", said


def public_flag_id(key: bytes, dedupe: str) -> str:
    """``f-`` and 16 hex digits of HMAC-SHA-256(key, dedupe key): stable, and not recomputable."""
    return "f-" + hmac.new(key, b"flag:" + dedupe.encode(), hashlib.sha256).hexdigest()[:16]


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
    known = db.flag_keys()  # public flag ids: the log alone rebuilds them
    out = []
    for f in evaluate(reqs, decs, cfg, now):
        fid = public_flag_id(key, f.key)
        if fid in known:
            continue
        subject, reason = public_subject(f.subject, f.reason)
        entry = E.anomaly_flagged(fid, f.rule, subject, reason, list(f.requests), now)
        out.append((entry, fid, ""))
    return out
