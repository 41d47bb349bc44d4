"""``custodes report`` and ``custodes audit``: transparency reports and their check."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from custodes.cli.audit_access_cmd import audit_access_cmd
from custodes.errors import UsageError

__all__ = ["audit_cmd", "report_cmd"]


@click.command("report")
@click.option(
    "--period",
    required=True,
    metavar="YYYY-MM|YYYY",
    help="The month or year the report covers (UTC).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "html", "pdf"]),
    default="json",
    show_default=True,
    help="json is the form 'custodes audit' checks; html and pdf are for reading.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE (default: standard output; a PDF needs --out).",
)
@click.option(
    "--source",
    metavar="DIR|URL",
    help="Read the log from a tlog-tiles directory or base URL (or another instance's"
    " data directory) instead of --data.",
)
@click.option("--vkey", help="The log's verifier key; needed with --source.")
@click.option("--json", "as_json", is_flag=True, help="With --out, print a summary as JSON.")
@click.option(
    "--publish",
    is_flag=True,
    help="Also put the JSON form in DIR/reports/, where 'custodes serve' lists it at /reports"
    " (with HTML and PDF beside it).",
)
@click.pass_context
def report_cmd(
    ctx: click.Context,
    period: str,
    fmt: str,
    out: Path | None,
    source: str | None,
    vkey: str | None,
    as_json: bool,
    publish: bool,
) -> None:
    """Compute the transparency report of a period from the public log.

    The report covers deployment, how the system was used, sharing,
    violations and anomaly flags, outages, data retention and the policy in
    force, and names the signed checkpoint it was computed at, so that anyone
    can check it with 'custodes audit'.
    """
    from custodes.reports.audit import (
        open_instance_source,
        open_log_source,
        open_signed,
        read_state,
    )
    from custodes.reports.figures import parse_period
    from custodes.reports.render import Verify, build_report, render_html, render_pdf

    parse_period(period)
    if fmt == "pdf" and out is None:
        raise UsageError("a PDF report needs --out FILE")
    log = open_log_source(source) if source is not None else open_instance_source(ctx.obj["data"])
    try:
        key = vkey or log.verifier_key
        if key is None:
            raise UsageError("reading a log from --source needs its --vkey")
        signed = open_signed(log.latest_checkpoint(), key)
        state = read_state(log, signed)
    finally:
        log.close()
    report = build_report(state, signed, period)
    names = {k: str(d.get("name") or k) for k, d in state.districts.items()}
    json_name = out.with_suffix(".json").name if out is not None else f"report-{period}.json"
    where = source if source is not None else str(Path(ctx.obj["data"]).absolute())
    verify = Verify(json_name=json_name, source=where, vkey=key)
    if publish:
        from custodes.reports.publish import publish as publish_report

        path = publish_report(ctx.obj["data"], report)
        click.echo(f"published {path.name}: 'custodes serve' lists it at /reports", err=True)
        if out is None and fmt == "json":
            return
    data: bytes
    if fmt == "json":
        data = json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n"
    elif fmt == "html":
        data = render_html(report, names, verify=verify).encode()
    else:
        data = render_pdf(report, names, verify=verify)
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    out.write_bytes(data)
    summary: dict[str, Any] = {
        "out": str(out),
        "format": fmt,
        "period": period,
        "size": signed.checkpoint.size,
        "figures": len(report["figures"]),
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"wrote {out}: the {fmt} report of {period}, {len(report['figures'])} figures"
            f" computed at checkpoint size {signed.checkpoint.size}"
        )


class _AuditGroup(click.Group):
    """``audit REPORT.json ...`` (the first form, kept) is ``audit report REPORT.json ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["report", *args]
        return super().parse_args(ctx, args)


@click.group("audit", cls=_AuditGroup)
def audit_cmd() -> None:
    """Check published figures or the public rules against the log itself.

    'custodes audit REPORT.json --source ... --vkey ...' (or 'audit report')
    recomputes a transparency report; 'custodes audit access' checks every
    release, denial, expiry and disclosure against the public rules.
    """


@audit_cmd.command("report")
@click.argument("report", metavar="REPORT.json|URL")
@click.option(
    "--source",
    required=True,
    metavar="DIR|URL",
    help="The log: a tlog-tiles base URL (such as http://host/log), a directory from"
    " 'log export', or an instance's data directory.",
)
@click.option("--vkey", required=True, help="The log's verifier key (name+id+base64).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_report_cmd(report: str, source: str, vkey: str, as_json: bool) -> None:
    """Recompute every figure of a JSON report from the log and compare.

    Checks that the report's checkpoint is signed by --vkey, that the entries
    read from --source hash to it, then replays them and recomputes each
    figure.  Exits 1 naming the first figure that differs, with both values.
    """
    from custodes.reports.audit import (
        FigureMismatchError,
        audit_report,
        load_report,
        open_log_source,
        parse_report,
    )

    if report.startswith(("http://", "https://")):  # a published report, such as /reports/...
        import urllib.request

        try:
            with urllib.request.urlopen(report, timeout=60) as resp:
                loaded = parse_report(resp.read(), report)
        except OSError as err:
            raise UsageError(f"the report at {report} cannot be read: {err}") from None
    else:
        if not Path(report).is_file():
            raise UsageError(f"there is no report file {report}")
        loaded = load_report(Path(report))
    log = open_log_source(source)
    try:
        result = audit_report(loaded, log, vkey)
    except FigureMismatchError as err:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": str(err), "differences": err.differences}))
        raise
    finally:
        log.close()
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(
        f"audited {report}: all {result.figures} figures of {result.period} match the log"
        f" {result.origin} at size {result.size}"
    )


audit_cmd.add_command(audit_access_cmd)
