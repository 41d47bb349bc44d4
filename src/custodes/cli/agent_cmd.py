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
    "--record",
    "records",
    multiple=True,
    metavar="CAMERA=INPUT",
    help="Record this camera with ffmpeg into DIR/CAMERA/ (INPUT is what ffmpeg's -i takes,"
    " such as an rtsp:// URL); repeat.  Its segments are --segment-seconds long, or"
    " --live-segment-seconds while the server says the camera has a live grant.",
)
@click.option(
    "--segment-seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=2, max=3600),
    help="Segment length of the cameras given with --record.",
)
@click.option(
    "--live-segment-seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=2, max=4),
    help="Segment length of a --record camera while it has a live grant (2 to 4 s), so that"
    " the live view shows each segment soon after it closes.",
)
@click.option(
    "--record-input-args",
    default="",
    metavar="ARGS",
    help="ffmpeg options put before -i for --record (such as '-rtsp_transport tcp').",
)
@click.option(
    "--record-codec-args",
    default="-c copy",
    show_default=True,
    metavar="ARGS",
    help="ffmpeg options put after -i for --record.  ffmpeg cuts a copied stream at its"
    " keyframes only: the camera's keyframe interval must not exceed the live segment"
    " length, or re-encode (such as '-c:v libx264 -g 25').",
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
    records: tuple[str, ...],
    segment_seconds: float,
    live_segment_seconds: float,
    record_input_args: str,
    record_codec_args: str,
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

    With --record it also runs the recorders itself, one ffmpeg per camera, and cuts
    short segments for a camera while it has a live grant (the server says which in
    its answer to each heartbeat); each ffmpeg is stopped when the agent stops.

    While it runs it says how far it is on stderr ("segments seen 12, sent 12,
    uploaded 11, pending 0"), at most once every --progress seconds; at the end
    it prints the totals (with --json, JSON Lines on stdout).
    """
    from custodes.errors import UsageError
    from custodes.fleet.agent import Agent
    from custodes.fleet.recorder import Recorders, parse_record

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

    say = lambda s: click.echo(f"custodes agent: {s}", err=True)  # noqa: E731
    recorders = None
    if records:
        if once:
            raise click.UsageError("--record runs recorders, so it cannot go with --once")
        try:
            recorders = Recorders(
                watch, parse_record(records), segment_s=segment_seconds,
                live_segment_s=live_segment_seconds, input_args=record_input_args,
                codec_args=record_codec_args, say=say,
            )  # fmt: skip
        except (UsageError, ValueError) as err:
            raise click.UsageError(str(err)) from None
    agent = Agent(
        watch=watch,
        server=server,
        token=token,
        journal=journal,
        settle=settle,
        heartbeat=heartbeat,
        max_backoff=max_backoff,
        upload=not no_upload,
        say=say,
        log_vkey=log_vkey,
        custodians=frozenset(custodians) or None,
        progress=progress,
        progress_every=progress_every,
        recorders=recorders,
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
