"""``custodes witness ...``: run an independent witness (C2SP tlog-witness)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import click

from custodes.witness import add_log, init_witness, open_witness

__all__ = ["witness_group"]

FAULT_ENV = "CUSTODES_WITNESS_FAULT"
"""Test hook: ``crash-before-commit[:N]`` kills the server (exit 99) between its check and
the commit of the Nth transaction (default the first)."""


def _data(ctx: click.Context) -> Path:
    data: Path = ctx.obj["data"]
    return data


@click.group("witness")
def witness_group() -> None:
    """Cosign checkpoints of logs you witness, never two inconsistent ones."""


@witness_group.command("init")
@click.option("--name", required=True, help="The witness's key name, e.g. witness.example.org/w1.")
@click.option(
    "--algorithm",
    type=click.Choice(["ed25519", "ml-dsa-44"]),
    default="ed25519",
    show_default=True,
    help="The cosignature type (tlog-cosignature).",
)
@click.pass_context
def init_cmd(ctx: click.Context, name: str, algorithm: str) -> None:
    """Make a witness; print its cosignature verifier key as the last line.

    Refuses to overwrite an existing witness.  Give the verifier key to the
    logs you witness and to everyone who verifies them.
    """
    data = _data(ctx)
    vkey = init_witness(data, name, algorithm)
    click.echo(f"created a witness in {data}", err=True)
    click.echo(vkey)


@witness_group.command("add-log")
@click.option("--origin", required=True, help="The log's origin (its checkpoints' first line).")
@click.option(
    "--vkey", required=True, multiple=True, help="The log's verifier key (repeat for several)."
)
@click.pass_context
def add_log_cmd(ctx: click.Context, origin: str, vkey: tuple[str, ...]) -> None:
    """Start witnessing a log, or trust another key for it.

    The key's name need not be the origin.
    """
    add_log(_data(ctx), origin, vkey)
    click.echo(f"witnessing {origin}")


@witness_group.command("logs")
@click.option("--json", "as_json", is_flag=True, help="Print the logs as JSON lines.")
@click.pass_context
def logs_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the witnessed logs and the latest size cosigned for each."""
    witness, store = open_witness(_data(ctx))
    try:
        states = store.logs()
    finally:
        store.close()
    for s in states:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "origin": s.origin,
                        "vkey": s.vkeys[0],
                        "vkeys": list(s.vkeys),
                        "size": s.size,
                        "root": s.root.hex(),
                    }
                )
            )
        else:
            click.echo(f"{s.origin}\t{s.size}\t{s.root.hex()}")


def _fault_hook() -> Callable[[str], None] | None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    kind, _, nth = spec.partition(":")
    if kind != "crash-before-commit":
        raise click.UsageError(f"{FAULT_ENV} must be crash-before-commit[:N], not {spec!r}.")
    left = [int(nth) if nth else 1]

    def fault(point: str) -> None:
        left[0] -= 1
        if left[0] <= 0:
            os._exit(99)

    return fault


@witness_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=7380, show_default=True)
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int) -> None:
    """Answer POST /add-checkpoint (C2SP tlog-witness) until interrupted."""
    from custodes.witness.server import serve

    fault = _fault_hook()
    witness, store = open_witness(_data(ctx), fault=fault)

    def ready(h: str, p: int) -> None:
        click.echo(f"witness {witness.signer.name} listening on http://{h}:{p}", err=True)

    try:
        serve(witness, store, host=host, port=port, ready=ready)
    finally:
        store.close()
