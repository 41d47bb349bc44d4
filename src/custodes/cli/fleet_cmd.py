"""``custodes cameras``, ``custodes agents`` and ``custodes fleet``: the camera network."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from custodes.errors import UsageError
from custodes.fleet.imports import IMPORT_HELP, parse_cameras, to_geojson
from custodes.fleet.model import Camera, format_time, parse_time
from custodes.fleet.ops import FleetSettings
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance
from custodes.ledger.log import Log

__all__ = ["agents_group", "cameras_group", "fleet_group", "simulate_cmd"]

_HINT = "a server holds it: send this to it with --server URL --token OPERATOR_TOKEN"
T = TypeVar("T")


def _data(ctx: click.Context) -> Path:
    data: Path = ctx.obj["data"]
    return data


@contextmanager
def _writer(ctx: click.Context) -> Iterator[tuple[Log, FleetDB]]:
    """The log and fleet.db as their only writer; integrates and signs on the way out."""
    inst = Instance.load(_data(ctx))
    with inst.open_log(hint=_HINT) as log:
        db = FleetDB.for_instance(inst.path)
        try:
            yield log, db
            log.integrate()
        finally:
            db.close()


def _write(ctx: click.Context, fn: Callable[[Log, FleetDB], T]) -> T:
    with _writer(ctx) as (log, db):
        return fn(log, db)


def _server_opts(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--token",
        envvar="CUSTODES_TOKEN",
        help="An operator token (from 'agents add NAME --role operator'); or $CUSTODES_TOKEN.",
    )(fn)
    return click.option(
        "--server",
        metavar="URL",
        envvar="CUSTODES_SERVER",
        help="Send this to a running server (http://HOST:PORT) instead of the data directory.",
    )(fn)


def _remote(
    server: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
) -> Any:
    """One request to a running server; its JSON answer, or a one-sentence error."""
    headers = {"User-Agent": "custodes-cli", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = server.rstrip("/") + path
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            msg = json.loads(err.read()).get("error") or f"HTTP {err.code}"
        except ValueError:
            msg = f"HTTP {err.code}"
        if isinstance(msg, list):  # a validation error from FastAPI
            msg = "; ".join(str(m.get("msg", m)) for m in msg)
        raise UsageError(f"{server} refused: {msg}") from None
    except (urllib.error.URLError, OSError) as err:
        raise UsageError(f"cannot reach {server}: {getattr(err, 'reason', err)}") from None


def _time(value: str, what: str) -> int:
    try:
        return parse_time(value, what)
    except Exception as err:
        raise click.BadParameter(str(err)) from None


# -- cameras -----------------------------------------------------------------------------


@click.group("cameras")
def cameras_group() -> None:
    """The camera registry: import, list, export and retire cameras.

    Every registration, change and retirement is a log entry.
    """


@cameras_group.command("import", help=IMPORT_HELP)
@click.argument("file", type=click.File("rb"))
@click.option(
    "--retire-missing", is_flag=True, help="Retire registered cameras that are not in FILE."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_server_opts
@click.pass_context
def import_cmd(
    ctx: click.Context,
    file: Any,
    retire_missing: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    from custodes.fleet.ops import import_cameras

    raw = file.read()
    parsed = parse_cameras(raw)
    if not parsed.cameras:
        for sk in parsed.skipped[:20]:
            click.echo(f"skipped {sk.element}: {sk.reason}", err=True)
        total = len(parsed.skipped)
        raise UsageError(
            f"nothing was imported: all {total} elements were skipped"
            if total
            else "nothing was imported: the file holds no cameras"
        )
    if server:
        query = "?retire_missing=true" if retire_missing else ""
        report = _remote(server, "POST", "/fleet/cameras/import" + query, token=token, body=raw)
    else:
        report = _write(
            ctx,
            lambda log, db: import_cameras(log, db, parsed.cameras, retire_missing=retire_missing),
        )
        report["skipped"] = [{"element": s.element, "reason": s.reason} for s in parsed.skipped]
        report["warnings"] = [{"element": s.element, "reason": s.reason} for s in parsed.warnings]
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"registered {len(report['registered'])}, changed {len(report['changed'])},"
        f" unchanged {report['unchanged']}, retired {len(report['retired'])},"
        f" skipped {len(report['skipped'])}"
    )
    for s in parsed.skipped:
        click.echo(f"skipped {s.element}: {s.reason}")
    for s in parsed.warnings:
        click.echo(f"note {s.element}: {s.reason}")


@cameras_group.command("list")
@click.option("--all", "include_retired", is_flag=True, help="Include retired cameras.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--server", metavar="URL", envvar="CUSTODES_SERVER", help="Ask a running server.")
@click.pass_context
def list_cmd(ctx: click.Context, include_retired: bool, as_json: bool, server: str | None) -> None:
    """List the registry: each camera with its status (unknown, up, silent)."""
    if server:
        rows = []
        out = _remote(server, "GET", "/fleet/cameras")
    else:
        db = FleetDB.for_instance(Instance.load(_data(ctx)).path, readonly=True)
        try:
            step = FleetSettings.load(_data(ctx)).interval_s * 1000
            rows = db.cameras(include_retired=include_retired, step_ms=step)
        finally:
            db.close()
        out = []
    for r in rows:
        item = dict(r["camera"])
        item["status"] = "retired" if r["retired_ms"] is not None else r["status"]
        item["seq"] = r["seq"]
        item["registered"] = format_time(r["registered_ms"])
        if r["last_heard_ms"] is not None:
            item["last_heard"] = format_time(r["last_heard_ms"])
        out.append(item)
    if as_json:
        click.echo(json.dumps(out))
        return
    for c in out:
        where = f"{c['lat']:.6f},{c['lon']:.6f}"
        click.echo(f"{c['id']:<24} {c['status']:<8} {where:<24} {c.get('name') or ''}")


@cameras_group.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--server", metavar="URL", envvar="CUSTODES_SERVER", help="Ask a running server.")
@click.pass_context
def export_cmd(ctx: click.Context, out: Path, server: str | None) -> None:
    """Write the active cameras as a GeoJSON FeatureCollection to OUT."""
    if server:
        live = ("status", "last_heard")
        rows = _remote(server, "GET", "/fleet/cameras")
        cams = [Camera.from_record({k: v for k, v in r.items() if k not in live}) for r in rows]
    else:
        db = FleetDB.for_instance(Instance.load(_data(ctx)).path, readonly=True)
        try:
            cams = [Camera.from_record(r["camera"]) for r in db.cameras()]
        finally:
            db.close()
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(to_geojson(cams), indent=1) + "\n")
    tmp.replace(out)
    click.echo(f"exported {len(cams)} cameras to {out}")


@cameras_group.command("retire")
@click.argument("ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why the cameras leave the network.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_server_opts
@click.pass_context
def retire_cmd(
    ctx: click.Context,
    ids: tuple[str, ...],
    reason: str,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Retire cameras by id; each retirement is a log entry with the reason."""
    from custodes.fleet.ops import retire_cameras

    if server:
        body = json.dumps({"cameras": list(ids), "reason": reason}).encode()
        done = _remote(server, "POST", "/fleet/cameras/retire", token=token, body=body)["retired"]
    else:
        done = _write(ctx, lambda log, db: retire_cameras(log, db, list(ids), reason))
    if as_json:
        click.echo(json.dumps({"retired": list(done), "reason": reason}))
    else:
        click.echo(f"retired {', '.join(done)}")


# -- agents ------------------------------------------------------------------------------


@click.group("agents")
def agents_group() -> None:
    """Recorder agents: the programs that send heartbeats and segment digests."""


def _binding(cameras: str | None, district: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cameras is not None:
        out["cameras"] = [c.strip() for c in cameras.split(",") if c.strip()]
    if district is not None:
        out["district"] = district
    return out


_CAMERAS_HELP = "The cameras this agent may act for: ID,ID,..."
_DISTRICT_HELP = "Or: every camera registered in this district."


@agents_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["recorder", "operator"]),
    default="recorder",
    show_default=True,
    help="recorder: heartbeats and segments; operator: also cameras and declarations.",
)
@click.option("--cameras", metavar="ID,ID,...", help=_CAMERAS_HELP)
@click.option("--district", metavar="D", help=_DISTRICT_HELP)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the agent, its role and its token as JSON."
)
@_server_opts
@click.pass_context
def agents_add_cmd(
    ctx: click.Context,
    name: str,
    role: str,
    cameras: str | None,
    district: str | None,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Register an agent; print its token as the last line.

    The token is shown once: only its SHA-256 is kept.  NAME is logged, so use
    a pseudonym (such as 'recorder-north-3'), not a person's name.  A recorder
    must be bound to its cameras (--cameras or --district); the server refuses
    its heartbeats, segments and archive files for any other camera.  With
    --server, a running server registers it (an operator token is needed).
    """
    from custodes.fleet.ops import add_agent

    bind = _binding(cameras, district)
    if server:
        body = json.dumps({"name": name, "role": role, **bind}).encode()
        rep = _remote(server, "POST", "/fleet/agents", token=token, body=body)
        agent, token = rep["agent"], rep["token"]
    else:
        agent, token = _write(ctx, lambda log, db: add_agent(log, db, name, role, **bind))
    if as_json:
        click.echo(json.dumps({"agent": agent, "name": name, "role": role, **bind,
                               "token": token}))  # fmt: skip
        return
    # The token alone on standard output (so that $(...) captures it), the prose on stderr.
    click.echo(f"{role} agent {agent} ({name}) registered; its token (shown once):", err=True)
    click.echo(token)


@agents_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the agents as JSON.")
@_server_opts
@click.pass_context
def agents_list_cmd(
    ctx: click.Context, as_json: bool, server: str | None, token: str | None
) -> None:
    """The agents: id, name, role, binding, and whether revoked."""
    if server:
        rows = _remote(server, "GET", "/fleet/agents", token=token)
    else:
        from custodes.web.routes.fleet import agent_json

        db = FleetDB.for_instance(_data(ctx), readonly=True)
        try:
            rows = [agent_json(r) for r in db.agents()]
        finally:
            db.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        where = (
            f"district {r['district']}"
            if "district" in r
            else "all cameras"
            if r["cameras"] == "all"
            else f"{len(r['cameras'])} cameras"
        )
        state = f"revoked {r['revoked']}" if r["revoked"] else "active"
        click.echo(f"{r['agent']}  {r['role']:<8} {r['name']:<24} {where:<24} {state}")


@agents_group.command("bind")
@click.argument("agent")
@click.option("--cameras", metavar="ID,ID,...", help=_CAMERAS_HELP)
@click.option("--district", metavar="D", help=_DISTRICT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the logged entry as JSON.")
@_server_opts
@click.pass_context
def agents_bind_cmd(
    ctx: click.Context,
    agent: str,
    cameras: str | None,
    district: str | None,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Change which cameras AGENT may act for (logged as agent.bound; operators only)."""
    from custodes.fleet.ops import bind_agent

    bind = _binding(cameras, district)
    if server:
        body = json.dumps(bind).encode()
        rep = _remote(server, "POST", f"/fleet/agents/{agent}/bind", token=token, body=body)
    else:
        rep = _write(ctx, lambda log, db: bind_agent(log, db, agent, **bind))
    click.echo(json.dumps(rep) if as_json else f"agent {agent} rebound (entry {rep['index']})")


@agents_group.command("revoke")
@click.argument("agent")
@click.option("--reason", required=True, help="Why (logged).")
@click.option("--json", "as_json", is_flag=True, help="Print the logged entry as JSON.")
@_server_opts
@click.pass_context
def agents_revoke_cmd(
    ctx: click.Context,
    agent: str,
    reason: str,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Revoke AGENT's token for good (logged as agent.revoked)."""
    from custodes.fleet.ops import revoke_agent

    if server:
        body = json.dumps({"reason": reason}).encode()
        rep = _remote(server, "POST", f"/fleet/agents/{agent}/revoke", token=token, body=body)
    else:
        rep = _write(ctx, lambda log, db: revoke_agent(log, db, agent, reason))
    click.echo(json.dumps(rep) if as_json else f"agent {agent} revoked (entry {rep['index']})")


# -- fleet -------------------------------------------------------------------------------


@click.group("fleet")
def fleet_group() -> None:
    """Ask when cameras were recording, check footage, and declare outages."""


@fleet_group.command("status")
@click.option("--camera", required=True, help="The camera's id.")
@click.option("--from", "from_", required=True, help="Start, RFC 3339 (2026-01-02T03:00:00Z).")
@click.option("--to", "to", required=True, help="End, RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer and its proofs as JSON.")
@click.option("--server", metavar="URL", envvar="CUSTODES_SERVER", help="Ask a running server.")
@click.pass_context
def status_cmd(
    ctx: click.Context, camera: str, from_: str, to: str, as_json: bool, server: str | None
) -> None:
    """Was CAMERA heard from, what did it record, and which outages were declared?

    Every fact comes from the log and is checked against the latest signed
    checkpoint; --json includes the proofs.
    """
    from custodes.fleet.query import camera_status

    f, t = _time(from_, "--from"), _time(to, "--to")
    if t <= f:
        raise UsageError("--to must be after --from")
    if server:
        q = urllib.parse.urlencode({"camera": camera, "from": from_, "to": to})
        rep = _remote(server, "GET", f"/fleet/status?{q}")
    else:
        rep = camera_status(_data(ctx), camera, f, t)
    if as_json:
        click.echo(json.dumps(rep))
        return
    click.echo(f"camera {camera} from {rep['from']} to {rep['to']}")
    click.echo(
        f"heard in {rep['intervals_heard']} of {rep['intervals']} intervals of"
        f" {rep['interval_s']} s ({rep['intervals_logged']} logged so far)"
    )
    for r in rep["not_heard"]:
        click.echo(f"  not heard {r['from']} .. {r['to']}")
    click.echo(f"segments: {len(rep['segments'])}")
    for s in rep["segments"]:
        mark = "verified" if s["verified"] else f"not verified: {s['why']}"
        click.echo(f"  {s['start']} .. {s['end']}  {s['sha256']}  {mark}")
    for e in rep["events"]:
        extra = f" {e['from']} .. {e['to']} ({e.get('reason')})" if "from" in e else ""
        late = " LATE" if e.get("late") else ""
        click.echo(f"  {e['logged_at']} {e['kind']}{extra}{late}")
    click.echo(f"checked against the signed checkpoint of size {rep['checkpoint_size']}")


@fleet_group.command("verify-footage")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--camera", required=True, help="The camera the footage claims to come from.")
@click.option("--start", help="The segment's start (RFC 3339), when known.")
@click.option("--json", "as_json", is_flag=True, help="Print the result and its proofs as JSON.")
@click.option("--server", metavar="URL", envvar="CUSTODES_SERVER", help="Ask a running server.")
@click.pass_context
def verify_footage_cmd(
    ctx: click.Context,
    file: Path,
    camera: str,
    start: str | None,
    as_json: bool,
    server: str | None,
) -> None:
    """Exit 0 when FILE is a segment logged for CAMERA; otherwise 1, saying what differs.

    FILE may be the recorded segment or, for a segment encrypted under custody, the
    ciphertext the archive holds: that is checked against the logged ciphertext digest,
    and the answer says for which epoch it is encrypted.  The file is hashed here; only
    its digest is sent to --server.
    """
    from custodes.fleet.query import file_sha256, verify_footage

    start_ms = _time(start, "--start") if start else None
    if server:
        digest, size = file_sha256(file)
        args = {"camera": camera, "sha256": digest, "bytes": size}
        if start:
            args["start"] = start
        rep = _remote(server, "GET", "/fleet/footage?" + urllib.parse.urlencode(args))
        ok = bool(rep.pop("ok"))
        rep["file"] = str(file)
        from custodes.fleet.containers import sealed_header

        header = sealed_header(file)
        if header is not None and "encrypted" not in rep:
            rep["encrypted"] = {"epoch": header.epoch}
            rep["result"] = f"the file is a ciphertext for epoch {header.epoch}; {rep['result']}"
    else:
        ok, rep = verify_footage(_data(ctx), file, camera, start_ms=start_ms)
    if as_json:
        click.echo(json.dumps({"ok": ok, **rep}))
    else:
        click.echo(("verified: " if ok else "NOT verified: ") + rep["result"])
    ctx.exit(0 if ok else 1)


@fleet_group.command("declare")
@click.argument("kind", type=click.Choice(["outage", "maintenance"]))
@click.option("--camera", "cameras", multiple=True, required=True, help="A camera id; repeat.")
@click.option("--from", "from_", required=True, help="Window start, RFC 3339.")
@click.option("--to", "to", required=True, help="Window end, RFC 3339.")
@click.option("--reason", required=True, help="The reason claimed, as it will be published.")
@click.option("--json", "as_json", is_flag=True, help="Print the logged entry as JSON.")
@_server_opts
@click.pass_context
def declare_cmd(
    ctx: click.Context,
    kind: str,
    cameras: tuple[str, ...],
    from_: str,
    to: str,
    reason: str,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Declare an outage or a maintenance window for cameras, with a reason.

    The entry keeps when it was declared; one declared after its window began
    is marked late, for everyone to see.
    """
    from custodes.fleet.ops import declare

    if server:
        body = {"kind": kind, "cameras": list(cameras), "from": from_, "to": to, "reason": reason}
        entry = _remote(
            server, "POST", "/fleet/declarations", token=token, body=json.dumps(body).encode()
        )
    else:
        entry = _write(
            ctx, lambda log, db: declare(log, db, kind, list(cameras), from_, to, reason)
        )
    if as_json:
        click.echo(json.dumps(entry))
    else:
        late = " (LATE: declared after the window began)" if entry["late"] else ""
        click.echo(f"{kind} declared for {', '.join(cameras)} at index {entry['index']}{late}")


@fleet_group.command("incident")
@click.option("--at", "at", required=True, metavar="LAT,LON", help="The place, WGS84 degrees.")
@click.option("--radius", default="300m", show_default=True, help="Distance: 300m, 1.5km.")
@click.option("--from", "from_", required=True, help="Start, RFC 3339.")
@click.option("--to", "to", required=True, help="End, RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer and its proofs as JSON.")
@click.option("--server", metavar="URL", envvar="CUSTODES_SERVER", help="Ask a running server.")
@click.pass_context
def incident_cmd(
    ctx: click.Context,
    at: str,
    radius: str,
    from_: str,
    to: str,
    as_json: bool,
    server: str | None,
) -> None:
    """Every camera near a place over a window: heard, recorded, declared.

    Flags outages declared after the window began, cameras that fell silent
    together, and correlated outages logged when their interval closed.
    """
    from custodes.fleet.query import incident, parse_radius

    try:
        lat_s, lon_s = at.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise click.BadParameter("--at must be LAT,LON such as 55.7558,37.6173") from None
    f, t = _time(from_, "--from"), _time(to, "--to")
    if t <= f:
        raise UsageError("--to must be after --from")
    metres = parse_radius(radius)
    if server:
        q = urllib.parse.urlencode({"at": at, "radius": radius, "from": from_, "to": to})
        rep = _remote(server, "GET", f"/fleet/incident?{q}")
    else:
        rep = incident(_data(ctx), lat, lon, metres, f, t)
    if as_json:
        click.echo(json.dumps(rep))
        return
    click.echo(
        f"{len(rep['cameras'])} cameras within {metres:g} m of {lat},{lon}"
        f" from {rep['from']} to {rep['to']}"
    )
    for c in rep["cameras"]:
        click.echo(
            f"  {c['camera']['id']:<24} {c['distance_m']:>7.1f} m  heard"
            f" {c['intervals_heard']}/{c['intervals']} intervals, {len(c['segments'])} segments"
        )
    flags = rep["flags"]
    for d in flags["declared_late"]:
        click.echo(
            f"FLAG declared late: {d['kind']} of {d['camera']} for {d['from']} .. {d['to']}"
            f" declared at {d['declared_at']} ({d.get('reason')})"
        )
    for g in flags["silent_together"]:
        click.echo(f"FLAG silent together at {g['interval']}: {', '.join(g['cameras'])}")
    for g in flags["correlated"]:
        click.echo(f"FLAG correlated outage from {g['from']}: {', '.join(g['cameras'])}")
    click.echo(f"checked against the signed checkpoint of size {rep['checkpoint_size']}")


@click.command("simulate")
@click.option("--cameras", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--minutes", type=click.FloatRange(0.2, 24 * 60), default=10, show_default=True)
@click.option(
    "--speed",
    default="max",
    show_default=True,
    help="'max' (as fast as it goes) or a multiple of real time such as 1 or 10.",
)
@click.option("--seed", default=1, show_default=True, help="Random seed for the city and faults.")
@click.option(
    "--shards",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Split the city by district over this many shards (DIR becomes a shard set),"
    " each with its own log and server.",
)
@click.option(
    "--custody",
    metavar="T/N",
    default=None,
    help="Start N real custodians (T of N) whose DKG makes the epoch keys through the log;"
    " every segment record then carries the custody fields, as under custody.",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(0.05, 3600),
    default=0.5,
    show_default=True,
    help="The simulated server's seconds between checkpoints (serve --interval); shorter"
    " lowers the checkpoint lag, at the cost of more checkpoints.",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of measurements.")
@click.pass_context
def simulate_cmd(
    ctx: click.Context,
    cameras: int,
    minutes: float,
    speed: str,
    seed: int,
    shards: int,
    custody: str | None,
    checkpoint_interval: float,
    as_json: bool,
) -> None:
    """Drive a synthetic city through the real ingest path over HTTP, and measure it.

    Builds districts and cameras in DIR (creating the instance if needed),
    registers recorder agents, starts a server on a free loopback port whose
    fleet clock runs the simulation, and posts heartbeats every 10 s and 60-s
    segments, with random faults.  Reports cameras, simulated_seconds,
    wall_seconds, realtime_factor, heartbeats, segments, checkpoint_interval_s,
    checkpoint_lag_s_max and peak_rss_mb.
    """
    from custodes.fleet.simulate import SimConfig, simulate

    if speed == "max":
        factor = None
    else:
        try:
            factor = float(speed)
        except ValueError:
            raise click.BadParameter("--speed is 'max' or a number such as 1") from None
        if factor <= 0:
            raise click.BadParameter("--speed must be more than 0")
    keepers = None
    if custody is not None:
        from custodes.fleet.sim_custody import parse_custody

        keepers = parse_custody(custody)
        if shards > 1:
            raise click.BadParameter("--custody works with one log; leave out --shards")
    cfg = SimConfig(
        cameras=cameras,
        minutes=minutes,
        speed=factor,
        seed=seed,
        shards=shards,
        custody=keepers,
        checkpoint_interval=checkpoint_interval,
    )
    rep = simulate(_data(ctx), cfg, say=lambda s: click.echo(f"simulate: {s}", err=True))
    if as_json:
        click.echo(json.dumps(rep))
    else:
        for k, v in rep.items():
            click.echo(f"{k}: {v}")
