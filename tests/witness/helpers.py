"""A log in memory for witness and monitor tests: signed checkpoints, proofs, tiles."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from custodes.tlog import (
    TILE_WIDTH,
    Checkpoint,
    MemoryTree,
    Signer,
    Tile,
    format_entry_bundle,
    generate_key,
    leaf_hash,
    sign_checkpoint,
    tile_path,
)
from tests.conftest import free_port, wait_http


class FakeLog:
    """A log whose entries and key the test controls; ``fork`` shares the key, not the future."""

    def __init__(self, origin: str = "test.example/log", *, skey: str | None = None) -> None:
        if skey is None:
            skey, self.vkey = generate_key(origin)
        self.skey = skey
        self.signer = Signer.from_key(skey)
        self.vkey = self.signer.verifier_key
        self.origin = origin
        self.entries: list[bytes] = []
        self.tree = MemoryTree()

    def append(self, n: int, tag: str = "a") -> None:
        for _ in range(n):
            entry = json.dumps({"type": "test", "n": len(self.entries), "tag": tag}).encode()
            self.append_raw(entry)

    def append_raw(self, entry: bytes) -> None:
        self.entries.append(entry)
        self.tree.append(leaf_hash(entry))

    def fork(self, size: int) -> FakeLog:
        """Another history, signed by the same key, sharing the first ``size`` entries."""
        other = FakeLog(self.origin, skey=self.skey)
        for e in self.entries[:size]:
            other.append_raw(e)
        return other

    def checkpoint(self, size: int | None = None) -> bytes:
        n = self.tree.size if size is None else size
        cp = Checkpoint(origin=self.origin, size=n, root_hash=self.tree.root(n))
        return sign_checkpoint(cp, self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.tree.size if new is None else new
        if old == 0 or old == new:
            return []
        return self.tree.prove_consistency(old, new)

    def request(self, old: int, new: int | None = None) -> bytes:
        return add_checkpoint_body(old, self.proof(old, new), self.checkpoint(new))

    def write_tiles(
        self, out: Path, size: int | None = None, checkpoint: bytes | None = None
    ) -> None:
        """Entry bundles and the checkpoint (what a monitor reads) into ``out``."""
        n = self.tree.size if size is None else size
        for i in range((n + TILE_WIDTH - 1) // TILE_WIDTH):
            chunk = self.entries[i * TILE_WIDTH : min(n, (i + 1) * TILE_WIDTH)]
            path = out / tile_path(Tile(level=-1, index=i, width=len(chunk)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(format_entry_bundle(chunk))
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoint").write_bytes(checkpoint or self.checkpoint(n))


def add_checkpoint_body(old: int, proof: list[bytes], note: bytes) -> bytes:
    lines = [f"old {old}".encode()] + [base64.b64encode(h) for h in proof]
    return b"\n".join(lines) + b"\n\n" + note


def post(port: int, body: bytes, path: str = "/add-checkpoint") -> tuple[int, str, bytes]:
    """(status, content type, body) of one POST on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def cosigned(note: bytes, line: bytes) -> bytes:
    """The note with the witness's cosignature line appended."""
    return note + line


def start_witness(
    data: Path, port: int | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``witness serve`` on loopback; its stderr goes to ``witness.log`` beside ``data``."""
    port = port or free_port()
    with open(data.parent / "witness.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "custodes",
                "--data",
                str(data),
                "witness",
                "serve",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_witness(data: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    proc, port = start_witness(data, env=env)
    try:
        yield port
    finally:
        stop(proc)
