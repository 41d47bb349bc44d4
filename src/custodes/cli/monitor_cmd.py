"""``custodes monitor``: follow a log and alert on forks, rollbacks, stalls and bad entries."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from custodes.client.source import open_source
from custodes.client.verify import WitnessPolicy
from custodes.monitor import Monitor, post_webhook
from custodes.tlog import CosignatureVerifier, Verifier

__all__ = ["monitor_cmd"]


@click.command("monitor")
@click.option(
    "--source",
    required=True,
    metavar="DIR|URL",
    help="The log's tiles: a directory or a base URL such as http://127.0.0.1:8000/log.",
)
@click.option("--vkey", required=True, help="The log's verifier key.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file remembering what the monitor saw; without it, every run starts afresh.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.01),
    default=10.0,
    show_default=True,
    help="Seconds between rounds.",
)
@click.option(
    "--stall-after",
    type=click.FloatRange(0),
    default=None,
    help="Alert when no new checkpoint came for this many seconds.",
)
@click.option("--webhook", metavar="URL", help="Also POST each alert as JSON to this URL.")
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="A witness's cosignature verifier key; repeat for each.",
)
@click.option(
    "--quorum",
    type=click.IntRange(1),
    default=None,
    help="How many --witness keys must have cosigned (default: all).",
)
@click.option(
    "--statistics",
    multiple=True,
    metavar="URL|FILE",
    help="A published report (custodes report --format json) whose every figure is"
    " recomputed from the log; repeat for each.",
)
@click.option("--once", is_flag=True, help="Run one round; exit 1 if it raised any alert.")
def monitor_cmd(
    source: str,
    vkey: str,
    state: Path | None,
    interval: float,
    stall_after: float | None,
    webhook: str | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    statistics: tuple[str, ...],
    once: bool,
) -> None:
    """Follow a log: verify each checkpoint, cosignature and entry; alert as JSON lines.

    Each alert is one JSON object on stdout: {"alert": KIND, "message": ...,
    "evidence": {...}, "time": ...}.  KIND is fork, rollback, stall, schema,
    bad-signature, witness, bad-entries, statistics, public-rules or unreachable;
    fork and rollback carry both signed checkpoints verbatim; statistics names the
    published figure that the log does not give; public-rules names a release,
    denial, expiry or disclosure that breaks the two-person rule or another public
    rule, with the entries that show it.
    """
    policy = None
    if witness_keys:
        keys = tuple(CosignatureVerifier.from_key(k) for k in witness_keys)
        policy = WitnessPolicy(witnesses=keys, quorum=quorum or len(keys))
    monitor = Monitor(
        source=open_source(source),
        verifier=Verifier.from_key(vkey),
        witnesses=policy,
        state_path=state,
        stall_after=stall_after,
        statistics=statistics,
    )
    while True:
        alerts = monitor.round()
        for alert in alerts:
            click.echo(json.dumps(alert.as_json()))
            if webhook:
                problem = post_webhook(webhook, alert)
                if problem:
                    click.echo(f"custodes: {problem}", err=True)
        sys.stdout.flush()
        if once:
            if alerts:
                sys.exit(1)
            return
        time.sleep(interval)
