"""``custodes geo``: districts, categorised places, and coverage figures."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from custodes.ledger.instance import Instance
from custodes.ledger.log import Log

__all__ = ["geo_group"]

_HINT = "a server holds it: send the file to it with --server URL --token OPERATOR_TOKEN"


def _server_opts(fn: Any) -> Any:
    fn = click.option(
        "--token",
        envvar="CUSTODES_TOKEN",
        help="With --server: an operator's token (a user with the operator role, or an agent"
        " added with --role operator); or $CUSTODES_TOKEN.",
    )(fn)
    return click.option(
        "--server",
        metavar="URL",
        envvar="CUSTODES_SERVER",
        help="Import through a running server (http://HOST:PORT), which appends to its log,"
        " instead of into the data directory.",
    )(fn)


def _send(server: str, token: str | None, kind: str, raw: bytes, remove: bool) -> dict[str, Any]:
    from custodes.cli.fleet_cmd import _remote
    from custodes.errors import UsageError

    if not token:
        raise UsageError("--server needs an operator token: give --token or set CUSTODES_TOKEN")
    query = "?remove_missing=true" if remove else ""
    report: dict[str, Any] = _remote(
        server, "POST", f"/geo/{kind}/import{query}", token=token, body=raw
    )
    return report


def _data(ctx: click.Context) -> Path:
    data: Path = ctx.obj["data"]
    return data


def _import(ctx: click.Context, fn: Callable[[Log], dict[str, Any]]) -> dict[str, Any]:
    inst = Instance.load(_data(ctx))
    with inst.open_log(hint=_HINT) as log:
        report = fn(log)
        log.integrate()
        return report


def _say(report: dict[str, Any], what: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    line = (
        f"{len(report['defined'])} {what} defined, {len(report['unchanged'])} unchanged,"
        f" {len(report['removed'])} removed"
    )
    if report["first_index"] is not None:
        line += f" (log entries from {report['first_index']})"
    click.echo(line)


@click.group("geo")
def geo_group() -> None:
    """Districts and categorised places in the log, and how watched each one is.

    Definitions go into the public log (district.defined, place.defined), so
    anyone can recompute the coverage figures.  Importing an unchanged file
    again writes nothing.
    """


@geo_group.group("districts")
def districts_group() -> None:
    """Districts: GeoJSON (Multi)Polygons with id, name and population."""


@districts_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--remove-missing", is_flag=True, help="Remove districts in the log that FILE lacks.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_server_opts
@click.pass_context
def districts_import(
    ctx: click.Context,
    file: Any,
    remove_missing: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Define districts from a GeoJSON FeatureCollection (FILE, or - for stdin).

    Each feature is a Polygon or MultiPolygon with properties id, name and,
    optionally, population (residents).  The area is computed from the polygon.
    While the server runs, import through it with --server URL --token TOKEN.
    """
    from custodes.geo.imports import parse_districts
    from custodes.geo.ops import import_districts

    raw = file.read()
    districts = parse_districts(raw)  # a bad file is refused here, before any request
    if server:
        report = _send(server, token, "districts", raw, remove_missing)
    else:
        report = _import(
            ctx, lambda log: import_districts(log, districts, remove_missing=remove_missing)
        )
    _say(report, "districts", as_json)


@geo_group.group("places")
def places_group() -> None:
    """Categorised places: GeoJSON Points with id, category and name."""


@places_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--remove-missing", is_flag=True, help="Remove places in the log that FILE lacks.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_server_opts
@click.pass_context
def places_import(
    ctx: click.Context,
    file: Any,
    remove_missing: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Define places from a GeoJSON FeatureCollection of Points (FILE, or - for stdin).

    Properties: id, category (a slug such as worship, school,
    official-residence or protest-site) and name.  While the server runs,
    import through it with --server URL --token TOKEN.
    """
    from custodes.geo.imports import parse_places
    from custodes.geo.ops import import_places

    raw = file.read()
    places = parse_places(raw)  # a bad file is refused here, before any request
    if server:
        report = _send(server, token, "places", raw, remove_missing)
    else:
        report = _import(ctx, lambda log: import_places(log, places, remove_missing=remove_missing))
    _say(report, "places", as_json)


@geo_group.command("coverage")
@click.option(
    "--radius",
    default=100.0,
    show_default=True,
    type=click.FloatRange(1, 5000),
    help="Metres around each place within which a camera counts as watching it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_context
def coverage_cmd(ctx: click.Context, radius: float, as_json: bool) -> None:
    """Cameras per district (per km², per 1,000 residents) and per category of place.

    Computed from the public log alone, at its latest checkpoint, which the
    output names, by the same rules as the dashboard and the transparency
    report: a camera counts in the first district (by id) whose polygon holds
    it, else in the district its record names, else "outside".  Needs no
    server.
    """
    from custodes.reports.figures import coverage, place_categories
    from custodes.reports.replay import entries_from_log, replay
    from custodes.tlog import parse_checkpoint, parse_note

    inst = Instance.load(_data(ctx))
    reader = inst.reader()
    try:
        note = reader.checkpoint()
        cp = parse_checkpoint(parse_note(note).text)
        state = replay(entries_from_log(reader, 0, cp.size))
    finally:
        reader.store.close()
    cams = [c for c in state.cameras.values() if c.get("status") == "active"]
    report: dict[str, Any] = {
        "districts": coverage(state),
        "categories": place_categories(state, radius),
        "radius_m": radius,
        "cameras": len(cams),
        "checkpoint": {"size": cp.size, "root": base64.b64encode(cp.root_hash).decode()},
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{len(cams)} active cameras, at checkpoint {cp.size}")
    click.echo(f"{'district':<24}{'cameras':>8}{'km²':>10}{'per km²':>10}{'per 1,000':>11}")
    for r in report["districts"]:
        area = "-" if r["area_km2"] is None else f"{r['area_km2']:.3f}"
        per_km2 = "-" if r["per_km2"] is None else f"{r['per_km2']:.2f}"
        per_1000 = "-" if r["per_1000"] is None else f"{r['per_1000']:.2f}"
        click.echo(f"{r['name'][:23]:<24}{r['cameras']:>8}{area:>10}{per_km2:>10}{per_1000:>11}")
    if report["categories"]:
        click.echo(f"\nplaces with a camera within {radius:g} m:")
        for c in report["categories"]:
            click.echo(
                f"  {c['category']:<22}{c['watched']:>5} of {c['places']:<5}"
                f" ({c['share'] * 100:.1f} %), {c['cameras']} distinct cameras near them"
            )
