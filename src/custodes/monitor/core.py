"""Following a log: each round verifies what is new and raises alerts with evidence.

One :meth:`Monitor.round`:

(1) Fetch the checkpoint; a source that cannot be read counts towards a stall.
(2) Verify the log's signature and any trusted witness cosignatures
    (``bad-signature``), then the witness policy (``witness``). A checkpoint
    short of the policy is never accepted, but it is still compared in (3):
    the log signed it, so it is evidence of a fork or rollback all the same.
(3) Compare with the checkpoint accepted before: smaller is a ``rollback``,
    the same size with another root a ``fork``; both carry both checkpoints.
(4) Fetch only the new entries, hash them onto the remembered right edge of
    the old tree, and require the new root: the new tree then both holds
    these entries and extends the old one (``fork`` otherwise).
(5) Run the entry checks on each new entry (``schema``; ``public-rules``,
    one alert per violation of DESIGN.md's public rules, with the entries as
    evidence), then their checkpoint hooks.  A check that follows the whole
    history (the public rules) and has not seen the entries accepted before,
    as after a restart, is first fed them again, read from the source and
    required to give the remembered tree (``fork`` otherwise).
(6) Accept and persist the new checkpoint.
(7) If nothing new came for longer than ``stall_after``, raise ``stall``
    once per stall.
(8) Recompute the published statistics: each report (``custodes report``
    JSON) at a ``statistics`` URL or path is audited against this same log
    the first time its bytes are seen (:func:`custodes.reports.audit.audit_report`):
    its checkpoint must verify under the log key, the entries must give that
    checkpoint's root, and every figure must be what the entries give;
    otherwise a ``statistics`` alert names the figure.  A report ahead of what
    the source serves yet is tried again next round.

Every alert is raised once: a key of its kind and evidence is remembered.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custodes.client.source import TileSource
from custodes.client.verify import WitnessPolicy
from custodes.errors import CustodesError, FormatError, NotFoundError, VerificationError
from custodes.monitor.checks import EntryCheck, Finding, PublicRulesCheck, SchemaCheck
from custodes.monitor.state import MonitorState
from custodes.tlog import (
    TILE_WIDTH,
    NoteVerifier,
    RightEdge,
    Tile,
    leaf_hash,
    open_checkpoint,
    parse_entry_bundle,
    tile_path,
)

__all__ = ["MAX_ENTRY_ALERTS", "Alert", "Monitor", "post_webhook"]

MAX_ENTRY_ALERTS = 100
"""At most this many entry alerts one by one in a round; the rest are counted in one alert."""


@dataclass(frozen=True, kw_only=True)
class Alert:
    kind: str
    message: str
    evidence: dict[str, Any]
    time: float

    def as_json(self) -> dict[str, Any]:
        return {
            "alert": self.kind,
            "message": self.message,
            "evidence": self.evidence,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time)),
        }


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


@dataclass(kw_only=True)
class Monitor:
    source: TileSource
    verifier: NoteVerifier
    witnesses: WitnessPolicy | None = None
    state_path: Path | None = None
    stall_after: float | None = None
    checks: Sequence[EntryCheck] = field(
        default_factory=lambda: (SchemaCheck(), PublicRulesCheck())
    )
    clock: Callable[[], float] = time.time
    statistics: Sequence[str] = ()
    """URLs or paths of published reports whose figures are recomputed, step (8)."""
    state: MonitorState = field(init=False)

    def __post_init__(self) -> None:
        self.state = MonitorState.load(self.state_path)
        self._round_findings: list[Finding] = []

    def round(self) -> list[Alert]:
        """One round, steps (1) to (7); the alerts raised for the first time."""
        now = self.clock()
        if self.state.last_new is None:
            self.state.last_new = now
        alerts: list[Alert] = []
        self._round_findings = []

        def alert(kind: str, message: str, evidence: dict[str, Any], key: str) -> None:
            if self.state.first_time(f"{kind}:{key}"):
                alerts.append(Alert(kind=kind, message=message, evidence=evidence, time=now))

        try:
            self._follow(alert)
            for where in self.statistics:
                self._check_statistics(where, alert)
        finally:
            # (7)
            idle = now - self.state.last_new
            if self.stall_after is not None and idle > self.stall_after:
                alert(
                    "stall",
                    f"No new checkpoint for {idle:.0f} s (more than {self.stall_after:g} s).",
                    {
                        "last_checkpoint": _text(self.state.checkpoint or b""),
                        "last_new_at": self.state.last_new,
                        "stall_after": self.stall_after,
                    },
                    str(self.state.last_new),
                )
            self.state.save(self.state_path)
        return alerts

    def _follow(self, alert: Callable[[str, str, dict[str, Any], str], None]) -> None:
        # (1)
        try:
            raw = self.source.fetch("checkpoint")
        except CustodesError as err:
            # Once per stall episode: the key changes when the log moves again.
            alert(
                "unreachable",
                str(err),
                {"source": self.source.description},
                str(self.state.last_new),
            )
            return
        digest = hashlib.sha256(raw).hexdigest()
        # (2)
        cosigners = self.witnesses.witnesses if self.witnesses else ()
        try:
            signed = open_checkpoint(raw, self.verifier, cosigners=cosigners)
        except (FormatError, VerificationError) as err:
            alert("bad-signature", str(err), {"checkpoint": _text(raw)}, digest)
            return
        witnessed = True
        if self.witnesses is not None:
            try:
                self.witnesses.check(signed)
            except VerificationError as err:
                # Not accepted; still compared below, since the log signed it.
                alert("witness", f"The log's {err}.", {"checkpoint": _text(raw)}, digest)
                witnessed = False
        # (3)
        old_raw = self.state.checkpoint
        new = signed.checkpoint
        old_size = self.state.edge.size
        both = {"old_checkpoint": _text(old_raw or b""), "new_checkpoint": _text(raw)}
        if old_raw is not None:
            old_root = self.state.edge.root()
            if new.size < old_size:
                alert(
                    "rollback",
                    f"The log shrank from {old_size} entries to {new.size}.",
                    both,
                    digest,
                )
                return
            if new.size == old_size:
                if new.root_hash != old_root:
                    alert("fork", f"The log signed two roots for size {new.size}.", both, digest)
                return
        if not witnessed:
            return
        # (4)
        try:
            entries = self._extend(new.size, new.root_hash)
        except NotFoundError as err:
            alert("unreachable", str(err), {"source": self.source.description}, digest)
            return
        except CustodesError as err:
            alert("bad-entries", f"The entries after size {old_size}: {err}", both, digest)
            return
        if entries is None:
            alert(
                "fork",
                f"The log at size {new.size} does not extend the tree of size {old_size}"
                " seen before.",
                both,
                digest,
            )
            return
        edge, tail, new_entries = entries
        # (5)
        if not self._prime(old_size):
            alert(
                "fork",
                f"The entries served now below size {old_size} do not give the tree seen before.",
                both,
                digest,
            )
            return
        suppressed = 0
        for offset, entry in enumerate(new_entries):
            for check in self.checks:
                result = check.check_entry(old_size + offset, entry)
                if result is None:
                    continue
                for found in [result] if isinstance(result, Finding) else result:
                    if suppressed or len(self._round_findings) >= MAX_ENTRY_ALERTS:
                        suppressed += 1
                        continue
                    self._round_findings.append(found)
                    key = found.key or f"{old_size + offset}:{digest}"
                    self._finding(alert, found, raw, key)
        if suppressed:
            alert(
                "schema",
                f"{suppressed} more entries up to size {new.size} failed their checks;"
                f" only the first {MAX_ENTRY_ALERTS} of a round are raised one by one.",
                {"suppressed": suppressed, "checkpoint": _text(raw)},
                f"more:{digest}",
            )
        for check in self.checks:
            for found in check.check_checkpoint(signed):
                self._finding(alert, found, raw, found.key or digest)
        # (6)
        self.state.checkpoint = raw
        self.state.edge = edge
        self.state.tail = tail
        self.state.last_new = self.clock()

    def _check_statistics(
        self, where: str, alert: Callable[[str, str, dict[str, Any], str], None]
    ) -> None:
        """(8) Audit the report at ``where`` once per distinct content."""
        from custodes.reports.audit import (
            FigureMismatchError,
            audit_report,
            parse_report,
            tile_log_source,
        )

        try:
            if where.startswith(("http://", "https://")):
                with urllib.request.urlopen(where, timeout=30) as resp:
                    raw = resp.read()
            else:
                raw = Path(where).read_bytes()
        except OSError as err:
            alert(
                "unreachable",
                f"The published statistics at {where} cannot be read: {err}.",
                {"statistics": where},
                f"{where}:{self.state.last_new}",
            )
            return
        digest = hashlib.sha256(raw).hexdigest()
        if f"statistics-ok:{digest}" in self.state.alerted:
            return
        key = getattr(self.verifier, "key", None)
        if not isinstance(key, str):
            raise TypeError("recomputing statistics needs a custodes.tlog.Verifier")
        evidence: dict[str, Any] = {"statistics": where, "sha256": digest}
        try:
            report = parse_report(raw, where)
            evidence["checkpoint"] = report["checkpoint"].get("note")
            audit_report(report, tile_log_source(self.source), key)
        except FigureMismatchError as err:
            evidence["differences"] = err.differences[:MAX_ENTRY_ALERTS]
            alert("statistics", f"The published statistics at {where}: {err}.", evidence, digest)
        except NotFoundError:
            return  # the report is ahead of the tiles served so far; next round
        except (FormatError, VerificationError) as err:
            alert(
                "statistics",
                f"The published statistics at {where} do not check out: {err}.",
                evidence,
                digest,
            )
        else:
            self.state.first_time(f"statistics-ok:{digest}")

    @staticmethod
    def _finding(
        alert: Callable[[str, str, dict[str, Any], str], None],
        found: Finding,
        raw: bytes,
        key: str,
    ) -> None:
        alert(found.kind, found.message, {**found.evidence, "checkpoint": _text(raw)}, key)

    def _prime(self, size: int) -> bool:
        """Feed the history checks entries ``0 .. size - 1`` if they have not seen them.

        The entries are read again from the source and must hash to the tree
        accepted before; False if they do not (nothing is fed then).
        """
        stale = [c for c in self.checks if isinstance(c, PublicRulesCheck) and c.fed != size]
        if not stale or size == 0:
            for c in stale:
                c.reset()
            return True
        from custodes.reports.audit import tile_log_source

        edge = RightEdge()
        old: list[bytes] = []
        for bundle in tile_log_source(self.source).bundles(size):
            edge.extend([leaf_hash(e) for e in bundle])
            old.extend(bundle)
        if edge.size != size or edge.root() != self.state.edge.root():
            return False
        for c in stale:
            c.reset()
            for i, e in enumerate(old):
                c.prime(i, e)
        return True

    def _extend(self, size: int, root: bytes) -> tuple[RightEdge, list[bytes], list[bytes]] | None:
        """The new entries onto the old edge: (edge, tail, entries), or None if the root differs."""
        state = self.state
        old = state.edge.size
        edge = state.edge.copy()
        tail = list(state.tail)
        new_entries: list[bytes] = []
        for index in range(old // TILE_WIDTH, (size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, size - index * TILE_WIDTH)
            data = self.source.fetch(tile_path(Tile(level=-1, index=index, width=width)))
            bundle = parse_entry_bundle(data, width)
            leaves = [leaf_hash(e) for e in bundle]
            skip = max(0, old - index * TILE_WIDTH)
            if leaves[:skip] != tail[:skip]:
                return None
            edge.extend(leaves[skip:])
            new_entries.extend(bundle[skip:])
            tail = leaves if width < TILE_WIDTH else []
        if edge.root() != root:
            return None
        return edge, tail, new_entries


def post_webhook(url: str, alert: Alert, *, timeout: float = 5.0) -> str | None:
    """POST the alert as JSON; the error as one sentence, or None."""
    body = json.dumps(alert.as_json()).encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except OSError as err:
        return f"The webhook {url} failed: {err}."
    return None
