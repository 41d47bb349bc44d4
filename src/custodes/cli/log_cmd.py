"""``custodes init`` and ``custodes log ...``: the log, from the command line."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import click

from custodes.errors import UsageError
from custodes.ledger.instance import Instance
from custodes.ledger.publish import export_tiles
from custodes.ledger.reader import LogReader
from custodes.records.jsonl import canonical_entries
from custodes.tlog import parse_checkpoint, parse_note

__all__ = ["init_cmd", "log_group"]

PAUSE_ENV = "CUSTODES_FAULT_PAUSE_AFTER_ACK"
"""Crash tests set this to ``MARKER:K``: once the batch is durable, ``log append`` prints
K of its indexes, writes ``first count`` to the file MARKER and waits to be killed, so
that the kill lands between commit and (the rest of the) acknowledgement."""

_SERVER_HINT = "stop the server, or send the entries to it with --server URL"


def _data(ctx: click.Context) -> Path:
    data: Path = ctx.obj["data"]
    return data


@click.command("init")
@click.option(
    "--origin", help="The log's origin, a schema-less URL. Default: HOST/custodes/RANDOM."
)
@click.option(
    "--store",
    "store",
    metavar="URL",
    help="Where entries and tiles live: 'sqlite' (default, inside the data directory)"
    " or postgresql://USER:PASS@HOST/DB.",
)
@click.option(
    "--algorithm",
    type=click.Choice(["ed25519", "ml-dsa-44"]),
    default="ed25519",
    show_default=True,
    help="The log key's signature: Ed25519, or post-quantum ML-DSA-44 (checkpoints signed"
    " as ML-DSA-44 cosignatures, as C2SP tlog-checkpoint recommends).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the data directory, origin and key as JSON."
)
@click.pass_context
def init_cmd(
    ctx: click.Context, origin: str | None, store: str | None, algorithm: str, as_json: bool
) -> None:
    """Make a new instance; print the log's verifier key as the last line.

    Refuses to overwrite an existing instance.  Give the verifier key to
    anyone who will verify the log.  An ML-DSA-44 verifier key is about
    1,800 characters long; every custodes verifier accepts both kinds.
    """
    data = _data(ctx)
    inst = Instance.init(data, origin=origin, store=store, algorithm=algorithm)
    if as_json:
        click.echo(json.dumps({"data": str(data), "origin": inst.origin,
                               "algorithm": algorithm,
                               "verifier_key": inst.verifier_key}))  # fmt: skip
        return
    click.echo(f"created a custodes instance in {data}", err=True)
    click.echo(f"origin: {inst.origin}", err=True)
    click.echo(inst.verifier_key)


@click.group("log")
def log_group() -> None:
    """Append to the log, sign checkpoints, and publish tiles."""


@log_group.command("append")
@click.argument("source", type=click.File("rb"), default="-", metavar="[FILE|-]")
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Processes that canonicalise entries (default: one per core; 0 works inline).",
)
@click.option("--no-checkpoint", is_flag=True, help="Sequence only; sign a checkpoint later.")
@click.pass_context
def append_cmd(
    ctx: click.Context, source: IO[bytes], workers: int | None, no_checkpoint: bool
) -> None:
    """Append JSON Lines (one object a line) and print each entry's index.

    Each entry is stored as its RFC 8785 canonical form.  Indexes are printed
    once the whole batch is durable.  A batch with any bad line is refused
    whole: nothing of it is appended, and the error names the line.
    """
    inst = Instance.load(_data(ctx))
    with inst.open_log(hint=_SERVER_HINT) as log, _Progress("canonicalising") as bar:
        first, count = log.append(canonical_entries(source, workers=workers, progress=bar.add))
    out = sys.stdout
    acked = first
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        marker, _, k = pause.rpartition(":")
        acked = min(first + count, first + int(k))
        out.write("".join(f"{i}\n" for i in range(first, acked)))
        out.flush()
        Path(marker).write_text(f"{first} {count}\n")
        time.sleep(120)
    step = 65536
    for start in range(acked, first + count, step):
        end = min(first + count, start + step)
        out.write("\n".join(map(str, range(start, end))) + "\n")
    out.flush()
    if count and not no_checkpoint:
        with inst.open_log(hint=_SERVER_HINT) as log, _Progress("integrating") as bar:
            log.integrate(progress=bar.add)


@log_group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True, help="Print origin, size and root as JSON.")
@click.pass_context
def checkpoint_cmd(ctx: click.Context, as_json: bool) -> None:
    """Integrate pending entries and print the latest signed checkpoint."""
    inst = Instance.load(_data(ctx))
    with inst.open_log(hint=_SERVER_HINT) as log, _Progress("integrating") as bar:
        note = log.integrate(progress=bar.add)
    if as_json:
        cp = parse_checkpoint(parse_note(note).text)
        click.echo(
            json.dumps(
                {
                    "origin": cp.origin,
                    "size": cp.size,
                    "root_hash": cp.root_hash.hex(),
                    "checkpoint": note.decode(),
                }
            )
        )
    else:
        click.echo(note.decode(), nl=False)


@log_group.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
def export_cmd(ctx: click.Context, out: Path, as_json: bool) -> None:
    """Write the log as C2SP tlog-tiles into OUT, incrementally.

    Writes the tiles and entry bundles that OUT lacks, then the checkpoint
    last, so a reader of OUT never sees a checkpoint without its tiles.
    Serve OUT from any static web server or CDN.
    """
    report = _publish(
        ctx,
        "exporting",
        lambda reader, note, bar: export_tiles(reader, out, progress=bar, note=note),
    )
    _report(
        as_json,
        report,
        f"exported size {report['size']} to {out}: {report['written']} files written,"
        f" {report['skipped']} already there",
    )


@log_group.command("publish")
@click.argument("target", metavar="s3://BUCKET/PREFIX")
@click.option("--endpoint", metavar="URL", help="An S3-compatible endpoint, such as SeaweedFS's.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
def publish_cmd(ctx: click.Context, target: str, endpoint: str | None, as_json: bool) -> None:
    """Publish the log's tiles to an S3-compatible object store, incrementally.

    Any CDN or static host can then serve the bucket to verifiers, and readers
    never touch the database.  Keys come from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY.  The checkpoint is written last.
    """
    from custodes.ledger.objectstore import S3Target, publish_to_s3

    where = S3Target.parse(target, endpoint=endpoint)
    report = _publish(
        ctx,
        "publishing",
        lambda reader, note, bar: publish_to_s3(reader, where, note=note, progress=bar),
    )
    _report(
        as_json,
        report,
        f"published size {report['size']} (was {report['previous_size']}):"
        f" {report['written']} objects written",
    )


@log_group.group("witnesses")
def witnesses_group() -> None:
    """The witnesses a served log must be cosigned by before it publishes a checkpoint."""


@witnesses_group.command("add")
@click.argument("url")
@click.option("--vkey", required=True, help="The witness's cosignature verifier key.")
@click.option(
    "--quorum",
    type=click.IntRange(1),
    default=None,
    help="How many witnesses must cosign before publishing (default: all of them).",
)
@click.pass_context
def witnesses_add_cmd(ctx: click.Context, url: str, vkey: str, quorum: int | None) -> None:
    """Publish through the witness at URL (its tlog-witness base URL).

    From then on `serve` publishes a checkpoint only once the quorum has
    cosigned it; appends go on meanwhile.  Restart a running server to apply.
    """
    inst = Instance.load(_data(ctx)).add_witness(url, vkey, quorum=quorum)
    click.echo(f"{len(inst.witnesses)} witnesses, quorum {inst.witness_quorum}")


@witnesses_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the policy as JSON.")
@click.pass_context
def witnesses_list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the witnesses and the quorum."""
    inst = Instance.load(_data(ctx))
    if as_json:
        ws = [{"url": u, "vkey": k} for u, k in inst.witnesses]
        click.echo(json.dumps({"witnesses": ws, "quorum": inst.witness_quorum}))
        return
    for url, vkey in inst.witnesses:
        click.echo(f"{url}  {vkey}")
    click.echo(f"quorum: {inst.witness_quorum} of {len(inst.witnesses)}")


def _publish(
    ctx: click.Context,
    label: str,
    write: Callable[[LogReader, bytes | None, Callable[[int], None]], dict[str, int]],
) -> dict[str, int]:
    """Write the publishable checkpoint and its tiles somewhere, with a progress counter."""
    inst = Instance.load(_data(ctx))
    note = _publishable(inst)
    reader = inst.reader()
    try:
        with _Progress(label) as bar:
            return write(reader, note, bar.add)
    finally:
        reader.store.close()


def _report(as_json: bool, report: dict[str, int], text: str) -> None:
    click.echo(json.dumps(report) if as_json else text)


def _publishable(inst: Instance) -> bytes | None:
    """With witnesses, only the checkpoint they cosigned may be published; else the latest."""
    if not inst.witnesses:
        return None
    if not inst.published_path.exists():
        raise UsageError("no checkpoint has been cosigned by enough witnesses yet")
    return inst.published_path.read_bytes()


class _Progress:
    """A progress counter on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.done = 0
        self._tty = sys.stderr.isatty()
        self._shown = 0

    def add(self, n: int) -> None:
        self.done += n
        if self._tty and self.done - self._shown >= 10000:
            self._shown = self.done
            sys.stderr.write(f"\r{self.label}: {self.done:,} entries")
            sys.stderr.flush()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tty and self._shown:
            sys.stderr.write(f"\r{self.label}: {self.done:,} entries, done\n")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
