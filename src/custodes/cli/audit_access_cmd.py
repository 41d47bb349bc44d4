"""``custodes audit access``: check the public rules of a log, trusting no one.

(1) Open the log (a tlog-tiles URL or directory, or an instance's data
    directory) and verify its latest checkpoint under ``--vkey``.
(2) Read every entry up to that size, hash them into the tree and feed them,
    in order, to a :class:`custodes.access.public_rules.RuleChecker`; the
    entries must give the signed root, or nothing is reported.
(3) Print what was checked in the period (releases, exports, denials,
    expiries, disclosures), how many rules each passed, and every violation with its
    evidence.  Exit 0 with no violation, 1 with any, 2 on bad input.
"""

from __future__ import annotations

import json
from typing import Any

import click

from custodes.errors import CustodesError

__all__ = ["audit_access_cmd"]

_KINDS = (
    ("access.released", "releases"),
    ("access.exported", "exports"),
    ("access.denied", "denials"),
    ("access.expired", "expiries"),
    ("access.disclosed", "disclosures"),
)


def _when(text: str | None, what: str, end: bool) -> int | None:
    """A date (YYYY-MM-DD, whole days: --to includes its day) or an RFC 3339 time, as ms."""
    from custodes.fleet.model import parse_time

    if text is None:
        return None
    day = len(text) == 10
    ms = parse_time(f"{text}T00:00:00Z" if day else text, what)
    return ms + 86_400_000 if day and end else ms


def _check(source: str, vkey: str, since: int | None, until: int | None) -> dict[str, Any]:
    """Steps (1) and (2): the verified checkpoint and the checker's report."""
    from custodes.access.public_rules import RuleChecker
    from custodes.errors import ProofError
    from custodes.reports.audit import open_log_source, open_signed
    from custodes.tlog import TreeVerifier

    log = open_log_source(source)
    try:
        signed = open_signed(log.latest_checkpoint(), vkey)  # (1)
        cp = signed.checkpoint
        checker = RuleChecker(since_ms=since, until_ms=until)
        tree = TreeVerifier()
        at = 0
        for i, bundle in enumerate(log.bundles(cp.size)):  # (2)
            tree.add_bundle(i, bundle)
            for raw in bundle:
                try:
                    obj: Any = json.loads(raw)
                except ValueError:
                    obj = None
                checker.feed(at, obj)
                at += 1
        if at != cp.size or tree.root() != cp.root_hash:
            raise ProofError(
                f"the entries read from {log.description} do not hash to the signed checkpoint"
                f" of size {cp.size}, so nothing in them can be trusted"
            )
    finally:
        log.close()
    return {"checkpoint": signed, "report": checker.report}


def _evidence(ev: list[dict[str, Any]]) -> str:
    return ", ".join(f"#{e['index']} {e['type']}" for e in ev)


@click.command("access")
@click.option(
    "--source",
    required=True,
    metavar="URL|DIR",
    help="The log: a tlog-tiles base URL (such as http://host/log), a directory from"
    " 'log export', or an instance's data directory.",
)
@click.option("--vkey", required=True, help="The log's verifier key (name+id+base64).")
@click.option(
    "--from",
    "since",
    metavar="DATE",
    help="Judge entries from this day (YYYY-MM-DD) or time (RFC 3339) on.",
)
@click.option(
    "--to", "until", metavar="DATE", help="Judge entries up to this day (included) or time."
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
@click.pass_context
def audit_access_cmd(
    ctx: click.Context,
    source: str,
    vkey: str,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Check the two-person rule and the other public rules from the log alone.

    Verifies the log against its signed checkpoint first, then checks, for
    every release, export (the clip of a release under custody, logged after
    it), denial, expiry and disclosure in the period, every rule of
    DESIGN.md ("The public rules"): the request came first, its approvals are
    logged, distinct, not the requester's, by people who held a deciding role
    and scope then, enough of them with a judge where needed, none expired,
    and the request not denied, expired or already released.  Exits 0 with
    no violation, 1 with any (each printed with its evidence), 2 when the
    input is bad (unreadable source, wrong key, a log that does not verify).
    """
    try:
        f, t = _when(since, "--from", False), _when(until, "--to", True)
        if f is not None and t is not None and t <= f:
            raise click.BadParameter("--to must come after --from")
        done = _check(source, vkey, f, t)
    except (CustodesError, OSError, click.BadParameter) as err:
        msg = err.message if isinstance(err, click.BadParameter) else str(err)
        if isinstance(err, OSError) and not isinstance(err, CustodesError):
            msg = f"{err.strerror or err} ({source})"
        click.echo(f"custodes: {msg}", err=True)
        ctx.exit(2)
    report = done["report"]
    cp = done["checkpoint"].checkpoint
    doc = report.to_json()
    per_kind: dict[str, dict[str, Any]] = {}
    for kind, name in _KINDS:
        rows = [j for j in report.judged if j[1] == kind]
        per_kind[name] = {
            "checked": getattr(report, name, len(rows)),  # exports: one row each
            "passed_all": sum(1 for j in rows if j[3] == j[4]),
            "rules_passed": [
                {"index": j[0], "request": j[2], "passed": j[3], "of": j[4]} for j in rows
            ],  # fmt: skip
        }
    if as_json:
        click.echo(json.dumps({
            "ok": report.ok,
            "log": {"origin": cp.origin, "size": cp.size},
            "period": {"from": since, "to": until},
            "checked": per_kind,
            "rules": doc["rules"],
            "violations": doc["violations"],
            "cannot_check": doc["cannot_check"],
        }))  # fmt: skip
    else:
        period = f" from {since or 'the start'} to {until or 'now'}" if since or until else ""
        click.echo(f"verified {cp.origin} at size {cp.size}; checked its public rules{period}")
        for _kind, name in _KINDS:
            k = per_kind[name]
            tally: dict[tuple[int, int], int] = {}
            for r in k["rules_passed"]:
                tally[(r["passed"], r["of"])] = tally.get((r["passed"], r["of"]), 0) + 1
            each = ", ".join(
                f"{n:,} passed {p} of {o} rules"
                for (p, o), n in sorted(tally.items(), reverse=True)
            )
            click.echo(f"  {k['checked']:>8,} {name}" + (f": {each}" if each else ""))
        for rule, n in doc["rules"].items():
            click.echo(f"  {rule:<24} passed {n['passed']:,} of {n['checked']:,}")
        for label, items in (
            ("violations", doc["violations"]),
            ("cannot check", doc["cannot_check"]),
        ):
            if items:
                click.echo(f"{label}: {len(items)}")
            for v in items:
                click.echo(f"  {v['rule']}: {v['reason']}")
                click.echo(f"    evidence: {_evidence(v['evidence'])}")
        if report.ok:
            click.echo("no violations")
    if not report.ok:
        ctx.exit(1)
