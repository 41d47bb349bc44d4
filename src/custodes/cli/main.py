"""The ``custodes`` command.

Every command prints its result on stdout (``--json`` where a script wants
it) and its errors on stderr as one sentence, with a non-zero exit code:
1 for a refusal or failure, 2 for a usage mistake.  Progress bars go to
stderr and only appear on a terminal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from custodes import __version__
from custodes.errors import CustodesError, InconsistentLogError

__all__ = ["cli", "main"]

DEFAULT_DATA = "custodes-data"


class _Group(click.Group):
    """Turns every custodes error into one sentence on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CustodesError as err:
            click.echo(f"custodes: {err}", err=True)
            if isinstance(err, InconsistentLogError):
                click.echo(err.evidence(), err=True)
            ctx.exit(1)
        except OSError as err:
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            click.echo(f"custodes: {err.strerror or err}{where}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("custodes: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("CUSTODES_DATA", DEFAULT_DATA),
    show_default=f"$CUSTODES_DATA or ./{DEFAULT_DATA}",
    help="The instance's data directory.",
)
@click.version_option(__version__, prog_name="custodes")
@click.pass_context
def cli(ctx: click.Context, data: Path) -> None:
    """custodes: an oversight ledger for city camera networks.

    One append-only Merkle log, in the C2SP formats, records what the camera
    network is, when each camera was recording, and who looked at what footage
    and why.  Anyone can verify it with `custodes verify` or any tlog client.
    """
    os.umask(0o077)  # the data directory is its owner's alone: files 0600, folders 0700
    ctx.obj = {"data": data}


def _register() -> None:
    """Add every command group.  Each module imports its heavy libraries lazily."""
    from custodes.cli.access_cmd import access_group
    from custodes.cli.agent_cmd import agent_cmd
    from custodes.cli.custody_cmd import custodian_group, custody_group
    from custodes.cli.demo_cmd import demo_city_cmd, demo_feed_cmd
    from custodes.cli.fleet_cmd import agents_group, cameras_group, fleet_group, simulate_cmd
    from custodes.cli.geo_cmd import geo_group
    from custodes.cli.log_cmd import init_cmd, log_group
    from custodes.cli.mirror_cmd import mirror_group
    from custodes.cli.monitor_cmd import monitor_cmd
    from custodes.cli.redact_cmd import redact_cmd, verify_export_cmd
    from custodes.cli.report_cmd import audit_cmd, report_cmd
    from custodes.cli.serve_cmd import serve_cmd
    from custodes.cli.shards_cmd import shards_group
    from custodes.cli.users_cmd import users_group
    from custodes.cli.verify_cmd import verify_cmd
    from custodes.cli.witness_cmd import witness_group

    for command in (
        init_cmd,
        log_group,
        verify_cmd,
        serve_cmd,
        cameras_group,
        agents_group,
        agent_cmd,
        fleet_group,
        simulate_cmd,
        redact_cmd,
        verify_export_cmd,
        witness_group,
        monitor_cmd,
        access_group,
        geo_group,
        report_cmd,
        audit_cmd,
        users_group,
        shards_group,
        demo_city_cmd,
        demo_feed_cmd,
        custodian_group,
        custody_group,
        mirror_group,
    ):
        cli.add_command(command)


_register()


def main() -> None:
    cli.main(prog_name="custodes")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
