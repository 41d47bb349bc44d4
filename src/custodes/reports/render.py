"""A transparency report as JSON, HTML or PDF, all from one set of figures.

The JSON form is the one that is audited (``custodes audit``)::

    {"format": "custodes-report/1", "period": "2026-11",
     "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z",
     "checkpoint": {"origin", "size", "root" (base64), "note" (the signed note)},
     "figures": {"access.requests": 4, ...}, "generated": "..."}

The HTML and PDF forms present the same figures in the sections that
surveillance-oversight ordinances ask annual reports to cover: deployment, how
the system was used, sharing, violations and anomaly flags, outages, data
retention and the policy in force.  Every chart is drawn by matplotlib from the
figures (inline SVG in HTML, PNG in PDF); nothing in a chart is typed by hand,
and the HTML loads nothing from elsewhere.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custodes.fleet.model import format_time, now_ms
from custodes.reports.audit import REPORT_FORMAT, checkpoint_json
from custodes.reports.figures import Figures, compute, parse_period
from custodes.reports.replay import PublicState
from custodes.tlog import SignedCheckpoint

__all__ = ["Section", "Verify", "build_report", "render_html", "render_pdf", "sections"]

TEMPLATES = Path(__file__).parent / "templates"


def build_report(state: PublicState, signed: SignedCheckpoint, period: str) -> dict[str, Any]:
    """The JSON report of ``period``, computed from ``state`` (the log at ``signed``)."""
    lo, hi = parse_period(period)
    return {
        "format": REPORT_FORMAT,
        "period": period,
        "from": format_time(lo),
        "to": format_time(hi),
        "checkpoint": checkpoint_json(signed),
        "figures": compute(state, lo, hi),
        "generated": format_time(now_ms()),
    }


@dataclass(frozen=True)
class Verify:
    """What a reader needs to check the report: the JSON's name, the log and its key.

    ``json_name`` is the file name of the report's JSON form (published beside
    the HTML and PDF); ``source`` is the log's tlog-tiles URL (or a directory);
    ``vkey`` the log's verifier key.
    """

    json_name: str
    source: str
    vkey: str

    @property
    def command(self) -> str:
        return f"custodes audit {self.json_name} --source {self.source} --vkey '{self.vkey}'"


def root_hex(report: dict[str, Any]) -> str:
    """The checkpoint's root hash in hex, as ``custodes verify`` and the pages print it."""
    import base64

    return base64.b64decode(report["checkpoint"]["root"]).hex()


# -- the sections, shared by HTML and PDF ---------------------------------------


@dataclass
class Chart:
    title: str
    bars: list[tuple[str, float]]
    second: list[tuple[str, float]] | None = None
    legend: tuple[str, str] = ("", "")


@dataclass
class Section:
    key: str
    title: str
    intro: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _group(fig: Figures, prefix: str) -> list[tuple[str, int | float]]:
    return sorted((k[len(prefix) :], v) for k, v in fig.items() if k.startswith(prefix))


def _num(value: int | float | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def sections(report: dict[str, Any], names: dict[str, str] | None = None) -> list[Section]:
    """The report's sections, in the order an oversight body reads them."""
    fig: Figures = report["figures"]
    names = names or {}
    g = fig.get
    out: list[Section] = []

    dep = Section(
        "deployment",
        "Deployment",
        "The cameras in service at the end of the period, where they are and what they can do.",
    )
    dep.facts = [
        ("Cameras in service at the end of the period", _num(g("deployment.cameras", 0))),
        ("Cameras added in the period", _num(g("deployment.added", 0))),
        ("Cameras retired in the period", _num(g("deployment.retired", 0))),
        ("Districts defined", _num(g("deployment.districts", 0))),
        (
            "Cameras whose hardware is sold as able to recognise faces",
            _num(g("deployment.capability.face_recognition_capable", 0)),
        ),
        ("Cameras able to pan, tilt and zoom", _num(g("deployment.capability.ptz", 0))),
        ("Cameras recording audio", _num(g("deployment.capability.audio", 0))),
    ]
    by_district = _group(fig, "deployment.cameras.by_district.")
    rows = [
        [
            names.get(d, d),
            _num(n),
            _num(g(f"deployment.per_km2.{d}")),
            _num(g(f"deployment.per_1000.{d}")),
        ]
        for d, n in by_district
    ]
    dep.tables.append(
        ("Cameras by district", ["District", "Cameras", "per km²", "per 1,000"], rows)
    )
    by_type = _group(fig, "deployment.cameras.by_type.")
    dep.tables.append(("Cameras by type", ["Type", "Cameras"], [[t, _num(n)] for t, n in by_type]))
    cats = sorted({k.rsplit(".", 1)[0] for k, _ in _group(fig, "deployment.places.")})
    place_rows = [
        [c, _num(g(f"deployment.places.{c}.places")), _num(g(f"deployment.places.{c}.watched"))]
        for c in cats
    ]
    dep.tables.append(
        ("Places and the cameras near them (100 m)", ["Category", "Places", "Watched"], place_rows)
    )
    dep.charts.append(
        Chart("Cameras in service by district", [(names.get(d, d), n) for d, n in by_district])
    )
    out.append(dep)

    use = Section(
        "use",
        "How the system was used",
        "Requests for footage made in the period: their purpose, where they looked, their fate.",
    )
    use.facts = [
        ("Requests", _num(g("access.requests", 0))),
        ("Approvals", _num(g("access.approvals", 0))),
        ("Denials", _num(g("access.denials", 0))),
        ("Approvals that lapsed unused", _num(g("access.expired", 0))),
        ("Releases of footage", _num(g("access.releases", 0))),
        ("Requests touching a sensitive zone", _num(g("access.requests.sensitive", 0))),
        ("Requests that needed a judge", _num(g("access.requests.needing_judge", 0))),
        ("Requests that needed two approvals", _num(g("access.requests.needing_two_approvals", 0))),
        ("Distinct requesters", _num(g("access.requesters", 0))),
        ("Distinct approvers", _num(g("access.approvers", 0))),
        ("Median hours from request to approval", _num(g("access.approval_hours.median"))),
    ]
    purposes = _group(fig, "access.requests.by_purpose.")
    use.tables.append(
        ("Requests by purpose", ["Purpose", "Requests"], [[p, _num(n)] for p, n in purposes])
    )
    req_d = _group(fig, "access.requests.by_district.")
    use.tables.append(
        (
            "Requests by district",
            ["District", "Requests"],
            [[names.get(d, d), _num(n)] for d, n in req_d],
        )
    )
    outcome = _group(fig, "access.requests.outcome.")
    use.tables.append(
        (
            "What became of the period's requests",
            ["Outcome", "Requests"],
            [[o, _num(n)] for o, n in outcome],
        )
    )
    use.charts.append(Chart("Requests by purpose", list(purposes)))
    months = _group(fig, "access.requests.by_month.")
    if len(months) > 1:
        use.charts.append(Chart("Requests by month", list(months)))
    out.append(use)

    share = Section("sharing", "Sharing", "Footage that left the system, and how it was redacted.")
    # Each line says only what the release entries say (their ``redaction``): a release
    # counts as masking plates when its entry says plates were masked, and not otherwise.
    redacted = g("sharing.releases.redacted", 0)
    faces, plates = g("sharing.releases.faces_masked"), g("sharing.releases.plates_masked")
    share.facts = [
        ("Releases", _num(g("sharing.releases", 0))),
        ("Released redacted", _num(redacted)),
    ]
    if faces is not None and plates is not None:  # reports made before these figures lack them
        share.facts += [
            ("Released with faces masked", _num(faces)),
            ("Released with licence plates masked", _num(plates)),
        ]
        if redacted and not plates:
            share.notes.append(
                "No release in the period masked licence plates: the release entries say so."
            )
    share.facts += [
        ("Released unredacted", _num(g("sharing.releases.unredacted", 0))),
        ("Approvals granting an unredacted export", _num(g("sharing.unredacted_granted", 0))),
        ("Recorded segments released", _num(g("sharing.segments", 0))),
        ("Bytes released", _num(g("sharing.bytes", 0))),
    ]
    if g("sharing.exports"):  # under custody the clip is named after its release
        share.facts.append(("Clips of releases under custody exported", _num(g("sharing.exports"))))
    share.facts += [
        ("Requests whose place and window were disclosed", _num(g("sharing.disclosed", 0))),
        ("Requests whose sealed details were revealed", _num(g("sharing.revealed", 0))),
    ]
    share.charts.append(
        Chart(
            "Releases by redaction",
            [
                ("redacted", g("sharing.releases.redacted", 0)),
                ("unredacted", g("sharing.releases.unredacted", 0)),
            ],
        )
    )
    out.append(share)

    viol = Section(
        "violations",
        "Violations and anomaly flags",
        "Breaches of the two-person rule visible in the log, and the anomaly rules' flags.",
    )
    viol.facts = [
        ("Approvals by the requester themself", _num(g("violations.self_approval", 0))),
        (
            "Releases with no approval before them",
            _num(g("violations.release_without_approval", 0)),
        ),
        ("Releases after the approval expired", _num(g("violations.release_after_expiry", 0))),
        ("Flags raised", _num(g("flags.raised", 0))),
        ("Flags resolved", _num(g("flags.resolved", 0))),
        ("Flags open at the end of the period", _num(g("flags.open_at_end", 0))),
    ]
    raised = dict(_group(fig, "flags.raised.by_rule."))
    resolved = dict(_group(fig, "flags.resolved.by_rule."))
    rules = sorted(set(raised) | set(resolved))
    viol.tables.append(
        (
            "Flags by rule",
            ["Rule", "Raised", "Resolved"],
            [[r, _num(raised.get(r, 0)), _num(resolved.get(r, 0))] for r in rules],
        )
    )
    if rules:
        viol.charts.append(
            Chart(
                "Anomaly flags by rule",
                [(r, raised.get(r, 0)) for r in rules],
                [(r, resolved.get(r, 0)) for r in rules],
                ("raised", "resolved"),
            )
        )
    out.append(viol)

    outg = Section(
        "outages",
        "Outages",
        "Cameras that fell silent, outages that struck nearby cameras together, and declarations.",
    )
    outg.facts = [
        ("Cameras falling silent", _num(g("outages.silent", 0))),
        ("Cameras heard again", _num(g("outages.back", 0))),
        ("Distinct cameras that fell silent", _num(g("outages.cameras_silent", 0))),
        ("Camera-hours of silence", _num(g("outages.silent_hours", 0))),
        ("Correlated outages (nearby cameras together)", _num(g("outages.correlated", 0))),
        ("Cameras in correlated outages", _num(g("outages.correlated.cameras", 0))),
        ("Correlated outages no declaration covers", _num(g("outages.correlated.undeclared", 0))),
        ("Outages declared", _num(g("outages.declared", 0))),
        ("Maintenance declared", _num(g("outages.maintenance", 0))),
        ("Declarations made after the fact", _num(g("outages.declared_late", 0))),
        ("Recorded segments logged", _num(g("segments.recorded", 0))),
    ]
    out.append(outg)

    ret = Section("retention", "Data retention", "Deletions and holds of recorded footage.")
    actions = g("retention.actions", 0)
    if actions:
        ret.facts = [("Retention actions", _num(actions))]
        ret.tables.append(
            (
                "Retention actions by kind",
                ["Kind", "Actions"],
                [[k, _num(n)] for k, n in _group(fig, "retention.actions.by_type.")],
            )
        )
    else:
        ret.notes.append("None recorded: the log holds no retention entries for this period.")
    out.append(ret)

    pol = Section(
        "policy", "Policy and accounts", "The access policy in force and who holds access."
    )
    versions = [v for v, _ in _group(fig, "policy.in_force.")]
    pol.facts = [
        ("Policy version at the end of the period", _num(g("policy.version_at_end", 0))),
        ("Policy versions in force during the period", ", ".join(versions) or "none"),
        ("Policy changes in the period", _num(g("policy.changes", 0))),
        ("Accounts added", _num(g("users.added", 0))),
        ("Accounts revoked", _num(g("users.revoked", 0))),
    ]
    roles = _group(fig, "users.active.by_role.")
    pol.tables.append(
        ("Active accounts by role", ["Role", "Accounts"], [[r, _num(n)] for r, n in roles])
    )
    out.append(pol)
    for sec in out:
        sec.charts = [c for c in sec.charts if c.bars]
    return out


# -- charts ------------------------------------------------------------------------

_UNSAFE = re.compile(r"[<>&\x00-\x1f\x7f]|--")


def _label(text: str, limit: int = 28) -> str:
    """A chart label that cannot break out of the SVG comment matplotlib writes it into."""
    clean = _UNSAFE.sub(" ", str(text)).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _draw(chart: Chart) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    labels = [_label(k) for k, _ in chart.bars] or ["(none)"]
    values = [float(v) for _, v in chart.bars] or [0.0]
    fig = Figure(figsize=(6.4, 2.6 + 0.05 * len(labels)), dpi=100)
    ax = fig.add_subplot()
    if chart.second is None:
        ax.barh(labels, values, color="#3b6ea5")
    else:
        ys = range(len(labels))
        ax.barh([y - 0.2 for y in ys], values, height=0.4, color="#3b6ea5", label=chart.legend[0])
        ax.barh(
            [y + 0.2 for y in ys],
            [float(v) for _, v in chart.second],
            height=0.4,
            color="#d98c2b",
            label=chart.legend[1],
        )
        ax.set_yticks(list(ys), labels)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.invert_yaxis()
    ax.set_title(_label(chart.title, 60), loc="left", fontsize=11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def chart_svg(chart: Chart) -> str:
    """The chart as an inline ``<svg>`` element (glyphs as paths: no fonts to load)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "custodes"}):
        _draw(chart).savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def chart_png(chart: Chart) -> bytes:
    buf = io.BytesIO()
    _draw(chart).savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# -- HTML and PDF ----------------------------------------------------------------


def render_html(
    report: dict[str, Any], names: dict[str, str] | None = None, *, verify: Verify
) -> str:
    """A self-contained HTML page: no scripts, no fonts, no images from elsewhere."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    secs = sections(report, names)
    charts = {id(c): chart_svg(c) for s in secs for c in s.charts}
    return env.get_template("report.html").render(
        report=report,
        sections=secs,
        svg=lambda c: charts[id(c)],
        verify=verify,
        root_hex=root_hex(report),
    )


def _unicode_fonts(pdf: Any) -> str:
    """Register matplotlib's DejaVu Sans with the PDF (full Unicode); its family name."""
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for style, name in (("", "DejaVuSans"), ("B", "DejaVuSans-Bold"), ("I", "DejaVuSans-Oblique")):
        pdf.add_font("DejaVu", style, str(ttf / f"{name}.ttf"))
    return "DejaVu"


def render_pdf(
    report: dict[str, Any], names: dict[str, str] | None = None, *, verify: Verify
) -> bytes:
    """The report as PDF, with the same sections and charts (as PNG) as the HTML."""
    from fpdf import FPDF

    cp = report["checkpoint"]
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(f"custodes transparency report {report['period']}")
    font = _unicode_fonts(pdf)
    pdf.add_page()
    pdf.set_font(font, "B", 18)
    pdf.multi_cell(0, 9, f"Transparency report: {report['period']}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "", 9)
    pdf.multi_cell(
        0,
        5,
        f"Covering {report['from']} to {report['to']} (UTC). Computed from the public log "
        f"{cp['origin']} at its signed checkpoint of size {cp['size']}, root"
        f" {root_hex(report)}. Anyone can recompute every figure from {verify.json_name}"
        f" (this report's JSON form) with: {verify.command}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    for sec in sections(report, names):
        pdf.ln(3)
        pdf.set_font(font, "B", 14)
        pdf.cell(0, 8, sec.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(font, "I", 9)
        pdf.multi_cell(0, 5, sec.intro, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(font, "", 10)
        for label, value in sec.facts:
            pdf.cell(130, 6, label)
            pdf.cell(0, 6, value, align="R", new_x="LMARGIN", new_y="NEXT")
        for note in sec.notes:
            pdf.multi_cell(0, 6, note, new_x="LMARGIN", new_y="NEXT")
        for title, head, rows in sec.tables:
            if not rows:
                continue
            pdf.ln(2)
            pdf.set_font(font, "B", 10)
            pdf.cell(0, 6, title, new_x="LMARGIN", new_y="NEXT")
            with pdf.table(text_align="LEFT", line_height=5) as table:
                for i, row in enumerate([head, *rows]):
                    pdf.set_font(font, "B" if i == 0 else "", 9)
                    cells = table.row()
                    for cell in row:
                        cells.cell(cell)
        for chart in sec.charts:
            pdf.ln(2)
            pdf.image(io.BytesIO(chart_png(chart)), w=170)
    return bytes(pdf.output())
