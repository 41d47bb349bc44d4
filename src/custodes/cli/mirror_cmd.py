"""``custodes mirror``: keep a verified, cosigned copy of a log and serve it (tlog-mirror)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from custodes.errors import UsageError

__all__ = ["mirror_group"]


@click.group("mirror")
def mirror_group() -> None:
    """A mirror: a full copy of a log, verified as it is copied, served and cosigned.

    Verifiers can read a mirror when the operator's server is down or cut off.
    """


def _signer_key(data: Path, given: str | None, name: str) -> str:
    """The mirror's cosigner key: given (a key or a file holding one), or DIR/mirror.key."""
    from custodes.tlog import generate_cosigner_key

    if given:
        path = Path(given)
        return path.read_text().strip() if path.is_file() else given.strip()
    stored = data / "mirror.key"
    if stored.exists():
        return stored.read_text().strip()
    skey, _ = generate_cosigner_key(name)
    fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(skey + "\n")
    return skey


@mirror_group.command("serve")
@click.option("--log", "log_url", required=True, metavar="URL", help="The origin log's base URL,"
              " as for verify --source (e.g. http://127.0.0.1:8000/log).")  # fmt: skip
@click.option("--log-vkey", required=True, metavar="VKEY", help="The origin log's verifier key.")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The mirror's own directory (created if need be).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8100, show_default=True)
@click.option(
    "--witness-key",
    metavar="SKEY|FILE",
    help="The mirror's cosigner signing key, or a file holding it;"
    " default: DIR/mirror.key, made on first use.",
)
@click.option(
    "--name",
    default="custodes-mirror",
    show_default=True,
    help="The cosigner name of a key made on first use.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.01),
    default=1.0,
    show_default=True,
    help="Seconds between looks at the origin's checkpoint.",
)
def serve_cmd(
    log_url: str,
    log_vkey: str,
    data: Path,
    host: str,
    port: int,
    witness_key: str | None,
    name: str,
    interval: float,
) -> None:
    """Follow the log at --log, verify and copy it, and serve the copy read-only.

    The copy is served as tlog-tiles at the root (checkpoint, tile/...) and at
    /<origin hash>/ as tlog-mirror says; its checkpoint carries the mirror's
    cosignature, made only once every entry it covers is verified and stored.
    It keeps serving while the origin is down, and takes pushes from anyone
    holding the log (POST /add-checkpoint and /add-entries, tlog-mirror; see
    'custodes mirror push'), so it goes on growing and cosigning then too.
    Prints the mirror's cosigner verifier key, for verify --witness.
    """
    import logging

    from custodes.mirror.follow import Mirror
    from custodes.mirror.server import mirror_dir, serve
    from custodes.tlog import CosignatureSigner, Verifier

    verifier = Verifier.from_key(log_vkey)
    data.mkdir(parents=True, exist_ok=True)
    signer = CosignatureSigner.from_key(_signer_key(data, witness_key, name))
    if not log_url.startswith(("http://", "https://")):
        raise UsageError(f"--log must be an http(s) URL, not {log_url!r}")
    mirror = Mirror(mirror_dir(data, verifier.name), verifier, signer)
    logging.basicConfig(level=logging.INFO, format="custodes mirror: %(message)s")
    click.echo(f"mirroring {verifier.name} from {log_url}; size {mirror.size} held")
    click.echo(f"mirror cosigner key: {signer.verifier_key}")

    def ready(bound: str, bound_port: int) -> None:
        click.echo(f"serving the mirror on http://{bound}:{bound_port}", err=False)

    serve(
        mirror,
        log_url,
        verifier.name,
        host=host,
        port=port,
        interval_s=interval,
        ready=ready,
    )


@mirror_group.command("push")
@click.option(
    "--mirror",
    "mirror_url",
    required=True,
    metavar="URL",
    help="The mirror's submission prefix, e.g. http://127.0.0.1:8100.",
)
@click.option(
    "--source",
    required=True,
    metavar="DIR|URL",
    help="A copy of the log as tlog-tiles: a directory (from 'log export') or a base URL.",
)
@click.option("--log-vkey", required=True, metavar="VKEY", help="The log's verifier key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def push_cmd(mirror_url: str, source: str, log_vkey: str, as_json: bool) -> None:
    """Bring a mirror up to a copy of the log (tlog-mirror add-checkpoint, add-entries).

    Anyone holding the log's tiles can update a mirror this way, also while
    the operator's own server is down: the mirror checks the log's signature
    and each entry package's subtree consistency proof before storing it,
    and answers with its cosignature, which is printed.
    """
    import json

    from custodes.client.source import open_source
    from custodes.mirror.client import push
    from custodes.tlog import Verifier

    if not mirror_url.startswith(("http://", "https://")):
        raise UsageError(f"--mirror must be an http(s) URL, not {mirror_url!r}")
    result = push(mirror_url, open_source(source), Verifier.from_key(log_vkey))
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(
        f"pushed {result.origin} to {mirror_url}: size {result.mirror_size_before} -> "
        f"{result.size} in {result.requests} requests; the mirror cosigned:",
        err=True,
    )
    click.echo(result.cosignature.decode("utf-8"), nl=False)
