"""Reading the public log behind a report, and auditing a report against it.

A report names the checkpoint it was computed at.  :func:`audit` checks it in
numbered steps, trusting neither the report's author nor whoever serves the log:

1. The report is a ``custodes-report/1`` JSON object with a period, a
   checkpoint and figures.
2. The checkpoint's signed note verifies under the log's verifier key, and its
   origin, size and root are the ones the report states.
3. Entries ``0 .. size - 1`` are read from the source (an instance's data
   directory, a tlog-tiles directory from ``log export``, or a tlog-tiles base
   URL), hashed, and must give the checkpoint's root: the figures are then
   recomputed from exactly the log the checkpoint commits to.
4. The entries are replayed (:mod:`custodes.reports.replay`) and every figure is
   recomputed (:func:`custodes.reports.figures.compute`).
5. Every figure must be present on both sides with the same value; the first
   one that differs (in name order) is named, with both values.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.client.source import TileSource, open_source
from custodes.errors import FormatError, NotFoundError, ProofError, VerificationError
from custodes.ledger.instance import CONFIG, Instance
from custodes.reports.figures import Figures, compute, parse_period
from custodes.reports.replay import PublicState
from custodes.tlog import (
    TILE_WIDTH,
    SignedCheckpoint,
    Tile,
    TreeVerifier,
    Verifier,
    open_checkpoint,
    parse_entry_bundle,
    tile_path,
)

__all__ = [
    "REPORT_FORMAT",
    "AuditResult",
    "FigureMismatchError",
    "LogSource",
    "audit",
    "audit_report",
    "open_instance_source",
    "open_log_source",
    "parse_report",
    "tile_log_source",
]

REPORT_FORMAT = "custodes-report/1"


class FigureMismatchError(VerificationError):
    """A report's figure differs from what the log gives; carries every difference."""

    def __init__(self, message: str, *, differences: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.differences = differences


@dataclass(frozen=True)
class AuditResult:
    origin: str
    size: int
    period: str
    figures: int

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "origin": self.origin,
            "size": self.size,
            "period": self.period,
            "figures": self.figures,
        }


class LogSource:
    """Where the log is read from: an instance's store, or tlog tiles (directory or URL)."""

    def __init__(
        self,
        description: str,
        checkpoint: Callable[[], bytes],
        bundles: Callable[[int], Iterator[list[bytes]]],
        verifier_key: str | None = None,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.description = description
        self.latest_checkpoint = checkpoint
        self.bundles = bundles
        """``bundles(size)``: the entries of a tree of ``size``, 256 at a time."""
        self.verifier_key = verifier_key
        """The instance's own key, when the source is its data directory."""
        self.close = close


def open_log_source(where: str | Path) -> LogSource:
    """An instance data directory, a tlog-tiles directory, or an ``http(s)://`` base URL."""
    text = str(where)
    if not text.startswith(("http://", "https://")) and (Path(text) / CONFIG).exists():
        return _instance_source(Instance.load(Path(text)))
    return tile_log_source(open_source(text))


def open_instance_source(data: Path) -> LogSource:
    """The log of the instance in the data directory ``data``, read from its store."""
    return _instance_source(Instance.load(data))


def _instance_source(inst: Instance) -> LogSource:
    reader = inst.reader()

    def bundles(size: int) -> Iterator[list[bytes]]:
        for start in range(0, size, TILE_WIDTH):
            yield [
                bytes(e) for e in reader.store.read_entries(start, min(size, start + TILE_WIDTH))
            ]

    return LogSource(
        str(inst.path), reader.checkpoint, bundles, inst.verifier_key, reader.store.close
    )


def tile_log_source(source: TileSource) -> LogSource:
    """A :class:`LogSource` over tlog tiles (a directory or a base URL)."""

    def bundles(size: int) -> Iterator[list[bytes]]:
        for start in range(0, size, TILE_WIDTH):
            index, width = start // TILE_WIDTH, min(TILE_WIDTH, size - start)
            try:
                raw = source.fetch(tile_path(Tile(level=-1, index=index, width=width)))
                yield parse_entry_bundle(raw, width)
            except NotFoundError:
                if width == TILE_WIDTH:
                    raise
                # The log has grown past this size: the bundle is now full (or wider).
                full = source.fetch(tile_path(Tile(level=-1, index=index)))
                yield parse_entry_bundle(full, TILE_WIDTH)[:width]

    return LogSource(source.description, lambda: source.fetch("checkpoint"), bundles)


def read_state(source: LogSource, signed: SignedCheckpoint) -> PublicState:
    """Replay entries ``0 .. size - 1`` from ``source``, checking they give the signed root."""
    cp = signed.checkpoint
    tree = TreeVerifier()
    state = PublicState()
    at = 0
    for i, entries in enumerate(source.bundles(cp.size)):
        tree.add_bundle(i, entries)
        for raw in entries:
            state.apply_bytes(at, raw)
            at += 1
    if at != cp.size:
        raise ProofError(f"{source.description} gave {at} entries, not the {cp.size} signed")
    if tree.root() != cp.root_hash:
        raise ProofError(
            f"the entries read from {source.description} do not hash to the checkpoint's root"
            f" for size {cp.size}"
        )
    return state


def open_signed(note: bytes, vkey: str) -> SignedCheckpoint:
    """Verify a signed checkpoint under ``vkey``, with one clear sentence on failure."""
    verifier = Verifier.from_key(vkey)
    try:
        return open_checkpoint(note, verifier)
    except VerificationError:
        raise VerificationError(
            f"the checkpoint is not signed by the log key {verifier.name}+{verifier.key_id:08x}"
        ) from None


def checkpoint_json(signed: SignedCheckpoint) -> dict[str, Any]:
    cp = signed.checkpoint
    return {
        "origin": cp.origin,
        "size": cp.size,
        "root": base64.b64encode(cp.root_hash).decode(),
        "note": signed.raw.decode("utf-8"),
    }


def load_report(path: Path) -> dict[str, Any]:
    """(1) A report file as its JSON object, with the fields an audit needs."""
    return parse_report(path.read_bytes(), str(path))


def parse_report(raw: bytes, name: str) -> dict[str, Any]:
    """(1) A report's bytes (``name`` says where they came from) as its JSON object."""
    try:
        report = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"{name} is not a JSON report") from None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise FormatError(f"{name} is not a {REPORT_FORMAT} report")
    cp, figures = report.get("checkpoint"), report.get("figures")
    if not isinstance(cp, dict) or not isinstance(cp.get("note"), str):
        raise FormatError(f"{name} names no signed checkpoint")
    if not isinstance(figures, dict) or not isinstance(report.get("period"), str):
        raise FormatError(f"{name} holds no period and figures")
    return report


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(type(a) in (int, float) and type(b) in (int, float) and a == b)


def compare(reported: dict[str, Any], recomputed: Figures) -> list[dict[str, Any]]:
    """Every figure that differs, missing on one side counted too, in name order."""
    out = []
    for name in sorted(set(reported) | set(recomputed)):
        mine, theirs = reported.get(name), recomputed.get(name)
        if not _same(mine, theirs):
            out.append({"figure": name, "report": mine, "log": theirs})
    return out


def audit(report_path: Path, source: LogSource, vkey: str) -> AuditResult:
    """Recompute every figure of a report from the log; raise on the first that differs."""
    return audit_report(load_report(report_path), source, vkey)


def audit_report(report: dict[str, Any], source: LogSource, vkey: str) -> AuditResult:
    """:func:`audit` for a report already read and checked by :func:`parse_report`."""
    stated = report["checkpoint"]
    period = report["period"]
    lo, hi = parse_period(period)
    # (2)
    signed = open_signed(stated["note"].encode("utf-8"), vkey)
    actual = checkpoint_json(signed)
    for key in ("origin", "size", "root"):
        if stated.get(key) != actual[key]:
            raise VerificationError(
                f"the report states checkpoint {key} {stated.get(key)!r}, but its signed note"
                f" says {actual[key]!r}"
            )
    # (3) and (4)
    state = read_state(source, signed)
    figures = compute(state, lo, hi)
    # (5)
    differences = compare(report["figures"], figures)
    if differences:
        first = differences[0]
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise FigureMismatchError(
            f"figure {first['figure']} differs: the report says {_show(first['report'])},"
            f" the log at size {signed.checkpoint.size} gives {_show(first['log'])}{more}",
            differences=differences,
        )
    return AuditResult(
        origin=signed.checkpoint.origin,
        size=signed.checkpoint.size,
        period=period,
        figures=len(figures),
    )


def _show(value: Any) -> str:
    return "nothing" if value is None else json.dumps(value)
