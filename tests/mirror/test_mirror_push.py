"""tlog-mirror's write API on a real ``custodes mirror serve``, driven as the spec's client would.

The requests are built here from the spec text alone: the add-checkpoint body
of tlog-witness, and the add-entries body (header, then 256-aligned packages
of u16-length entries, a u8 hash count and the subtree consistency proof, the
proof computed by a reference recursion written here from the draft's
definition, not by custodes).  The origin log is never reachable: the mirror
grows only by what is pushed to it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from custodes.tlog import (
    CosignatureVerifier,
    Verifier,
    generate_cosigner_key,
    generate_key,
    open_checkpoint,
)
from tests.conftest import free_port, run_cli, wait_http
from tests.witness.helpers import FakeLog, add_checkpoint_body

INFO = "text/x.tlog.mirror-info"


def _mth(d: list[bytes]) -> bytes:
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _subproof(start: int, end: int, d: list[bytes], known: bool = True) -> list[bytes]:
    n = len(d)
    if start == 0 and end == n:
        return [] if known else [_mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if end <= k:
        return _subproof(start, end, d[:k], known) + [_mth(d[k:])]
    if start >= k:
        return _subproof(start - k, end - k, d[k:], known) + [_mth(d[:k])]
    return _subproof(0, end - k, d[k:], False) + [_mth(d[:k])]


def _leaves(log: FakeLog) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + e).digest() for e in log.entries]


def _header(origin: str, start: int, end: int, ticket: bytes = b"") -> bytes:
    o = origin.encode()
    return (
        len(o).to_bytes(2, "big")
        + o
        + start.to_bytes(8, "big")
        + end.to_bytes(8, "big")
        + len(ticket).to_bytes(2, "big")
        + ticket
    )


def _packages(log: FakeLog, start: int, end: int, limit: int | None = None) -> bytes:
    """The canonical packages of [start, end) against the tree of ``end`` (the first ``limit``)."""
    leaves = _leaves(log)[:end]
    out = b""
    rounded = start - start % 256
    count = (-(-end // 256)) - rounded // 256
    for i in range(count if limit is None else min(count, limit)):
        lo, hi = max(start, rounded + i * 256), min(end, rounded + (i + 1) * 256)
        for e in log.entries[lo:hi]:
            out += len(e).to_bytes(2, "big") + e
        proof = _subproof(rounded + i * 256, hi, leaves)
        out += bytes([len(proof)]) + b"".join(proof)
    return out


def _post(
    port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        send = {"Content-Type": "application/octet-stream", **(headers or {})}
        conn.request("POST", path, body=body, headers=send)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[int, FakeLog, str]]:
    """``custodes mirror serve`` for a FakeLog whose origin server does not exist."""
    log = FakeLog("push.test.example/log")
    skey, vkey = generate_cosigner_key("mirror.test/push")
    port = free_port()
    args = ["mirror", "serve", "--log", f"http://127.0.0.1:{free_port()}/log",
            "--log-vkey", log.vkey, "--data", str(tmp_path / "mirror"), "--port", str(port),
            "--witness-key", skey, "--interval", "5"]  # fmt: skip
    with open(tmp_path / "mirror.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "custodes", *args], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield port, log, vkey
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_add_checkpoint_answers_as_a_witness_would(mirror: tuple[int, FakeLog, str]) -> None:
    port, log, _ = mirror
    log.append(300)
    # Unknown origin, bad signature, old beyond the checkpoint.
    other = FakeLog("elsewhere.example/log")
    other.append(3)
    assert _post(port, "/add-checkpoint", other.request(0))[0] == 404
    impostor = FakeLog(log.origin)  # same name, another key
    impostor.append(3)
    assert _post(port, "/add-checkpoint", impostor.request(0))[0] == 403
    assert _post(port, "/add-checkpoint", add_checkpoint_body(301, [], log.checkpoint()))[0] == 400
    assert _post(port, "/add-checkpoint", b"old x\n\nnonsense")[0] == 400
    # First checkpoint: accepted with an empty body.
    status, _, body = _post(port, "/add-checkpoint", log.request(0, 100))
    assert (status, body) == (200, b"")
    # A stale old size: 409 with the pending size.
    status, ctype, body = _post(port, "/add-checkpoint", log.request(0, 300))
    assert (status, ctype, body) == (409, "text/x.tlog.size", b"100\n")
    # A consistency proof that does not lead there: 422; a right one: 200.
    bad = add_checkpoint_body(100, log.proof(50, 300), log.checkpoint(300))
    assert _post(port, "/add-checkpoint", bad)[0] == 422
    fork = log.fork(50)  # the same key, another history after entry 50
    fork.append(250, tag="fork")
    assert _post(port, "/add-checkpoint", fork.request(100, 300))[0] == 422
    assert _post(port, "/add-checkpoint", log.request(100, 300))[0] == 200
    # The pending checkpoint does not make the mirror serve or cosign anything yet.
    assert _get(port, "/healthz") == (200, b"0\n")


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_add_entries_follows_the_spec_status_codes(
    mirror: tuple[int, FakeLog, str], tmp_path: Path
) -> None:
    port, log, mirror_vkey = mirror
    log.append(700)
    o = log.origin
    # No pending checkpoint yet: 422.
    assert _post(port, "/add-entries", _header(o, 0, 700) + _packages(log, 0, 700))[0] == 422
    assert _post(port, "/add-checkpoint", log.request(0, 700))[0] == 200
    # Unknown log: 404.  A truncated header: 400.  start > end: 400.  Wrong type: 400.
    assert _post(port, "/add-entries", _header("no.such/log", 0, 700))[0] == 404
    assert _post(port, "/add-entries", _header(o, 0, 700)[:-5])[0] == 400
    assert _post(port, "/add-entries", _header(o, 701, 700))[0] == 400
    status, _, body = _post(
        port, "/add-entries", _header(o, 0, 700), {"Content-Type": "text/plain"}
    )
    assert status == 400 and b"application/octet-stream" in body
    # upload_end not a pending checkpoint size, or upload_start past the next entry: 409 + info.
    status, ctype, body = _post(port, "/add-entries", _header(o, 0, 600) + _packages(log, 0, 600))
    assert (status, ctype, body) == (409, INFO, b"700\n0\n\n")
    status, ctype, body = _post(port, "/add-entries", _header(o, 10, 700))
    assert (status, ctype, body) == (409, INFO, b"700\n0\n\n")
    # The body ends inside the first package: 400, nothing saved.
    whole = _header(o, 0, 700) + _packages(log, 0, 700)
    assert _post(port, "/add-entries", whole[: len(_header(o, 0, 700)) + 50])[0] == 400
    # A package whose entries do not match the proof: 422.
    forged = FakeLog(o, skey=log.skey)
    forged.append(256, tag="forged")
    forged_pkg = _packages(forged, 0, 256, limit=1)
    real_proof = _subproof(0, 256, _leaves(log)[:700])
    entries = forged_pkg[: -(1 + 32 * len(_subproof(0, 256, _leaves(forged))))]
    body = _header(o, 0, 700) + entries + bytes([len(real_proof)]) + b"".join(real_proof)
    status, _, text = _post(port, "/add-entries", body)
    assert status == 422 and b"[0, 256)" in text
    # Too many proof hashes: 400.
    pkg = _packages(log, 0, 700, limit=1)
    assert (
        _post(port, "/add-entries", _header(o, 0, 700) + pkg[: -(1 + 32 * 2)] + b"\x40")[0] == 400
    )
    # A prefix (one package, gzip): 202 with the advanced next entry.
    status, ctype, body = _post(
        port, "/add-entries", gzip.compress(_header(o, 0, 700) + pkg), {"Content-Encoding": "gzip"}
    )
    assert (status, ctype, body) == (202, INFO, b"700\n256\n\n")
    # A damaged gzip body: 400.
    assert _post(port, "/add-entries", b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"})[0] == 400
    # The rest from the next entry, resending a few held entries: 200 and the mirror's cosignature.
    status, ctype, line = _post(
        port, "/add-entries", _header(o, 250, 700) + _packages(log, 250, 700)
    )
    assert status == 200, line
    signed = open_checkpoint(
        log.checkpoint(700) + line,
        Verifier.from_key(log.vkey),
        cosigners=[CosignatureVerifier.from_key(mirror_vkey)],
    )
    assert "mirror.test/push" in signed.cosignatures
    assert _get(port, "/healthz") == (200, b"700\n")
    # Once committed, an upload_end below the mirror checkpoint: 409.
    assert _post(port, "/add-checkpoint", log.request(700, 700))[0] == 200
    assert _post(port, "/add-entries", _header(o, 0, 256))[0] == 409
    # custodes verify reads the pushed copy, at the root and at the monitoring prefix.
    url = f"http://127.0.0.1:{port}"
    prefix = hashlib.sha256(o.encode()).hexdigest()
    for source in (url, f"{url}/{prefix}"):
        out = run_cli("verify", "--vkey", log.vkey, "--source", source, "--witness", mirror_vkey,
                      "--json")  # fmt: skip
        assert json.loads(out.stdout)["size"] == 700


def test_the_mirror_grows_and_cosigns_by_pushes_while_the_origin_is_down(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    _append(data, 0, 600)
    origin_port, mirror_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{origin_port}"
    mirror_url = f"http://127.0.0.1:{mirror_port}"
    skey, mirror_vkey = generate_cosigner_key("mirror.test/m")
    state = tmp_path / "verified"
    mirror_args = ["mirror", "serve", "--log", origin + "/log", "--log-vkey", vkey,
                   "--data", str(tmp_path / "mirror"), "--port", str(mirror_port),
                   "--witness-key", skey, "--interval", "0.1"]  # fmt: skip
    serve = ["--data", str(data), "serve", "--port", str(origin_port), "--interval", "0.1"]
    with _process(mirror_args, tmp_path / "mirror.log"):
        with _process(serve, tmp_path / "origin.log"):
            wait_http(origin + "/healthz")
            wait_http(mirror_url + "/healthz")
            _wait(mirror_port, 600)
        run_cli("verify", "--vkey", vkey, "--source", mirror_url, "--witness", mirror_vkey,
                "--state", str(state))  # fmt: skip
        # The origin is down; the log grows; an observer holding an export pushes it.
        _append(data, 600, 900)
        export = tmp_path / "export"
        run_cli("log", "export", str(export), data=data)
        out = run_cli("mirror", "push", "--mirror", mirror_url, "--source", str(export),
                      "--log-vkey", vkey, "--json")  # fmt: skip
        pushed = json.loads(out.stdout)
        assert pushed["size"] == 1500 and pushed["mirror_size_before"] == 600
        assert pushed["cosignature"].startswith("\u2014 mirror.test/m ")
        out = run_cli("verify", "--vkey", vkey, "--source", mirror_url, "--witness", mirror_vkey,
                      "--state", str(state), "--json")  # fmt: skip
        result = json.loads(out.stdout)
        assert result["size"] == 1500 and result["previous_size"] == 600
        # A copy signed by another key than the one given is refused, in one sentence.
        wrong = generate_key("test.custodes.example/log")[1]
        other = run_cli("mirror", "push", "--mirror", mirror_url, "--source", str(export),
                        "--log-vkey", wrong, check=False)  # fmt: skip
        assert other.returncode == 1 and other.stderr.decode().count("\n") == 1
    # Restarted (the origin still down), it serves what was pushed.
    with _process(mirror_args, tmp_path / "mirror.log"):
        wait_http(mirror_url + "/healthz")
        assert _get(mirror_port, "/healthz") == (200, b"1500\n")


def _append(data: Path, start: int, n: int) -> None:
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(start, start + n)).encode()
    run_cli("log", "append", "-", data=data, input=lines)


def _wait(port: int, size: int) -> None:
    import time

    deadline = time.monotonic() + 60
    while _get(port, "/healthz")[1] != f"{size}\n".encode():
        assert time.monotonic() < deadline
        time.sleep(0.1)


class _process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log

    def __enter__(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "custodes", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def test_two_clients_pushing_at_once_both_get_the_cosignature(
    mirror: tuple[int, FakeLog, str], tmp_path: Path
) -> None:
    port, log, mirror_vkey = mirror
    log.append(5000)
    export = tmp_path / "export"
    log.write_tiles(export)
    _write_hash_tiles(log, export)
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "custodes", "mirror", "push", "--mirror", url,
           "--source", str(export), "--log-vkey", log.vkey, "--json"]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["size"] == 5000
    out = run_cli("verify", "--vkey", log.vkey, "--source", url, "--witness", mirror_vkey,
                  "--json")  # fmt: skip
    assert json.loads(out.stdout)["size"] == 5000


def _write_hash_tiles(log: FakeLog, out: Path) -> None:
    """The hash tiles of the FakeLog's tree (write_tiles writes only bundles and checkpoint)."""
    from custodes.tlog import Tile, format_hash_tile, tile_path

    n = log.tree.size
    level = 0
    while n >> (8 * level) > 0:
        width_all = n >> (8 * level)
        for index in range(-(-width_all // 256)):
            w = min(256, width_all - index * 256)
            nodes = [(8 * level, index * 256 + j) for j in range(w)]
            path = out / tile_path(Tile(level=level, index=index, width=w))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(format_hash_tile(log.tree.read_hashes(nodes)))
        level += 1
