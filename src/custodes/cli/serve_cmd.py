"""``custodes serve``: the log (and, as they land, the dashboard) over HTTP."""

from __future__ import annotations

from pathlib import Path

import click

from custodes.errors import UsageError
from custodes.ledger.instance import Instance

__all__ = ["serve_cmd"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between checkpoints while entries are pending.",
)
@click.option(
    "--tiles",
    metavar="URL",
    default=None,
    help="The map's base layer: an XYZ tile URL such as https://tile.example.org/{z}/{x}/{y}.png"
    " (else tile_url in DIR/custodes.json; else none, and nothing leaves this server).",
)
@click.option(
    "--tiles-attribution",
    metavar="TEXT",
    default=None,
    help="The credit the tile source asks for, shown on the map (such as"
    " '© OpenStreetMap contributors').",
)
@click.pass_context
def serve_cmd(
    ctx: click.Context,
    host: str,
    port: int,
    interval: float,
    tiles: str | None,
    tiles_attribution: str | None,
) -> None:
    """Serve the log: tlog-tiles at /log/, JSON proofs, and the web pages.

    The server becomes the data directory's only writer until it stops.
    """
    import os

    import uvicorn

    from custodes.web.app import Settings, create_app
    from custodes.web.service import LedgerService

    data: Path = ctx.obj["data"]
    if tiles_attribution is not None and tiles is None:
        raise click.UsageError("--tiles-attribution needs --tiles URL")
    if tiles is not None:
        from custodes.web.routes.dashboard import check_tile_url

        # The map and its content policy read the tile source from the environment first.
        os.environ["CUSTODES_TILE_URL"] = check_tile_url(tiles)
        os.environ["CUSTODES_TILE_ATTRIBUTION"] = tiles_attribution or ""
    inst = Instance.load(data)
    _port_free(host, port)
    url = f"http://{host}:{port}"
    service = LedgerService(inst, interval=interval)  # fails here, in one sentence, if busy
    app = create_app(
        Settings(data=data, integrate_interval=interval, public_url=url), service=service
    )
    click.echo(f"custodes: serving {inst.origin} on {url}  (Ctrl-C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _port_free(host: str, port: int) -> None:
    """Refuse, in one sentence, a port another program is listening on."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise UsageError(f"cannot serve on {host}: no such host or address") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is already in use by another program;"
                    " stop it or choose another port with --port"
                ) from None
            raise UsageError(f"cannot serve on {host} port {port}: {err.strerror}") from None
