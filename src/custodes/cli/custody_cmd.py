"""``custodes custodian ...`` (a custodian's side) and ``custodes custody ...`` (the operator's)."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from custodes.errors import UsageError

__all__ = ["custodian_group", "custody_group"]


def _data(ctx: click.Context) -> Path:
    data: Path = ctx.obj["data"]
    return data


def _http_json(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read())
        except ValueError:
            return err.code, {"error": f"HTTP {err.code}"}
    except OSError as err:
        raise UsageError(f"cannot reach {url}: {err}") from None


@click.group("custodian")
def custodian_group() -> None:
    """Run a custodian: hold shares of the epoch keys, answer only for logged releases."""


@custodian_group.command("init")
@click.option("--name", required=True, help="The custodian's name, such as court-registry.example.")
@click.pass_context
def custodian_init_cmd(ctx: click.Context, name: str) -> None:
    """Make a custodian in the data directory; print its verifier key as the last line."""
    from custodes.custody.daemon.custodian import CustodianDir

    c = CustodianDir.init(_data(ctx), name)
    click.echo(f"created custodian {name} in {c.path}", err=True)
    click.echo(c.vkey)


@custodian_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(1, 65535))
@click.option("--log", "log_url", required=True, metavar="URL", help="The log server's base URL.")
@click.option("--log-vkey", required=True, help="The log's verifier key.")
@click.option("--witness", "witness_keys", multiple=True, metavar="VKEY", help="Repeat for each.")
@click.option("--quorum", type=click.IntRange(1), default=None, help="Default: all witnesses.")
@click.option("--url", default=None, help="Where others reach this custodian (default: host:port).")
@click.option(
    "--interval", type=click.FloatRange(0.05), default=1.0, show_default=True,
    help="Seconds between rounds of following the log.",
)  # fmt: skip
@click.option(
    "--ahead", type=click.IntRange(0, 30), default=1, show_default=True,
    help="How many epochs after today to keep ready.",
)  # fmt: skip
@click.pass_context
def custodian_serve_cmd(
    ctx: click.Context,
    host: str,
    port: int,
    log_url: str,
    log_vkey: str,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    url: str | None,
    interval: float,
    ahead: int,
) -> None:
    """Follow the log, take part in each epoch's DKG, and answer for logged releases.

    POST /partials opens a witnessed release's segments; POST /details-partials a request's
    sealed details, for a logged read or release.
    """
    import uvicorn

    from custodes.client.verify import WitnessPolicy
    from custodes.custody.daemon.custodian import CustodianDir
    from custodes.custody.daemon.service import Follower, create_custodian_app
    from custodes.tlog import CosignatureVerifier, Verifier

    me = CustodianDir.load(_data(ctx))
    policy = None
    if witness_keys:
        keys = tuple(CosignatureVerifier.from_key(k) for k in witness_keys)
        policy = WitnessPolicy(witnesses=keys, quorum=quorum or len(keys))
    follower = Follower(
        me=me, log_url=log_url, verifier=Verifier.from_key(log_vkey), witnesses=policy, ahead=ahead
    )
    own = url or f"http://{host}:{port}"
    app = create_custodian_app(follower, url=own, interval=interval)
    logging.basicConfig(level=logging.WARNING, format="custodian: %(message)s")
    click.echo(f"custodes: custodian {me.name} on {own}, following {log_url}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@custodian_group.command("shred")
@click.option("--before", required=True, metavar="DATE", help="YYYY-MM-DD: epochs ending by then.")
@click.option("--log", "log_url", required=True, metavar="URL", help="The log server's base URL.")
@click.pass_context
def custodian_shred_cmd(ctx: click.Context, before: str, log_url: str) -> None:
    """Destroy this custodian's shares of every epoch ending before DATE; log that it did."""
    from custodes.custody.daemon.custodian import CustodianDir
    from custodes.custody.daemon.entries import epoch_bounds, sign_entry
    from custodes.custody.errors import CustodyFormatError

    try:
        epoch_bounds(before)
    except CustodyFormatError as exc:
        raise UsageError(str(exc)) from None
    me = CustodianDir.load(_data(ctx))
    gone = me.shred_before(before)
    if not gone:
        click.echo("no epoch ends before that date; nothing shredded", err=True)
        return
    entry = sign_entry({"type": "custody.shredded", "epochs": gone}, me.signer)
    status, out = _http_json("POST", log_url.rstrip("/") + "/custody/entries", entry)
    if status != 200:
        raise UsageError(
            f"shredded {len(gone)} epochs, but the log refused the statement: {out.get('error')}"
            "; run the command again to log it"
        )
    click.echo(f"shredded epochs {', '.join(gone)}; logged at index {out['index']}", err=True)
    click.echo(json.dumps({"shredded": gone, "index": out["index"]}))


@custodian_group.command("sign-set")
@click.argument("body", type=click.File("rb"))
@click.pass_context
def custodian_sign_set_cmd(ctx: click.Context, body: Any) -> None:
    """Sign a proposed custodian set (from custody init --propose), if this custodian agrees.

    Shows the set on stderr and prints the signature for custody init --signature.  This
    is the custodian's own decision: nothing signs a set for it, since a set with the
    operator's own keys in it would let the operator open footage.
    """
    from custodes.custody.daemon.custodian import CustodianDir
    from custodes.custody.daemon.entries import CustodianSet, sign_set

    me = CustodianDir.load(_data(ctx))
    obj = json.loads(body.read())
    cset = CustodianSet.from_body(obj)
    click.echo(f"custodian set {cset.number}: {cset.threshold} of {cset.n}", err=True)
    for j, c in enumerate(cset.custodians, 1):
        click.echo(f"  {j}. {c.name}  {c.url}", err=True)
    mine = cset.by_name(me.name)
    if mine is not None and (mine.vkey != me.vkey or mine.key != me.state.encryption_key.public):
        raise UsageError("the set names this custodian with keys that are not its own")
    click.echo(json.dumps(sign_set(obj, me.signer)))


@click.group("custody")
def custody_group() -> None:
    """The custodian set and the epochs, on the operator's side."""


def _read_log(ctx: click.Context, server: str | None) -> Any:
    from custodes.custody.daemon.ledger import CustodyLog

    custody = CustodyLog()
    if server:
        from custodes.client.source import HttpSource
        from custodes.reports.audit import tile_log_source

        source = HttpSource(server.rstrip("/") + "/log")
        from custodes.tlog import parse_checkpoint, parse_note

        size = parse_checkpoint(parse_note(source.fetch("checkpoint")).text).size
        i = 0
        for bundle in tile_log_source(source).bundles(size):
            for e in bundle:
                custody.feed_raw(i, e)
                i += 1
        return custody
    from custodes.ledger.instance import Instance

    reader = Instance.load(_data(ctx)).reader()
    try:
        end = reader.store.next_index()
        for start in range(0, end, 4096):
            for i, e in enumerate(reader.store.read_entries(start, min(end, start + 4096)), start):
                custody.feed_raw(i, e)
    finally:
        reader.store.close()
    return custody


@custody_group.command("init")
@click.option("--threshold", required=True, type=click.IntRange(1), help="T: answers needed.")
@click.option(
    "--custodian", "custodians", multiple=True, required=True, metavar="VKEY@URL",
    help="A custodian's verifier key and base URL; repeat for each, in order.",
)  # fmt: skip
@click.option("--server", metavar="URL", help="The running log server (else the local log).")
@click.option(
    "--dkg-deadline", type=click.IntRange(1), default=300, show_default=True,
    help="Seconds each DKG phase waits for a custodian that does not answer.",
)  # fmt: skip
@click.option(
    "--signature", "signatures", multiple=True, metavar="JSON",
    help="A current custodian's signature of this change (custodian sign-set).",
)  # fmt: skip
@click.option("--propose", is_flag=True, help="Print the unsigned set and stop.")
@click.option("--time", "time_text", default=None, help="The set's time (with --signature).")
@click.pass_context
def custody_init_cmd(
    ctx: click.Context,
    threshold: int,
    custodians: tuple[str, ...],
    server: str | None,
    dkg_deadline: int,
    signatures: tuple[str, ...],
    propose: bool,
    time_text: str | None,
) -> None:
    """Log the custodian set: each custodian's keys are fetched from its GET /key.

    Run it with --propose first, and give the printed set to the custodians: each decides
    for itself and, if it agrees, runs `custodian sign-set` and sends back the signature.
    Then run it again with --time (the proposal's) and one --signature for each.  The first
    set needs the signature of every custodian it names; a change, of the current
    threshold of current custodians.
    """
    from custodes.custody.daemon.entries import (
        Custodian,
        CustodianSet,
        accept_set,
        format_ms,
        now_ms,
    )
    from custodes.custody.group import Point, b64decode

    if threshold > len(custodians):
        raise UsageError(f"a threshold of {threshold} needs at least {threshold} custodians")
    members = []
    for spec in custodians:
        vkey, sep, url = spec.partition("@")
        if not sep:
            raise UsageError(f"{spec!r}: expected VKEY@URL")
        status, key = _http_json("GET", url.rstrip("/") + "/key")
        if status != 200 or key.get("vkey") != vkey:
            raise UsageError(f"the custodian at {url} does not answer with the key {vkey}")
        members.append(
            Custodian(key["name"], vkey, url, Point.decode(b64decode(key["key"], 32, what="key")))
        )
    current = _read_log(ctx, server).current
    number = 1 if current is None else current.number + 1
    cset = CustodianSet(number, threshold, dkg_deadline, tuple(members))
    body: dict[str, Any] = cset.body(time_text or format_ms(now_ms()))
    if propose:
        click.echo(json.dumps(body))
        return
    sigs = [json.loads(s) for s in signatures]
    body["signatures"] = sigs
    accept_set(body, current)
    if server:
        status, out = _http_json("POST", server.rstrip("/") + "/custody/entries", body)
        if status != 200:
            raise UsageError(f"the log refused the custodian set: {out.get('error')}")
        index = out["index"]
    else:
        from custodes.ledger.instance import Instance
        from custodes.records.canonical import canonicalize

        inst = Instance.load(_data(ctx))
        with inst.open_log(hint="the server holds it; use --server URL") as log:
            index, _ = log.append([canonicalize(body)])
            log.integrate()
    click.echo(
        f"custodian set {number} logged at index {index}: {threshold} of {len(members)}", err=True
    )
    click.echo(json.dumps({"set": number, "index": index}))


@custody_group.command("status")
@click.option("--server", metavar="URL", help="Read the log from a server (else the local log).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def custody_status_cmd(ctx: click.Context, server: str | None, as_json: bool) -> None:
    """Show the custodians, the epochs and their state (ready, in progress, gone)."""
    status = _read_log(ctx, server).status()
    if as_json:
        click.echo(json.dumps(status, indent=1))
        return
    if not status["custody"]:
        click.echo(
            "custody is off: no custodian set is logged, footage is stored unencrypted and"
            " request details are sealed with a key kept beside access.db"
        )
        return
    s = status["set"]
    click.echo(f"custodian set {s['number']}: {s['threshold']} of {len(s['custodians'])}")
    for c in s["custodians"]:
        click.echo(f"  {c['index']}. {c['name']}  {c['url']}")
    for e in status["epochs"]:
        extra = f" (shredded by {', '.join(e['shredded_by'])})" if e["shredded_by"] else ""
        click.echo(f"epoch {e['epoch']}: {e['state']}{extra}")
    sys.stdout.flush()
