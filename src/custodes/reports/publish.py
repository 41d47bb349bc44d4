"""Published reports: the JSON forms in ``DIR/reports/``, which the server lists at ``/reports``.

``custodes report --publish`` writes ``DIR/reports/report-<period>.json`` (a
newer report of the same period replaces the older).  The server lists them
by period and serves each as JSON (the form ``custodes audit`` and ``monitor
--statistics`` read), HTML and PDF, the last two rendered with the server's own
log URL and verifier key, so that the audit command they print is the real one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.errors import FormatError, NotFoundError
from custodes.reports.audit import parse_report

__all__ = ["Published", "publish", "published", "read_published"]

FOLDER = "reports"
_NAME = re.compile(r"report-(\d{4}(?:-\d{2})?)")


@dataclass(frozen=True)
class Published:
    """One published report: ``name`` (no suffix), its period, checkpoint size and when made."""

    name: str
    period: str
    size: int
    generated: str


def publish(data: Path, report: dict[str, Any]) -> Path:
    """Write ``report`` (JSON form) into ``data``'s reports folder; its path."""
    folder = data / FOLDER
    folder.mkdir(exist_ok=True)
    path = folder / f"report-{report['period']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n")
    os.replace(tmp, path)  # a reader never sees half a report
    return path


def read_published(data: Path, name: str) -> dict[str, Any]:
    """The published report called ``name`` (``report-2026-11``), checked as an audit would."""
    if not _NAME.fullmatch(name):
        raise NotFoundError(f"no published report is called {name!r}")
    path = data / FOLDER / f"{name}.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no published report is called {name!r}") from None
    return parse_report(raw, f"{name}.json")


def published(data: Path) -> list[Published]:
    """Every published report that reads as one, newest period first."""
    out = []
    folder = data / FOLDER
    for path in sorted(folder.glob("report-*.json")) if folder.is_dir() else []:
        name = path.name.removesuffix(".json")
        try:
            report = read_published(data, name)
        except (FormatError, NotFoundError):
            continue
        size = report["checkpoint"].get("size")
        out.append(Published(name, report["period"], size if isinstance(size, int) else 0,
                             str(report.get("generated", ""))))  # fmt: skip
    out.sort(key=lambda p: p.period, reverse=True)
    return out
