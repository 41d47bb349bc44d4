"""``custodes users``: the people who may use the access gateway, and their roles."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from custodes.errors import UsageError

__all__ = ["users_group"]

_HINT = "a server holds it: send this to it with --server URL --token ADMIN_TOKEN"


def _server_opts(fn: Any) -> Any:
    fn = click.option(
        "--token",
        envvar="CUSTODES_TOKEN",
        help="An admin's token (from 'users add NAME --role admin'); or $CUSTODES_TOKEN.",
    )(fn)
    return click.option(
        "--server",
        metavar="URL",
        envvar="CUSTODES_SERVER",
        help="Send this to a running server (http://HOST:PORT) instead of the data directory.",
    )(fn)


def _remote(server: str, method: str, path: str, token: str | None, body: Any = None) -> Any:
    from custodes.cli.fleet_cmd import _remote as remote

    if not token:
        raise UsageError("--server needs an admin token: give --token or set CUSTODES_TOKEN")
    raw = json.dumps(body).encode() if body is not None else None
    return remote(server, method, path, token=token, body=raw)


def _scope_text(scope: Any) -> str:
    if scope == "all":
        return "the whole network"
    return ",".join(
        [f"district:{d}" for d in scope["districts"]] + [f"group:{g}" for g in scope["groups"]]
    )


def _check_local_scope(inst: Any, scope: Any) -> None:
    """Refuse a scope naming a district or group this instance's log does not know."""
    if scope is None or scope.whole_network:
        return
    from custodes.access.users import check_scope, scope_names
    from custodes.reports.replay import entries_from_log, replay

    reader = inst.reader()
    try:
        state = replay(entries_from_log(reader, 0, reader.store.next_index()))
    finally:
        reader.store.close()
    check_scope(scope, *scope_names(state))


def _describe(u: dict[str, Any]) -> str:
    state = "" if u["active"] else " (revoked)"
    return f"{u['name']}\t{u['role']}\t{_scope_text(u['scope'])}\t{u['pseudonym']}{state}"


@click.group("users")
def users_group() -> None:
    """Users of the access gateway: add, list, change and revoke them, set passwords.

    Roles: operator, investigator, approver, judge, auditor, admin.  The public
    log shows each user only as a pseudonym (u- and 16 hex digits, a keyed
    hash of the account).  Adding and revoking are logged first.
    """


@users_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["operator", "investigator", "approver", "judge", "auditor", "admin"]),
    help="What the user may do.",
)
@click.option(
    "--scope",
    default=None,
    metavar="district:ID,group:ID,...",
    help="Districts and camera groups the role covers (ones the log or the registry"
    " knows); without it, the whole network.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a web login password (at least 10 characters) from the first line of"
    " standard input.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the user and token as JSON.")
@_server_opts
@click.pass_context
def add_cmd(
    ctx: click.Context,
    name: str,
    role: str,
    scope: str | None,
    password_stdin: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Add a user; prints the user's API token as the last line.

    The token is shown only now: custodes keeps only its hash.  The first
    admin is added with --data before the server starts; later users can be
    added through a running server with --server URL --token ADMIN_TOKEN.
    """
    from custodes.access.identity import Scope

    parsed = Scope.parse(scope)
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin read an empty password")
        from custodes.access.users import check_password_length

        check_password_length(password)
    if server:
        body = {"name": name, "role": role, "scope": str(parsed), "password": password}
        out = _remote(server, "POST", "/admin/users", token, body)
    else:
        from custodes.access.identity import Identities
        from custodes.access.users import add_user
        from custodes.ledger.instance import Instance

        inst = Instance.load(ctx.obj["data"])
        _check_local_scope(inst, parsed)
        with inst.open_log(hint=_HINT) as log, Identities(inst.path) as ids:
            user, tok = add_user(log, ids, name, role, parsed, password)
            log.integrate()
        out = {**user.to_json(), "token": tok}
    if as_json:
        click.echo(json.dumps(out))
        return
    # The token alone on stdout (for scripts: TOKEN=$(custodes users add ...)); prose on stderr.
    click.echo(f"added {out['name']} as {out['role']} for {_scope_text(out['scope'])},", err=True)
    click.echo(
        f"shown in the public log as {out['pseudonym']}; the token follows (shown once):", err=True
    )
    click.echo(out["token"])


@users_group.command("revoke")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the revoked user as JSON.")
@_server_opts
@click.pass_context
def revoke_cmd(
    ctx: click.Context, name: str, as_json: bool, server: str | None, token: str | None
) -> None:
    """Revoke a user: their token, password and sessions stop working at once."""
    if server:
        out = _remote(server, "POST", f"/admin/users/{name}/revoke", token, {})
    else:
        from custodes.access.identity import Identities
        from custodes.access.users import revoke_user
        from custodes.ledger.instance import Instance

        inst = Instance.load(ctx.obj["data"])
        with inst.open_log(hint=_HINT) as log, Identities(inst.path) as ids:
            user = revoke_user(log, ids, name)
            log.integrate()
        out = user.to_json()
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"revoked {out['name']} ({out['role']}, {out['pseudonym']})")


@users_group.command("change")
@click.argument("name")
@click.option("--role", default=None, help="The new role (kept if omitted).")
@click.option(
    "--scope",
    default=None,
    help="The new scope: district:ID,group:ID,... (ones that exist) or 'all'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the changed user as JSON.")
@_server_opts
@click.pass_context
def change_cmd(
    ctx: click.Context,
    name: str,
    role: str | None,
    scope: str | None,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Change a user's role or scope: logged (user.changed) before it takes effect.

    The pseudonym stays the same, so the public log shows that the same person's
    role or scope changed; their sessions end.
    """
    from custodes.access.identity import Scope

    if role is None and scope is None:
        raise UsageError("say what changes: --role, --scope or both")
    parsed = Scope.parse(scope) if scope is not None else None
    if server:
        body = {"role": role, "scope": str(parsed) if parsed is not None else None}
        out = _remote(server, "POST", f"/admin/users/{name}/change", token, body)
    else:
        from custodes.access.identity import Identities
        from custodes.access.users import change_user
        from custodes.ledger.instance import Instance

        inst = Instance.load(ctx.obj["data"])
        _check_local_scope(inst, parsed)
        with inst.open_log(hint=_HINT) as log, Identities(inst.path) as ids:
            user = change_user(log, ids, name, role, parsed)
            log.integrate()
        out = user.to_json()
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"changed {out['name']}: now {out['role']} for {_scope_text(out['scope'])}")


@users_group.command("password")
@click.argument("name")
@click.pass_context
def password_cmd(ctx: click.Context, name: str) -> None:
    """Set a user's web login password (at least 10 characters), read from standard input.

    The user's open web sessions end.  Only the argon2 hash is kept.  This
    changes the private store only (nothing public happens), so it works
    while the server runs.
    """
    from custodes.access.identity import Identities
    from custodes.access.users import check_password_length, set_password
    from custodes.ledger.instance import Instance

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("no password was given on standard input")
    check_password_length(password)
    inst = Instance.load(Path(ctx.obj["data"]))
    with Identities(inst.path) as ids:
        set_password(ids, name, password)
    click.echo(f"set the password of {name}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@_server_opts
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool, server: str | None, token: str | None) -> None:
    """List users: name, role, scope, pseudonym, and whether revoked."""
    if server:
        users = _remote(server, "GET", "/admin/users", token)["users"]
    else:
        from custodes.access.identity import Identities
        from custodes.ledger.instance import Instance

        inst = Instance.load(Path(ctx.obj["data"]))
        with Identities(inst.path) as ids:
            users = [u.to_json() for u in ids.users()]
    if as_json:
        click.echo(json.dumps(users))
        return
    for u in users:
        click.echo(_describe(u))
