"""``custodes shards``: split a city's log into shards under one signed index."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["shards_group"]


def _set(ctx: click.Context):  # type: ignore[no-untyped-def]
    from custodes.ledger.shards import ShardSet

    return ShardSet.load(ctx.obj["data"])


@click.group("shards")
def shards_group() -> None:
    """Several logs, each with its own origin, key and sequencer, under one signed index.

    --data names the shard set's directory; each shard is an ordinary
    instance in DIR/shards/NAME, served by its own `custodes --data
    DIR/shards/NAME serve` (or all at once by `custodes shards serve`).
    """


@shards_group.command("init")
@click.option("--origin", required=True, help="The index's origin, such as city.example/log.")
@click.pass_context
def init_cmd(ctx: click.Context, origin: str) -> None:
    """Make an empty shard set; prints the index's verifier key as the last line."""
    from custodes.ledger.shards import ShardSet

    s = ShardSet.init(ctx.obj["data"], origin)
    click.echo(f"made shard set {origin} in {s.path}; its index verifier key:")
    click.echo(s.verifier_key)


@shards_group.command("add")
@click.argument("name")
@click.option("--url", help="Where the shard's log is served, such as http://host:8001/log.")
@click.option("--store", help="The shard's store URL (default: SQLite in its directory).")
@click.pass_context
def add_cmd(ctx: click.Context, name: str, url: str | None, store: str | None) -> None:
    """Add a shard (a district, or a period); prints its verifier key as the last line."""
    s = _set(ctx)
    inst = s.add(name, url=url, store=store)
    click.echo(f"added shard {name} ({inst.origin}); index version {s.version}")
    click.echo(inst.verifier_key)


@shards_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the index as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the shards in the current index."""
    s = _set(ctx)
    if as_json:
        rows = [sh.__dict__ for sh in s.shards]
        click.echo(json.dumps({"origin": s.origin, "version": s.version, "shards": rows}))
        return
    for sh in s.shards:
        click.echo(f"{sh.name}  {sh.origin}  {sh.url or '-'}")


@shards_group.command("index")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
@click.pass_context
def index_cmd(ctx: click.Context, out: Path | None) -> None:
    """Print (or write) the signed index: the note verifiers start from."""
    note = _set(ctx).index_note()
    if out is None:
        click.echo(note.decode(), nl=False)
    else:
        out.write_bytes(note)


@shards_group.command("verify")
@click.option("--index", "where", required=True, metavar="FILE|URL", help="The signed index.")
@click.option("--vkey", required=True, help="The index's verifier key.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME=DIR|URL",
    help="Where to read a shard, when not at the URL the index gives; repeat.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def verify_cmd(where: str, vkey: str, sources: tuple[str, ...], as_json: bool) -> None:
    """Verify the index's signature, then every shard it lists, trusting only --vkey.

    Exits 0 only if the index and every shard verify; a shard that cannot be
    read fails the whole city, since a shard left out is a history hidden.
    """
    import urllib.request

    from custodes.client.source import open_source
    from custodes.client.verify import verify_log
    from custodes.errors import UsageError
    from custodes.ledger.shards import open_index
    from custodes.tlog import Verifier

    if where.startswith(("http://", "https://")):
        with urllib.request.urlopen(where, timeout=30) as r:
            note = r.read()
    else:
        note = Path(where).read_bytes()
    index = open_index(note, vkey)
    given: dict[str, str] = {}
    for item in sources:
        name, sep, src = item.partition("=")
        if not sep or not src:
            raise UsageError(f"--source {item!r} is not NAME=DIR|URL")
        index.shard(name)
        given[name] = src
    results = []
    for sh in index.shards:
        src_or_none = given.get(sh.name) or sh.url
        if not src_or_none:
            raise UsageError(f"the index gives no URL for shard {sh.name}; pass --source")
        res = verify_log(open_source(src_or_none), Verifier.from_key(sh.vkey))
        results.append({"shard": sh.name, **res.as_json()})
        if not as_json:
            click.echo(f"verified shard {sh.name} ({sh.origin}): size {res.size}")
    if as_json:
        click.echo(json.dumps({"index": index.origin, "version": index.version, "shards": results}))
    else:
        click.echo(f"the index {index.origin} version {index.version}: all shards verified")


@shards_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between each shard's checkpoints while entries are pending.",
)
@click.option(
    "--public-url",
    help="The base URL readers reach this service at; the index then lists each shard"
    " at URL/shards/NAME/log (re-signed if that changes it).",
)
@click.pass_context
def serve_cmd(
    ctx: click.Context, host: str, port: int, interval: float, public_url: str | None
) -> None:
    """Serve every shard behind one address: /shards/index and /shards/NAME/... .

    Each shard runs as its own `custodes serve` process (its own sequencer) on
    a free loopback port; this process routes to them and stops them on exit.
    """
    import subprocess
    import sys

    import uvicorn

    from custodes._proc import term_with_parent
    from custodes.fleet.simulate import _free_port, _wait
    from custodes.web.shards_front import create_front

    s = _set(ctx)
    if public_url:
        base = public_url.rstrip("/")
        for sh in list(s.shards):
            want = f"{base}/shards/{sh.name}/log"
            if sh.url != want:
                s.set_url(sh.name, want)
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for sh in s.shards:
            ports[sh.name] = p = _free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "custodes",
                        "--data",
                        str(s.shard_path(sh.name)),
                        "serve",
                        "--port",
                        str(p),
                        "--interval",
                        str(interval),
                    ],
                    preexec_fn=term_with_parent,  # no orphans if this process is killed
                )
            )
        for p in ports.values():
            _wait(p)
        click.echo(
            f"custodes: serving {len(ports)} shards of {s.origin} on http://{host}:{port}"
            "/shards/  (Ctrl-C stops)",
            err=True,
        )
        uvicorn.run(create_front(s, ports), host=host, port=port, log_level="warning")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
