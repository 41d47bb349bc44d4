"""`custodes users`: add, list and revoke, locally and through a running server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.web.test_login import Server


def _entries(data: Path) -> list[dict[str, Any]]:
    out = run_cli("log", "checkpoint", data=data).stdout.decode()
    size = int(out.splitlines()[1])
    from custodes.ledger.instance import Instance

    reader = Instance.load(data).reader()
    try:
        return [json.loads(e) for e in reader.store.read_entries(0, size)]
    finally:
        reader.store.close()


def _get(url: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _one_camera(data: Path) -> None:
    """A camera in district north, zone metro: the names the scopes below use must exist."""
    cam = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [37.6, 55.7]},
           "properties": {"id": "cam-1", "district": "north", "zone": "metro"}}  # fmt: skip
    doc = json.dumps({"type": "FeatureCollection", "features": [cam]}).encode()
    run_cli("cameras", "import", "-", data=data, input=doc)


def test_add_list_revoke_with_data(instance: tuple[Path, str]) -> None:
    data, _ = instance
    _one_camera(data)
    res = run_cli("users", "add", "root", "--role", "admin", data=data)
    token = res.stdout.decode().strip()
    assert token.startswith("cuu_") and len(token) > 40 and "\n" not in token  # alone on stdout
    assert "whole network" in res.stderr.decode()
    added = run_cli(
        "users",
        "add",
        "ivan",
        "--role",
        "investigator",
        "--scope",
        "district:north,group:metro",
        "--password-stdin",
        "--json",
        data=data,
        input=b"s3cret password\n",
    )
    ivan = json.loads(added.stdout)
    assert ivan["scope"] == {"districts": ["north"], "groups": ["metro"]}
    assert ivan["pseudonym"].startswith("u-") and ivan["token"].startswith("cuu_")

    listed = json.loads(run_cli("users", "list", "--json", data=data).stdout)
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [
        ("ivan", "investigator", True),
        ("root", "admin", True),
    ]
    assert all("token" not in u for u in listed)

    from custodes.access.identity import Identities

    run_cli("users", "password", "root", data=data, input=b"new root password\n")
    with Identities(data) as ids:
        assert ids.check_password("root", "new root password") is not None
        assert ids.check_password("ivan", "s3cret password") is not None
    empty = run_cli("users", "password", "root", data=data, input=b"\n", check=False)
    assert empty.returncode == 1 and "no password" in empty.stderr.decode()

    run_cli("users", "revoke", "ivan", data=data)
    again = run_cli("users", "revoke", "ivan", data=data, check=False)
    assert again.returncode == 1
    assert again.stderr.decode().strip() == "custodes: the user ivan is already revoked"
    text = run_cli("users", "list", data=data).stdout.decode()
    assert "ivan\tinvestigator\tdistrict:north,group:metro" in text and "(revoked)" in text

    # The public log holds the changes, with pseudonyms only.
    entries = [e for e in _entries(data) if e["type"].startswith("user.")]
    assert [e["type"] for e in entries] == ["user.added", "user.added", "user.revoked"]
    assert entries[1]["user"] == ivan["pseudonym"] == entries[2]["user"]
    assert "ivan" not in json.dumps(entries) and "root" not in json.dumps(entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "add", "x", "--role", "admin", "--scope", "north"), "district:ID or group:ID"),
        (("users", "add", "a b", "--role", "admin"), "user name"),
        (("users", "revoke", "nobody"), "there is no user named nobody"),
    ],
)
def test_refusals_are_one_sentence(
    instance: tuple[Path, str], args: tuple[str, ...], message: str
) -> None:
    data, _ = instance
    proc = run_cli(*args, data=data, check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.fixture
def served(instance: tuple[Path, str]) -> Iterator[tuple[Server, str]]:
    data, _ = instance
    _one_camera(data)
    admin = run_cli("users", "add", "root", "--role", "admin", data=data).stdout.decode()
    srv = Server(data)
    srv.start()
    try:
        yield srv, admin.splitlines()[-1]
    finally:
        srv.stop()


def test_through_a_running_server(served: tuple[Server, str]) -> None:
    srv, admin = served
    # With the server running, the data directory is busy: the CLI says to use the server.
    busy = run_cli("users", "add", "x", "--role", "judge", data=srv.data, check=False)
    assert busy.returncode == 1 and "--server URL --token ADMIN_TOKEN" in busy.stderr.decode()

    out = run_cli(
        "users",
        "add",
        "jane",
        "--role",
        "judge",
        "--scope",
        "group:metro",
        "--server",
        srv.url,
        "--token",
        admin,
    ).stdout.decode()
    token = out.splitlines()[-1]
    assert token.startswith("cuu_")
    # A judge's token works, but not for user administration.
    status, body = _get(srv.url + "/admin/users", token)
    assert status == 403 and "admin" in body["error"]
    status, body = _get(srv.url + "/admin/users", "cuu_nope")
    assert status == 401 and body["error"]
    refused = run_cli(
        "users", "add", "k", "--role", "judge", "--server", srv.url, "--token", token, check=False
    )
    assert refused.returncode == 1 and "admin" in refused.stderr.decode()

    listed = run_cli("users", "list", "--json", "--server", srv.url, "--token", admin).stdout
    assert {u["name"] for u in json.loads(listed)} == {"root", "jane"}
    run_cli("users", "revoke", "jane", "--server", srv.url, "--token", admin)
    status, _ = _get(srv.url + "/admin/users", token)
    assert status == 401
    srv.stop()
    kinds = [e["type"] for e in _entries(srv.data) if e["type"].startswith("user.")]
    assert kinds == ["user.added", "user.added", "user.revoked"]
