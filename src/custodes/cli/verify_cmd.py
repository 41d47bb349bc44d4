"""``custodes verify``: check a published log yourself, trusting no one."""

from __future__ import annotations

import json
from pathlib import Path

import click

from custodes.client.source import open_source
from custodes.client.verify import WitnessPolicy, verify_log
from custodes.tlog import CosignatureVerifier, Verifier

__all__ = ["verify_cmd"]


@click.command("verify")
@click.option("--vkey", required=True, help="The log's verifier key (name+id+base64).")
@click.option(
    "--source",
    required=True,
    metavar="DIR|URL",
    help="A tlog-tiles directory (from 'log export') or a base URL such as"
    " http://127.0.0.1:8000/log.",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file remembering the last checkpoint verified; a fork or rollback against it fails.",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="A witness's cosignature verifier key; repeat for each witness.",
)
@click.option(
    "--quorum",
    type=click.IntRange(1),
    default=None,
    help="How many of the --witness keys must have cosigned (default: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(
    vkey: str,
    source: str,
    state: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    as_json: bool,
) -> None:
    """Verify a log from its tiles: signature, every tile, every entry, the root.

    Exits 0 only if everything verifies.  With --state, also checks that the
    log is consistent with the checkpoint verified last time, and prints both
    checkpoints as evidence if it is not.
    """
    verifier = Verifier.from_key(vkey)
    policy = None
    if witness_keys:
        keys = tuple(CosignatureVerifier.from_key(k) for k in witness_keys)
        policy = WitnessPolicy(witnesses=keys, quorum=quorum or len(keys))
    result = verify_log(open_source(source), verifier, state=state, witnesses=policy)
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(
        f"verified {result.origin}: size {result.size}, root {result.root_hash.hex()}"
        f" ({result.entries:,} {'entry' if result.entries == 1 else 'entries'},"
        f" {result.tiles:,} {'tile' if result.tiles == 1 else 'tiles'} in {result.seconds:.2f} s)"
    )
    if result.previous_size is not None:
        click.echo(f"consistent with the checkpoint of size {result.previous_size} seen before")
