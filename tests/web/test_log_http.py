"""The log over HTTP: tlog-tiles paths any client can read, and JSON proofs."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from custodes.tlog import Verifier, check_consistency, check_inclusion, leaf_hash, open_checkpoint
from tests.conftest import run_cli


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


@pytest.fixture
def filled(instance: tuple[Path, str]) -> tuple[Path, str]:
    data, vkey = instance
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(1000)).encode()
    run_cli("log", "append", "-", data=data, input=lines)
    return data, vkey


def test_served_log_verifies_with_the_standard_paths(
    filled: tuple[Path, str], server: tuple[str, Path, str], tmp_path: Path
) -> None:
    url, _, vkey = server
    status, body, _ = _get(url + "/log/checkpoint")
    assert status == 200
    cp = open_checkpoint(body, Verifier.from_key(vkey)).checkpoint
    assert cp.size == 1000
    out = run_cli("verify", "--vkey", vkey, "--source", url + "/log", "--json")
    assert json.loads(out.stdout)["size"] == 1000
    status, _, headers = _get(url + "/log/tile/0/000")
    assert status == 200 and "immutable" in headers["cache-control"]
    status, tile, _ = _get(url + "/log/tile/0/003.p/232")
    assert status == 200 and len(tile) == 232 * 32


def test_proof_endpoints_give_proofs_that_check(
    filled: tuple[Path, str], server: tuple[str, Path, str]
) -> None:
    url, _, vkey = server
    _, body, _ = _get(url + "/log/checkpoint")
    cp = open_checkpoint(body, Verifier.from_key(vkey)).checkpoint
    _, entry, _ = _get(url + "/log/entry/123")
    assert json.loads(entry) == {"n": 123}
    _, js, _ = _get(url + f"/log/proof/inclusion?index=123&size={cp.size}")
    proof = [base64.b64decode(h) for h in json.loads(js)["proof"]]
    check_inclusion(proof, index=123, size=cp.size, leaf=leaf_hash(entry), root=cp.root_hash)
    _, js, _ = _get(url + f"/log/proof/consistency?old=1&new={cp.size}")
    proof = [base64.b64decode(h) for h in json.loads(js)["proof"]]
    first_root = leaf_hash(json.dumps({"n": 0}, separators=(",", ":")).encode())
    check_consistency(
        proof, old_size=1, new_size=cp.size, old_root=first_root, new_root=cp.root_hash
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/log/tile/0/999", 404),  # beyond the log
        ("/log/tile/0/000.p/0", 400),  # width 0 is not a tile
        ("/log/tile/0/x000", 400),  # non-canonical path
        ("/log/proof/inclusion?index=5000&size=1000", 404),
        ("/log/proof/inclusion?index=-1&size=10", 422),
        ("/log/entry/1000", 404),
    ],
)
def test_bad_requests_get_clear_errors(
    filled: tuple[Path, str], server: tuple[str, Path, str], path: str, status: int
) -> None:
    url, _, _ = server
    got, body, _ = _get(url + path)
    assert got == status, body
    assert b"Traceback" not in body


def test_a_second_writer_is_told_to_use_the_server(server: tuple[str, Path, str]) -> None:
    url, data, _ = server
    out = run_cli("log", "append", "-", data=data, input=b'{"a":1}\n', check=False)
    assert out.returncode == 1
    assert b"--server URL" in out.stderr
    assert len(out.stderr.decode().strip().splitlines()) == 1


def test_home_page_says_how_to_verify(server: tuple[str, Path, str]) -> None:
    url, _, vkey = server
    status, body, _ = _get(url + "/")
    assert status == 200
    assert vkey.encode() in body and b"custodes verify" in body


def test_openapi_document_lists_the_log_routes(server: tuple[str, Path, str]) -> None:
    url, _, _ = server
    _, body, _ = _get(url + "/openapi.json")
    paths = json.loads(body)["paths"]
    assert "/log/checkpoint" in paths and "/log/proof/inclusion" in paths
    time.sleep(0)
