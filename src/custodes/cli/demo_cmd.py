"""``custodes demo-city`` and ``custodes demo-feed``: the synthetic city behind ``make demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["demo_city_cmd", "demo_feed_cmd"]


@click.command("demo-city")
@click.option(
    "--cameras",
    default=300,
    show_default=True,
    type=click.IntRange(40, 5000),
    help="How many cameras the city has.",
)
@click.option(
    "--days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(0.5, 28),
    help="Length of the simulated period, which ends now.",
)
@click.option(
    "--requests",
    default=60,
    show_default=True,
    type=click.IntRange(12, 2000),
    help="About how many footage requests.",
)
@click.option(
    "--interval",
    default=300,
    show_default=True,
    type=click.IntRange(10, 3600),
    help="Heartbeat interval in seconds (written to fleet.json).",
)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--no-clips", is_flag=True, help="Make no footage files, so release nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was built as JSON.")
@click.pass_context
def demo_city_cmd(
    ctx: click.Context,
    cameras: int,
    days: float,
    requests: int,
    interval: int,
    seed: int,
    no_clips: bool,
    as_json: bool,
) -> None:
    """Build a synthetic city with a simulated week into a new data directory.

    Districts with population, places (worship, schools, official residences,
    protest sites, a theatre), cameras, recorder agents; heartbeats, segments
    and outages (the theatre's cameras go dark one night, declared late);
    users for every role, footage requests, decisions, releases, and one
    insider whom the anomaly rules flag.  Everything is synthetic.  The logins
    are kept in DIR/demo/logins.json; serve it with 'custodes serve'.
    """
    from custodes.demo.build import DemoConfig, build_city

    data: Path = ctx.obj["data"]
    cfg = DemoConfig(
        cameras=cameras,
        days=days,
        requests=requests,
        interval_s=interval,
        seed=seed,
        clips=not no_clips,
    )
    say = (lambda s: None) if as_json else (lambda s: click.echo(f"custodes: {s}", err=True))
    facts = build_city(data, cfg, say=say)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(_describe(facts))


def _n(n: int, one: str) -> str:
    return f"{n} {one}" if n == 1 else f"{n} {one}s"


def _describe(f: dict[str, Any]) -> str:
    c = f["counts"]
    lines = [
        f"built the demo city in {f['data']} in {f['seconds']:.1f} s:",
        f"  {f['cameras']} cameras ({f['face_recognition_capable']} sold as face-recognition"
        f" capable) in {f['districts']} districts, {f['places']} places",
        f"  {f['from']} to {f['to']}: {_n(c.get('segments', 0), 'segment')},"
        f" {_n(c.get('outages', 0), 'random outage')}, the theatre dark from"
        f" {f['theatre_outage'][0]} to {f['theatre_outage'][1]} (declared late)",
    ]
    if "users" in f:
        lines.append(
            f"  {_n(c.get('access.requested', 0), 'request')},"
            f" {_n(c.get('access.approved', 0), 'approval')},"
            f" {_n(c.get('access.denied', 0), 'denial')},"
            f" {_n(c.get('access.released', 0), 'release')};"
            f" flags: {', '.join(f['flags']) or 'none'}"
        )
        for problem in f.get("failures", []):
            lines.append(f"  not done: {problem}")
    lines.append(f"  {f['entries']} log entries, checkpoint signed")
    return "\n".join(lines)


@click.command("demo-feed")
@click.option("--server", required=True, help="The demo server's base URL.")
@click.option(
    "--every",
    type=click.FloatRange(0.5, 3600),
    default=None,
    help="Seconds between heartbeats (default: a third of the interval).",
)
@click.option("--rounds", type=click.IntRange(1), default=None, help="Stop after this many.")
@click.pass_context
def demo_feed_cmd(ctx: click.Context, server: str, every: float | None, rounds: int | None) -> None:
    """Keep a served demo city's cameras heard from, as its recorder agents would.

    Sends heartbeats and each full hour's segment digests for the cameras that
    worked when the simulated week ended.  Stops when its parent process ends
    or the server stays unreachable for a minute.  'make demo' starts it.
    """
    from custodes.demo.feed import feed

    data: Path = ctx.obj["data"]
    say = lambda s: click.echo(f"custodes: {s}", err=True)  # noqa: E731
    got = feed(data, server, every_s=every, rounds=rounds, say=say)
    click.echo(
        f"sent {got['rounds']} rounds of heartbeats: {got['accepted']} accepted,"
        f" {got['refused']} refused"
    )
