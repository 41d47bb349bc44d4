"""``custodes access``: ask for footage, decide, release, reveal, review flags, set policy.

Every command talks to a running server (``--server URL``, default
``$CUSTODES_SERVER`` or http://127.0.0.1:8000) as the user whose token is
given (``--token`` or ``$CUSTODES_TOKEN``).  A refusal exits 1 with the
server's one-sentence reason.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from custodes.errors import CustodesError, UsageError

__all__ = ["access_group"]

DEFAULT_SERVER = "http://127.0.0.1:8000"


def _opts(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--token",
        envvar="CUSTODES_TOKEN",
        help="Your user token (from 'custodes users add'); or $CUSTODES_TOKEN.",
    )(fn)
    return click.option(
        "--server",
        metavar="URL",
        envvar="CUSTODES_SERVER",
        default=DEFAULT_SERVER,
        show_default="$CUSTODES_SERVER or http://127.0.0.1:8000",
        help="The running custodes server.",
    )(fn)


def _open(server: str, method: str, path: str, token: str | None, body: Any) -> Any:
    if not token:
        raise UsageError("a user token is needed: give --token or set CUSTODES_TOKEN")
    headers = {
        "User-Agent": "custodes-cli",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
    }
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        server.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        return urllib.request.urlopen(req, timeout=600)
    except urllib.error.HTTPError as err:
        try:
            msg = json.loads(err.read()).get("error") or f"the server answered HTTP {err.code}"
        except (ValueError, AttributeError):
            msg = f"the server answered HTTP {err.code}"
        if isinstance(msg, list):  # FastAPI's validation errors
            msg = "; ".join(str(m.get("msg", m)) if isinstance(m, dict) else str(m) for m in msg)
        raise UsageError(str(msg)) from None
    except (urllib.error.URLError, OSError) as err:
        raise UsageError(f"cannot reach {server}: {getattr(err, 'reason', err)}") from None


def _call(server: str, method: str, path: str, token: str | None, body: Any = None) -> Any:
    with _open(server, method, path, token, body) as resp:
        return json.loads(resp.read())


def _q(rid: str) -> str:
    return urllib.parse.quote(rid, safe="")


@click.group("access")
def access_group() -> None:
    """Footage requests: every look needs a case, a second person, and a record first.

    An investigator requests; an approver (a judge for sensitive zones) decides;
    the requester receives the clip only after its release is logged; auditors
    read sealed details, reveal them, and review insider-abuse flags.
    """


@access_group.command("request")
@click.option("--cameras", metavar="ID,ID", help="The cameras, by id.")
@click.option("--area", metavar="LAT,LON,RADIUS_M", help="Or every camera within a circle.")
@click.option("--from", "from_", metavar="ISO", help="Window start (RFC 3339).")
@click.option("--to", metavar="ISO", help="Window end (RFC 3339).")
@click.option(
    "--live",
    is_flag=True,
    help="Watch the cameras live instead: --minutes from the approval that completes it.",
)
@click.option(
    "--minutes",
    type=click.IntRange(1, 24 * 60),
    metavar="N",
    help="How long a live grant lasts (at most the policy's live_max_minutes).",
)
@click.option(
    "--emergency",
    is_flag=True,
    help="A live grant that starts at once, before approval; flagged, and an approver must"
    " review it within the policy's emergency_review_s.",
)
@click.option("--purpose", required=True, help="investigation, missing-person, ... (the policy's).")
@click.option(
    "--case", required=True, metavar="REF", help="The case reference, e.g. CASE-2026-0001."
)
@click.option("--why", required=True, metavar="TEXT", help="The justification.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@_opts
def request_cmd(
    cameras: str | None,
    area: str | None,
    from_: str,
    to: str,
    purpose: str,
    case: str,
    why: str,
    live: bool,
    minutes: int | None,
    emergency: bool,
    as_json: bool,
    server: str,
    token: str | None,
) -> None:
    """Ask for footage; prints the request id as the last line (with --json, the server's
    answer: the request id, its log index and what the policy requires).

    With --live --minutes N, ask to watch --cameras live for N minutes from the approval
    (--emergency: from now, before any approval); it is played at
    /access/live/ID/watch and never exported as a clip.

    The case and justification are sealed: the public log holds only a
    commitment to them, with the purpose and the size of the scope.
    """
    if live or emergency:
        if not cameras or area or from_ or to or minutes is None:
            raise click.UsageError("a live grant takes --cameras and --minutes, not a window")
        grant = {"cameras": [c.strip() for c in cameras.split(",") if c.strip()],
                 "minutes": minutes, "emergency": emergency, "purpose": purpose,
                 "case": case, "justification": why}  # fmt: skip
        got = _call(server, "POST", "/access/live", token, grant)
        click.echo(json.dumps(got, indent=2) if as_json else got["request"])
        return
    if minutes is not None:
        raise click.UsageError("--minutes is for a live grant (--live)")
    if not from_ or not to:
        raise click.UsageError("give --from and --to (or --live --minutes N)")
    if bool(cameras) == bool(area):
        raise click.UsageError("give either --cameras or --area")
    body: dict[str, Any] = {
        "from": from_,
        "to": to,
        "purpose": purpose,
        "case": case,
        "justification": why,
    }
    if cameras:
        body["cameras"] = [c.strip() for c in cameras.split(",") if c.strip()]
    else:
        try:
            lat, lon, radius = (float(x) for x in (area or "").split(","))
        except ValueError:
            raise click.BadParameter("--area must be LAT,LON,RADIUS_M") from None
        body["area"] = {"lat": lat, "lon": lon, "radius_m": radius}
    out = _call(server, "POST", "/access/requests", token, body)
    click.echo(json.dumps(out, indent=2) if as_json else out["request"])


@access_group.command("show")
@click.argument("rid", metavar="ID")
@click.option(
    "--why", default="", help="Why you read the sealed details (auditors; logged before shown)."
)
@_opts
def show_cmd(rid: str, why: str, server: str, token: str | None) -> None:
    """Show one request, its state and decisions (as JSON).

    An approver's, judge's or auditor's read of the sealed details is logged
    (``access.details_read``) before they are shown; auditors see them only
    with ``--why``.
    """
    path = f"/access/requests/{_q(rid)}" + (f"?why={_q(why)}" if why else "")
    click.echo(json.dumps(_call(server, "GET", path, token), indent=2))


@access_group.command("queue")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_opts
def queue_cmd(as_json: bool, server: str, token: str | None) -> None:
    """Requests waiting for your decision (approvers and judges)."""
    rows = _call(server, "GET", "/access/queue", token)["requests"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['request']}\t{r['purpose']}\t{r['cameras']} cameras\t{r['window_s']} s"
            f"\t{'sensitive' if r['sensitive'] else ''}"
        )


@access_group.command("approve")
@click.argument("rid", metavar="ID")
@click.option("--unredacted", is_flag=True, help="Also grant an unredacted export.")
@click.option("--reason", default="", help="Why (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@_opts
def approve_cmd(
    rid: str, unredacted: bool, reason: str, as_json: bool, server: str, token: str | None
) -> None:
    """Approve a request (approvers; judges where it touches a sensitive zone)."""
    body = {"unredacted": unredacted, "reason": reason}
    out = _call(server, "POST", f"/access/requests/{_q(rid)}/approve", token, body)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    state = "approved" if out.get("complete") else "approved; it needs another approval"
    click.echo(f"{rid} {state} (log index {out['index']}, valid until {out['expires']})")


@access_group.command("deny")
@click.argument("rid", metavar="ID")
@click.option("--reason", required=True, help="Why; it is logged.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@_opts
def deny_cmd(rid: str, reason: str, as_json: bool, server: str, token: str | None) -> None:
    """Deny a request, with a reason."""
    out = _call(server, "POST", f"/access/requests/{_q(rid)}/deny", token, {"reason": reason})
    click.echo(json.dumps(out, indent=2) if as_json else f"{rid} denied (log index {out['index']})")


@access_group.command("release")
@click.argument("rid", metavar="ID")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The clip (for several cameras the archive, written as a .zip).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@_opts
def release_cmd(rid: str, out: Path, as_json: bool, server: str, token: str | None) -> None:
    """Receive the approved clip; it is released only once the release is logged.

    One camera: writes the clip, then beside it its receipt (CLIP.release.json) and the
    same as a c2sp.org/tlog-proof file (CLIP.tlog-proof). Several cameras: writes one
    zip (--out with .zip for its suffix) holding one MP4 per camera, named by camera and
    start time, their manifest.json (whose SHA-256 the release logs) and the receipt
    (release.json, release.tlog-proof). Check either with `access check-receipt`.
    """
    from custodes.access.archive import check_archive, is_archive
    from custodes.cli.release_files import listed_files

    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {out}: the folder {folder} does not exist")
    tmp = folder / f".{out.name}.partial"
    again = False
    manifest: dict[str, Any] | None = None
    try:
        try:
            resp = _open(server, "POST", f"/access/requests/{_q(rid)}/release", token, {})
        except UsageError as err:
            if "already released" not in str(err):
                raise
            # Released before (an interrupted download): fetch the logged clip again.
            resp = _open(server, "GET", f"/access/requests/{_q(rid)}/clip", token, None)
            again = True
        with resp:
            index, digest = (
                resp.headers.get("X-Custodes-Index"),
                resp.headers.get("X-Custodes-Sha256"),
            )
            # Under custody the release is logged before the footage is opened, and the
            # clip is named by the access.exported entry that follows it.
            released = resp.headers.get("X-Custodes-Release-Index") or index
            with open(tmp, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
        import hashlib

        h = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if is_archive(tmp):
            try:
                manifest = check_archive(tmp, digest or "", None)
            except CustodesError as err:
                raise UsageError(f"the archive is not the one the log names: {err}") from None
            if out.suffix.lower() != ".zip":
                out = out.with_suffix(".zip")
        elif digest and h != digest:
            raise UsageError(f"the clip's sha256 {h} differs from the logged {digest}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

    def say(text: str) -> None:
        click.echo(text, err=as_json)

    what = "archive's manifest" if manifest is not None else "clip"
    result: dict[str, Any] = {
        "request": rid, "clip": str(out), "sha256": digest, "again": again,
        "index": int(index) if index and index.isdigit() else None,
        "release_index": int(released) if released and released.isdigit() else None,
        "archive": manifest is not None,
        "files": listed_files(manifest, out), "receipt": None, "tlog_proof": None,
    }  # fmt: skip
    kind = "archive" if manifest is not None else "clip"
    if again:
        say(
            f"wrote {out}: request {rid} was released before, so its logged {kind} was fetched"
            f" again ({what} sha256 {digest}, release logged at index {index}; this download"
            " is logged too)"
        )
    elif released != index:
        say(
            f"wrote {out} ({what} sha256 {digest}, release logged at index {released} and"
            f" opened by the custodians, the {kind} logged at index {index})"
        )
    else:
        say(f"wrote {out} ({what} sha256 {digest}, release logged at index {index})")
    if manifest is not None:
        for item in result["files"]:
            say(f"  {item['name']}: camera {item['camera']}, {item['start']} to {item['end']}")
    if result["index"] is not None:
        from custodes.cli.release_files import archive_receipt, write_receipts

        if manifest is not None:
            archive_receipt(server, rid, int(result["index"]), out, result, say)
        else:
            write_receipts(server, rid, int(result["index"]), out, result, say)
    if as_json:
        click.echo(json.dumps(result))


@access_group.command("check-receipt")
@click.argument("receipt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vkey", help="The log's verifier key (or give --policy).")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A c2sp.org/tlog-policy file: the logs accepted, the witnesses and the quorum.",
)
@click.option(
    "--clip",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The released clip; default: the receipt's name without .tlog-proof or"
    " .release.json, if present.",
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
    type=click.IntRange(0),
    default=None,
    help="How many of the --witness keys must have cosigned (default: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the release entry as JSON.")
def check_receipt_cmd(
    receipt: Path,
    vkey: str | None,
    policy_file: Path | None,
    clip: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    as_json: bool,
) -> None:
    """Check that a clip's release is in the log: signature, inclusion proof, digest.

    RECEIPT is a c2sp.org/tlog-proof@v1 file (clip.mp4.tlog-proof) or the older
    JSON receipt (clip.mp4.release.json); which one is told from its content. For a
    release of several cameras RECEIPT is the archive (ID.zip) with its receipt inside:
    its manifest.json must be the one the entry logged, every file the one the manifest
    lists, and the zip must hold nothing else.
    With --witness, the checkpoint must also carry cosignatures by --quorum of
    those witnesses; with --policy, it must be signed by a log the policy lists
    and cosigned as its quorum says.  Needs no server and no account: only the
    receipt, the clip and the keys.
    """
    from custodes.access.receipt import check_receipt
    from custodes.tlog import (
        CosignatureVerifier,
        Verifier,
        open_checkpoint,
        parse_checkpoint,
        parse_note,
    )
    from custodes.tlog.proof import check_proof, is_tlog_proof, parse_policy, parse_proof

    if (vkey is None) == (policy_file is None):
        raise UsageError("give the log's key with --vkey, or a policy with --policy (not both)")
    if policy_file is not None and (witness_keys or quorum is not None):
        raise UsageError("--witness and --quorum go with --vkey; a --policy names its witnesses")
    policy = parse_policy(policy_file.read_bytes()) if policy_file is not None else None
    witnesses = [CosignatureVerifier.from_key(k) for k in witness_keys]
    need = len(witnesses) if quorum is None else quorum
    if need > len(witnesses):
        raise UsageError(f"--quorum {need} cannot be met by {len(witnesses)} --witness key(s)")
    from custodes.access.archive import is_archive, read_receipt

    if is_archive(receipt):  # a release of several cameras, its receipt inside
        if clip is not None and clip.resolve() != receipt.resolve():
            raise UsageError(f"{receipt} is an archive with its receipt inside; give no --clip")
        clip = receipt
        inside = read_receipt(receipt)
        if inside is None:
            raise UsageError(
                f"{receipt} holds no receipt; give the receipt file, with --clip {receipt}"
            )
        data = inside
    else:
        if clip is None:
            for suffix in (".tlog-proof", ".release.json"):
                if receipt.name.endswith(suffix):
                    guess = receipt.with_name(receipt.name.removesuffix(suffix))
                    clip = guess if guess.exists() else None
        data = receipt.read_bytes()

    def log_key(note: bytes) -> str:
        if policy is None:
            assert vkey is not None
            return vkey
        return policy.log_for(parse_checkpoint(parse_note(note).text).origin).key

    if is_tlog_proof(data):
        proof = parse_proof(data)
        key = log_key(proof.checkpoint)
        check_proof(proof, proof.extra, Verifier.from_key(key), witnesses=witnesses, quorum=need)
        if policy is not None:
            policy.check(proof.checkpoint)
        # The entry (the extra data) is now authenticated by the inclusion proof; the JSON
        # receipt's checks of what it says are the same, so run them on the same fields.
        try:
            entry_doc = json.loads(proof.extra)
            output = entry_doc["output"]
            doc: dict[str, Any] = {
                "format": "custodes-release-receipt/1",
                "request": entry_doc["request"],
                "clip": {"sha256": output["sha256"], "bytes": output["bytes"]},
                "entry": {"index": proof.index, "json": proof.extra.decode("utf-8")},
                "checkpoint": proof.checkpoint.decode("utf-8"),
                "inclusion": [base64.b64encode(h).decode() for h in proof.inclusion],
            }
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{receipt}: the logged entry is not a release entry") from None
    else:
        try:
            doc = json.loads(data)
        except ValueError:
            raise UsageError(f"{receipt} is neither a tlog-proof nor a JSON receipt") from None
        if not isinstance(doc, dict):
            raise UsageError(f"{receipt} is not a release receipt")
    note = str(doc.get("checkpoint", "")).encode("utf-8")
    key = log_key(note)
    entry = check_receipt(doc, clip, key)
    if policy is not None:
        policy.check(note)
    if witnesses:
        signed = open_checkpoint(note, Verifier.from_key(key), cosigners=witnesses)
        if len(signed.cosignatures) < need:
            raise UsageError(
                f"the checkpoint is cosigned by {len(signed.cosignatures)} of the given"
                f" witnesses, fewer than the {need} required"
            )
    if as_json:
        click.echo(json.dumps(entry))
        return
    manifest = (entry.get("output") or {}).get("manifest")
    what = f"{clip} is" if clip else "the receipt names"
    kind = "the clip"
    if isinstance(manifest, dict):
        kind = f"the archive of {manifest.get('files')} camera files"
        if clip:
            kind += " (each checked against its manifest, nothing else in it)"
    cosigned = f" and {need} witness(es)" if need else ""
    if policy is not None:
        cosigned = " and cosigned as the policy requires" if policy.quorum else ""
    click.echo(
        f"{what} {kind} released for request {entry['request']}, logged at index"
        f" {doc['entry']['index']} ({entry['time']}) under a checkpoint signed by the log key"
        f"{cosigned}"
    )


@access_group.command("reveal")
@click.argument("rid", metavar="ID")
@click.option("--reason", required=True, help="Why the details are published (logged).")
@_opts
def reveal_cmd(rid: str, reason: str, server: str, token: str | None) -> None:
    """Publish a request's sealed details and salt (auditors, judges)."""
    out = _call(server, "POST", f"/access/requests/{_q(rid)}/reveal", token, {"reason": reason})
    click.echo(json.dumps(out, indent=2))


@access_group.command("flags")
@click.option("--all", "show_all", is_flag=True, help="Resolved flags too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_opts
def flags_cmd(show_all: bool, as_json: bool, server: str, token: str | None) -> None:
    """Insider-abuse flags waiting for review (auditors)."""
    path = "/access/flags" + ("?all=true" if show_all else "")
    rows = _call(server, "GET", path, token)["flags"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for f in rows:
        click.echo(f"{f['flag']}\t{f['rule']}\t{f['subject']}\t{f['reason']}")


@access_group.command("resolve")
@click.argument("flag")
@click.option("--resolution", required=True, help="What the review found (logged).")
@_opts
def resolve_cmd(flag: str, resolution: str, server: str, token: str | None) -> None:
    """Close a flag after review (auditors)."""
    out = _call(
        server, "POST", f"/access/flags/{_q(flag)}/resolve", token, {"resolution": resolution}
    )
    click.echo(f"{flag} resolved (log index {out['index']})")


@access_group.group("policy")
def policy_group() -> None:
    """The approval policy: show it, or replace it (admins; the change is logged)."""


@policy_group.command("show")
@click.option("--server", metavar="URL", envvar="CUSTODES_SERVER", default=DEFAULT_SERVER)
def policy_show(server: str) -> None:
    """Print the policy in force, with its version."""
    try:
        with urllib.request.urlopen(server.rstrip("/") + "/access/policy", timeout=60) as r:
            click.echo(json.dumps(json.loads(r.read()), indent=2))
    except (urllib.error.URLError, OSError) as err:
        raise UsageError(f"cannot reach {server}: {getattr(err, 'reason', err)}") from None


@policy_group.command("set")
@click.argument("file", type=click.File("rb"))
@_opts
def policy_set(file: Any, server: str, token: str | None) -> None:
    """Replace the policy with FILE (JSON; '-' for stdin); logs policy.changed."""
    try:
        doc = json.loads(file.read())
    except ValueError:
        raise UsageError(f"{file.name} is not JSON") from None
    out = _call(server, "PUT", "/access/policy", token, doc)
    click.echo(f"policy version {out['version']} logged at index {out['index']}")


@access_group.command("rebuild")
@click.option("--json", "as_json", is_flag=True, help="Print what was rebuilt as JSON.")
@click.pass_context
def rebuild_cmd(ctx: click.Context, as_json: bool) -> None:
    """Rebuild access.db, policy.json and the accounts' roles from the log alone.

    Run it with the server stopped. The log's entries must first hash to its
    latest signed checkpoint, or nothing is rebuilt. Sealed request details and
    account secrets, which the log does not hold, are kept; each sealed request
    must still open to the commitment its logged request holds.
    """
    from custodes.access.rebuild import rebuild

    out = rebuild(Path(ctx.obj["data"]))
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(
        f"rebuilt from {out['entries']:,} log entries ({out['verified']:,} checked against the"
        f" signed checkpoint): {out['requests']:,} requests, policy version {out['policy']},"
        f" {out['accounts_fixed']} account(s) put back as the log has them"
    )
    click.echo(f"state {out['state_sha256']}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(access_group())
