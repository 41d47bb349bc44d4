"""``custodes access`` against a running ``custodes serve``, as an investigator, approver,
auditor and admin would use it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.access.identity import Identities
from custodes.fleet.model import format_time
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance
from custodes.web.service import LedgerService
from tests.access.gateway_kit import populate
from tests.conftest import free_port, run_cli, wait_http


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data"
    run_cli("init", "--origin", "test.custodes.example/log", data=data)
    ledger = LedgerService(Instance.load(data))
    fleet, ids = FleetDB.for_instance(data), Identities(data)
    try:
        made = populate(data, ledger, fleet, ids)
    finally:
        ids.close()
        fleet.close()
        ledger.close()
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "custodes", "--data", str(data), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield {**made, "url": url, "data": data}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def access(s: dict[str, Any], user: str, *args: str, check: bool = True) -> Any:
    return run_cli(
        "access", args[0], *args[1:], "--server", s["url"], "--token", s["tokens"][user],
        check=check,
    )  # fmt: skip


def test_the_whole_path_from_the_command_line(served: dict[str, Any], tmp_path: Path) -> None:
    s = served
    window = (
        "--from", format_time(s["start"] + 5_000), "--to", format_time(s["start"] + 25_000),
        "--purpose", "investigation", "--case", "CASE-2026-0001",
        "--why", "A theft at the kiosk by the metro entrance.",
    )  # fmt: skip
    out = access(s, "ivan", "request", "--cameras", "cam-n1", *window)
    rid = out.stdout.decode().strip().splitlines()[-1]
    assert rid.startswith("r-")

    refused = access(s, "ivan", "approve", rid, check=False)
    assert refused.returncode == 1
    err = refused.stderr.decode().strip()
    assert "\n" not in err and "approver" in err and "investigator" in err

    approved = access(s, "anna", "approve", rid, "--reason", "fits the case", "--json")
    assert json.loads(approved.stdout)["complete"] is True  # --json: the server's answer
    clip = tmp_path / "clip.mp4"
    done = access(s, "ivan", "release", rid, "--out", str(clip))
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert digest in done.stdout.decode()
    # Released once; asked again (as after an interrupted download), the logged clip comes
    # back byte for byte, and that download is logged too (issue 15, item 1).
    again = access(s, "ivan", "release", rid, "--out", str(tmp_path / "again.mp4"), "--json")
    said = json.loads(again.stdout)  # --json: one object on stdout, the prose on stderr
    assert said["again"] is True and said["sha256"] == digest and said["request"] == rid
    assert said["receipt"] == str(tmp_path / "again.mp4.release.json")
    assert said["tlog_proof"] == str(tmp_path / "again.mp4.tlog-proof")
    assert "fetched again" in again.stderr.decode()
    assert (tmp_path / "again.mp4").read_bytes() == clip.read_bytes()
    other_one = access(s, "olga", "release", rid, "--out", str(tmp_path / "o.mp4"), check=False)
    assert other_one.returncode == 1 and not (tmp_path / "o.mp4").exists()

    # The receipt proves, with the log key alone, that this clip's release is in the log.
    receipt = tmp_path / "clip.mp4.release.json"
    assert receipt.exists() and str(receipt) in done.stdout.decode()
    vkey = Instance.load(s["data"]).verifier_key
    ok = run_cli("access", "check-receipt", str(receipt), "--vkey", vkey, "--json")
    assert json.loads(ok.stdout)["output"]["sha256"] == digest
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes()[:-1] + b"\x00")
    bad = run_cli("access", "check-receipt", str(receipt), "--vkey", vkey, "--clip", str(other),
                  check=False)  # fmt: skip
    assert bad.returncode == 1 and "is not the clip this release logged" in bad.stderr.decode()
    doc = json.loads(receipt.read_text())
    doc["entry"]["json"] = doc["entry"]["json"].replace(digest, "0" * 64)
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    bad = run_cli("access", "check-receipt", str(forged), "--vkey", vkey, "--clip", str(clip),
                  check=False)  # fmt: skip
    assert bad.returncode == 1 and "custodes:" in bad.stderr.decode()

    # An entry that is not in the log: the same release, with only its time changed, so the
    # request and the clip's digest still match; only the inclusion proof can refuse it.
    entry = json.loads(doc["entry"]["json"].replace("0" * 64, digest))
    entry["time"] = "2000-01-01T00:00:00Z"
    unlogged = dict(
        doc,
        entry={
            "index": doc["entry"]["index"],
            "json": json.dumps(entry, separators=(",", ":"), sort_keys=True),
        },
    )
    orig = json.loads(receipt.read_text())
    zero = base64.b64encode(b"\x00" * 32).decode()
    wrong_proof = dict(orig, inclusion=[zero, *orig["inclusion"][1:]])
    wrong_index = dict(orig, entry=dict(orig["entry"], index=orig["entry"]["index"] + 1))
    for name, bent in (
        ("unlogged", unlogged),
        ("wrong-proof", wrong_proof),
        ("wrong-index", wrong_index),
    ):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(bent))
        bad = run_cli("access", "check-receipt", str(path), "--vkey", vkey, "--clip", str(clip),
                      check=False)  # fmt: skip
        assert bad.returncode == 1, (name, bad.stdout)
        assert bad.stderr.decode().startswith("custodes:"), (name, bad.stderr)

    shown = json.loads(access(s, "audrey", "show", rid).stdout)
    assert shown["state"] == "released" and shown["released"]["sha256"] == digest
    revealed = json.loads(access(s, "audrey", "reveal", rid, "--reason", "case closed").stdout)
    assert revealed["details"]["case"] == "CASE-2026-0001"

    # An area request near the two northern cameras, then a denial with a reason.
    env_run = subprocess.run(
        [
            sys.executable, "-m", "custodes", "access", "request",
            "--area", "55.7605,37.6110,300", *window, "--json",
        ],
        capture_output=True,
        env={**os.environ, "CUSTODES_SERVER": s["url"], "CUSTODES_TOKEN": s["tokens"]["ivan"]},
        check=True,
    )  # fmt: skip
    rid2 = json.loads(env_run.stdout)["request"]
    denied = access(s, "boris", "deny", rid2, "--reason", "too wide", "--json")
    assert isinstance(json.loads(denied.stdout)["index"], int)
    assert json.loads(access(s, "ivan", "show", rid2).stdout)["state"] == "denied"

    flags = json.loads(access(s, "audrey", "flags", "--json").stdout)
    assert isinstance(flags, list)


def test_policy_show_and_set(served: dict[str, Any], tmp_path: Path) -> None:
    s = served
    shown = json.loads(run_cli("access", "policy", "show", "--server", s["url"]).stdout)
    assert shown["version"] == 1
    doc = tmp_path / "policy.json"
    doc.write_text(json.dumps({"max_cameras": 4}))
    refused = access(s, "ivan", "policy", "set", str(doc), check=False)
    assert refused.returncode == 1 and "admin" in refused.stderr.decode()
    assert "version 2" in access(s, "adam", "policy", "set", str(doc)).stdout.decode()
    shown = json.loads(run_cli("access", "policy", "show", "--server", s["url"]).stdout)
    assert shown["version"] == 2 and shown["policy"]["max_cameras"] == 4


def test_without_a_token_the_cli_says_so(served: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CUSTODES_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "custodes", "access", "flags", "--server", served["url"]],
        capture_output=True,
        env=env,
    )
    assert proc.returncode == 1 and "token" in proc.stderr.decode()
