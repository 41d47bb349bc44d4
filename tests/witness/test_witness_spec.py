"""The witness to the current tlog-witness text: 422s, the monitoring endpoint, keys, HTTP.

Requests here are written by hand from the spec (not with custodes' own
client), over raw sockets and ``http.client``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import socket
from pathlib import Path

import pytest

from custodes.ledger.witnessing import WitnessClient
from custodes.tlog import (
    Checkpoint,
    CosignatureVerifier,
    MLDSA44CosignatureVerifier,
    Signer,
    Verifier,
    format_checkpoint,
    generate_key,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from custodes.witness.core import MAX_REQUEST
from tests.conftest import run_cli
from tests.witness.helpers import FakeLog, add_checkpoint_body, post, running_witness


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def _monitor_path(origin: str) -> str:
    return f"/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint"


def test_the_spec_422s(witness: tuple[Path, str], log: FakeLog) -> None:
    data, _ = witness
    log.append(5)
    signer = Signer.from_key(log.skey)
    with running_witness(data) as port:
        # A checkpoint of size 0 must have the empty tree's root.
        bent = sign_checkpoint(Checkpoint(origin=log.origin, size=0, root_hash=b"\1" * 32), signer)
        assert post(port, add_checkpoint_body(0, [], bent))[0] == 422
        # From size 0 the proof must be empty.
        assert post(port, add_checkpoint_body(0, [b"\0" * 32], log.checkpoint(5)))[0] == 422
        assert post(port, log.request(0, 5))[0] == 200
        # The same size with a non-empty proof, and with another root.
        same = add_checkpoint_body(5, [b"\0" * 32], log.checkpoint(5))
        assert post(port, same)[0] == 422
        other = log.fork(3)
        other.append(2, tag="other")
        assert post(port, add_checkpoint_body(5, [], other.checkpoint(5)))[0] == 422
        # The empty tree itself is fine at size 0 from a fresh log, and the state held.
        assert post(port, log.request(5, 5))[0] == 200


def test_the_monitoring_endpoint_serves_the_latest_cosigned_checkpoint(
    witness: tuple[Path, str], log: FakeLog
) -> None:
    data, wkey = witness
    log.append(9)
    path = _monitor_path(log.origin)
    wv = CosignatureVerifier.from_key(wkey)
    with running_witness(data) as port:
        assert _get(port, path)[0] == 404  # never cosigned yet
        assert _get(port, "/" + "0" * 64 + "/checkpoint")[0] == 404  # not a log it knows
        # A submitted note may carry a signature by a key the witness does not know.
        stranger = Signer.from_key(generate_key("stranger.example")[0])
        text = log.checkpoint(4).split(b"\n\n")[0].decode() + "\n"
        extra = sign_note(text, stranger).split(b"\n\n")[1]
        status, _, line = post(port, add_checkpoint_body(0, [], log.checkpoint(4) + extra))
        assert status == 200
        status, kind, body = _get(port, path)
        assert status == 200 and kind.startswith("text/plain")
        assert body == log.checkpoint(4) + line  # the log's signature and the one answered
        signed = open_checkpoint(body, Verifier.from_key(log.vkey), cosigners=[wv])
        assert signed.checkpoint.size == 4 and wv.name in signed.cosignatures
        assert b"stranger.example" not in body
        assert _get(port, path, "HEAD")[0] == 200
        status, _, line = post(port, log.request(4, 9))
        assert _get(port, path)[2] == log.checkpoint(9) + line
        assert post(port, b"", path=path)[0] == 405
    # After a restart it still serves the same cosignature.
    with running_witness(data) as port:
        assert _get(port, path)[2] == log.checkpoint(9) + line


def test_several_keys_for_one_log_and_a_key_name_other_than_the_origin(
    witness: tuple[Path, str], tmp_path: Path
) -> None:
    data, wkey = witness
    origin = "keys.example/log"
    first = Signer.from_key(generate_key("keys.example/old-key")[0])
    second = Signer.from_key(generate_key("keys.example/new-key")[0])
    run_cli("witness", "add-log", "--origin", origin, "--vkey", first.verifier_key, data=data)
    run_cli("witness", "add-log", "--origin", origin, "--vkey", second.verifier_key, data=data)
    listed = run_cli("witness", "logs", "--json", data=data).stdout.decode()
    assert first.verifier_key in listed and second.verifier_key in listed
    log = FakeLog(origin)
    log.append(6)

    def note(size: int, *signers: Signer) -> bytes:
        cp = Checkpoint(origin=origin, size=size, root_hash=log.tree.root(size))
        return sign_note(format_checkpoint(cp), *signers)

    with running_witness(data) as port:
        status, _, line = post(port, add_checkpoint_body(0, [], note(2, first)))
        assert status == 200
        opened = open_note(note(2, first) + line, [CosignatureVerifier.from_key(wkey)])
        assert opened.verified
        body = add_checkpoint_body(2, log.proof(2, 4), note(4, second))
        assert post(port, body)[0] == 200
        body = add_checkpoint_body(4, log.proof(4, 6), note(6, first, second))
        assert post(port, body)[0] == 200
        # A key it was not given is still refused.
        third = Signer.from_key(generate_key("keys.example/old-key")[0])
        assert post(port, add_checkpoint_body(6, [], note(6, third)))[0] == 403


def test_http_keep_alive_chunked_bodies_and_limits(witness: tuple[Path, str], log: FakeLog) -> None:
    data, _ = witness
    log.append(20)
    with running_witness(data) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            # Chunked bodies, several requests on one connection.
            old = 0
            for size in (5, 10, 20):
                body = log.request(old, size)
                chunks = iter([body[:7], body[7:50], body[50:]])
                conn.request(
                    "POST", "/add-checkpoint", body=chunks, encode_chunked=True,
                    headers={"Transfer-Encoding": "chunked"},
                )  # fmt: skip
                resp = conn.getresponse()
                assert resp.status == 200, resp.read()
                assert resp.read().startswith("— witness.test/w1 ".encode())
                old = size
            sock = conn.sock
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b"ok\n"
            assert conn.sock is sock  # the same connection all along
        finally:
            conn.close()
        # Too large: refused by its Content-Length, and while it streams.
        assert post(port, b"x" * (MAX_REQUEST + 1))[0] == 413
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"x" * 65536
            for _ in range(3):
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 413")
        assert _get(port, "/add-checkpoint")[0] == 405
        assert _get(port, "/healthz", "HEAD")[0] == 200


def test_the_log_side_client_keeps_its_connection(
    witness: tuple[Path, str], log: FakeLog, caplog: pytest.LogCaptureFixture
) -> None:
    data, wkey = witness
    log.append(30)
    with running_witness(data) as port:
        client = WitnessClient(f"http://127.0.0.1:{port}", wkey)
        try:
            lines = [client.cosign(log.checkpoint(n), n, log.proof) for n in (3, 10, 30)]
            assert all(lines) and client.size == 30
            assert len(client.http._open) == 1  # one connection carried all three
        finally:
            client.http.close()
    # The witness restarted: the client reconnects and resumes from the size it holds.
    log.append(5)
    with running_witness(data) as port:
        client = WitnessClient(f"http://127.0.0.1:{port}", wkey)
        try:
            with caplog.at_level(logging.WARNING):
                assert client.cosign(log.checkpoint(35), 35, log.proof) is not None
        finally:
            client.http.close()


def test_an_ml_dsa_44_witness_cosigns_and_both_clients_accept_it(tmp_path: Path) -> None:
    data = tmp_path / "pq-witness"
    out = run_cli("witness", "init", "--name", "pq.test/w", "--algorithm", "ml-dsa-44", data=data)
    wkey = out.stdout.decode().strip().splitlines()[-1]
    assert isinstance(CosignatureVerifier.from_key(wkey), MLDSA44CosignatureVerifier)
    log = FakeLog("pq.example/log")
    log.append(7)
    run_cli("witness", "add-log", "--origin", log.origin, "--vkey", log.vkey, data=data)
    with running_witness(data) as port:
        status, _, line = post(port, log.request(0, 3))
        assert status == 200 and len(line) > 3000
        signed = open_checkpoint(
            log.checkpoint(3) + line,
            Verifier.from_key(log.vkey),
            cosigners=[CosignatureVerifier.from_key(wkey)],
        )
        assert "pq.test/w" in signed.cosignatures
        client = WitnessClient(f"http://127.0.0.1:{port}", wkey)
        try:
            assert client.cosign(log.checkpoint(7), 7, log.proof) is not None
        finally:
            client.http.close()
        assert _get(port, _monitor_path(log.origin))[0] == 200


def test_verify_accepts_an_ml_dsa_44_witness_policy(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(300)).encode()
    run_cli("log", "append", "-", data=data, input=lines)
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=data)
    wdata = tmp_path / "pq"
    out = run_cli("witness", "init", "--name", "pq.test/w", "--algorithm", "ml-dsa-44", data=wdata)
    wkey = out.stdout.decode().split()[-1]
    note = (tiles / "checkpoint").read_bytes()
    origin = open_checkpoint(note, Verifier.from_key(vkey)).checkpoint.origin
    run_cli("witness", "add-log", "--origin", origin, "--vkey", vkey, data=wdata)
    verify = ("verify", "--source", str(tiles), "--vkey", vkey, "--witness", wkey, "--quorum", "1")
    assert run_cli(*verify, check=False).returncode == 1  # not cosigned yet
    with running_witness(wdata) as port:
        status, _, line = post(port, add_checkpoint_body(0, [], note))
        assert status == 200
    (tiles / "checkpoint").write_bytes(note + line)
    assert json.loads(run_cli(*verify, "--json").stdout)["cosigned_by"] == ["pq.test/w"]
