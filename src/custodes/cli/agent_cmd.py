"""``custodes agent``: the recorder agent, beside an ffmpeg segment writer or Frigate."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType

import click

__all__ = ["agent_cmd"]


@click.command("agent")
@click.option(
    "--watch",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The recorder's output folder: DIR/<camera>/*.mp4 (ffmpeg) or Frigate's recordings.",
)
@click.option(
    "--server", required=True, metavar="URL", help="The custodes server, http://HOST:PORT."
)
@click.option("--token", envvar="CUSTODES_AGENT_TOKEN", required=True, help="From 'agents add'.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The agent's journal (default: .<folder>.custodes-agent.db beside the watched folder).",
)
@click.option(
    "--settle", default=5.0, show_default=True, help="Seconds a file must stay unchanged."
)
@click.option("--heartbeat", default=10.0, show_default=True, help="Seconds between heartbeats.")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between folder scans.")
@click.option("--max-backoff", default=30.0, show_default=True, help="Longest retry wait, seconds.")
@click.option(
    "--no-upload",
    is_flag=True,
    help="Send digests only; the archive reads the recorder's storage directly.",
)
@click.option(
    "--once", is_flag=True, help="Send what is there now, then exit (1 if any is unsent)."
)
@click.option(
    "--log-vkey",
    envvar="CUSTODES_LOG_VKEY",
    metavar="VKEY",
    help="The log's verifier key: with custody on, custody entries are read from verified"
    " checkpoints only.",
)
@click.option(
    "--custodian",
    "custodians",
    multiple=True,
    metavar="VKEY",
    help="A custodian's verifier key the recorder trusts; repeat.  Custody is then required,"
    " and a segment is sealed only to an epoch dealt by these custodians alone.",
)
@click.option(
    "--progress",
    "progress_every",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="At most one progress line (segments seen, sent, uploaded) every this many seconds,"
    " on stderr, when something changed.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Also print progress, and the result at the end, as JSON Lines on stdout"
    ' ({"event": "progress", ...}, then {"event": "done", ...}).',
)
def agent_cmd(
    watch: Path,
    server: str,
    token: str,
    journal: Path | None,
    settle: float,
    heartbeat: float,
    poll: float,
    max_backoff: float,
    no_upload: bool,
    once: bool,
    log_vkey: str | None,
    custodians: tuple[str, ...],
    progress_every: float,
    as_json: bool,
) -> None:
    """Follow a recorder's segment files and send their SHA-256 digests and heartbeats.

    Each completed segment is hashed once and kept in a local journal until
    the server has logged it, so the agent may be stopped, or the server
    restarted, without a digest being lost or sent twice.  Camera ids are the
    folder names (for Frigate, the camera's folder).

    When the log holds a custodian set ('custody init'), each segment is encrypted
    here to its day's epoch key before it is sent or uploaded: the server gets the
    ciphertext only, and a segment whose epoch has no ready key waits.

    While it runs it says how far it is on stderr ("segments seen 12, sent 12,
    uploaded 11, pending 0"), at most once every --progress seconds; at the end
    it prints the totals (with --json, JSON Lines on stdout).
    """
    from custodes.fleet.agent import Agent

    journal = journal or watch.resolve().parent / f".{watch.resolve().name}.custodes-agent.db"
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)

    def progress(st: dict[str, int]) -> None:
        words = (
            f"segments seen {st['seen']}, sent {st['sent']}, uploaded {st['uploaded']},"
            f" pending {st['pending']}, refused {st['refused']}"
        )
        if st["held"]:
            words += f", waiting for an epoch key {st['held']}"
        click.echo(f"custodes agent: {words}", err=True)
        if as_json:
            click.echo(json.dumps({"event": "progress", **st}))

    agent = Agent(
        watch=watch,
        server=server,
        token=token,
        journal=journal,
        settle=settle,
        heartbeat=heartbeat,
        max_backoff=max_backoff,
        upload=not no_upload,
        say=lambda s: click.echo(f"custodes agent: {s}", err=True),
        log_vkey=log_vkey,
        custodians=frozenset(custodians) or None,
        progress=progress,
        progress_every=progress_every,
    )
    code = agent.run(once=once, poll=poll, stop=lambda: stopping)
    st = agent.status()
    if as_json:
        click.echo(json.dumps({"event": "done", **st, "exit_code": code}))
    else:
        waiting = f", waiting for an epoch key {st['held']}" if st["held"] else ""
        click.echo(
            f"segments sent {st['sent']}, pending {st['pending']},"
            f" refused {st['refused']}, archived {st['uploaded']}{waiting}"
        )
    sys.exit(code)
