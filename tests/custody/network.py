"""A log server, a witness and three custodians (2 of 3), as real processes on loopback."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custodes.access import entries as A
from custodes.access.policy import DEFAULT_POLICY
from custodes.access.sealing import Sealed
from custodes.custody import EpochPublic, SegmentId, encrypt_segment
from custodes.custody.daemon import CustodyLog, SegmentProof
from custodes.custody.daemon.entries import epoch_of, format_ms, now_ms
from custodes.records.canonical import canonicalize
from custodes.tlog import TILE_WIDTH, MemoryTree, leaf_hash
from tests.conftest import free_port, run_cli, wait_http

ORIGIN = "custody.test.example/log"


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return bytes(r.read())


class Proc:
    def __init__(self, args: list[str], log: Path, health: str) -> None:
        self.args, self.log, self.health = args, log, health
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "custodes", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                wait_http(self.health, timeout=0.5)
                return
            except OSError:
                code = self.proc.poll()
                assert code is None, f"{self.args[2:4]} exited {code}: see {self.log}"
                assert time.monotonic() < deadline, f"{self.args} never answered"

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Network:
    root: Path
    log_data: Path
    log_vkey: str
    url: str
    witness_vkey: str
    server: Proc
    witness: Proc
    custodians: list[tuple[Path, str, str, Proc]] = field(default_factory=list)  # dir, vkey, url

    def custody(self) -> CustodyLog:
        size = int(get_bytes(self.url + "/log/checkpoint").split(b"\n")[1])
        c = CustodyLog()
        for start in range(0, size, TILE_WIDTH):
            width = min(TILE_WIDTH, size - start)
            path = f"/log/tile/entries/{_index(start // TILE_WIDTH)}"
            path += f".p/{width}" if width < TILE_WIDTH else ""
            bundle = get_bytes(self.url + path)
            for k, e in enumerate(_entries(bundle)):
                c.feed(start + k, json.loads(e))
        return c

    def append_offline(self, objs: list[dict[str, Any]]) -> int:
        """Stop the server, append, restart it: the first index."""
        self.server.stop()
        lines = b"".join(canonicalize(o) + b"\n" for o in objs)
        out = run_cli("log", "append", "-", data=self.log_data, input=lines)
        self.server.start()
        return int(out.stdout.split()[0])

    def wait_size(self, size: int, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            try:
                note = get_bytes(self.url + "/log/checkpoint")
                if int(note.split(b"\n")[1]) >= size:
                    return note
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the log never reached size {size}"
            time.sleep(0.2)

    def entry(self, index: int) -> bytes:
        return get_bytes(f"{self.url}/log/entry/{index}")

    def proof(self, index: int, size: int) -> list[bytes]:
        _, obj = http("GET", f"{self.url}/log/proof/inclusion?index={index}&size={size}")
        return [base64.b64decode(p) for p in obj["proof"]]


def _index(n: int) -> str:
    s = f"{n:03d}"
    parts: list[str] = []
    while len(s) > 3:
        parts.insert(0, s[-3:])
        s = s[:-3]
    parts.insert(0, s.zfill(3))
    return "/".join(("x" + p if i < len(parts) - 1 else p) for i, p in enumerate(parts))


def _entries(bundle: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(bundle):
        n = int.from_bytes(bundle[i : i + 2], "big")
        out.append(bundle[i + 2 : i + 2 + n])
        i += 2 + n
    return out


@contextmanager
def network(root: Path, *, deadline: int = 3) -> Iterator[Network]:
    log_data = root / "log"
    log_vkey = run_cli("init", "--origin", ORIGIN, data=log_data).stdout.decode().split()[-1]
    wdata = root / "witness"
    wkey = run_cli("witness", "init", "--name", "w1.test.example/w", data=wdata)
    witness_vkey = wkey.stdout.decode().split()[-1]
    run_cli("witness", "add-log", "--origin", ORIGIN, "--vkey", log_vkey, data=wdata)
    wport = free_port()
    run_cli(
        "log", "witnesses", "add", f"http://127.0.0.1:{wport}", "--vkey", witness_vkey,
        data=log_data,
    )  # fmt: skip
    # The witness needs a non-empty tree: one entry before serving.
    run_cli("log", "append", "-", data=log_data, input=b'{"type":"test.start"}\n')
    logs = root / "procs.log"
    witness = Proc(
        ["--data", str(wdata), "witness", "serve", "--host", "127.0.0.1", "--port", str(wport)],
        logs,
        f"http://127.0.0.1:{wport}/healthz",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(
        ["--data", str(log_data), "serve", "--port", str(port), "--interval", "0.1"],
        logs,
        url + "/healthz",
    )
    net = Network(root, log_data, log_vkey, url, witness_vkey, server, witness)
    try:
        witness.start()
        server.start()
        net.wait_size(1)
        for k in range(1, 4):
            cdir = root / f"c{k}"
            out = run_cli("custodian", "init", "--name", f"c{k}.test.example", data=cdir)
            vkey = out.stdout.decode().strip().splitlines()[-1]
            cport = free_port()
            curl = f"http://127.0.0.1:{cport}"
            proc = Proc(
                [
                    "--data", str(cdir), "custodian", "serve", "--port", str(cport),
                    "--log", url, "--log-vkey", log_vkey, "--witness", witness_vkey,
                    "--quorum", "1", "--interval", "0.2",
                ],
                root / f"c{k}.log",
                curl + "/healthz",
            )  # fmt: skip
            proc.start()
            net.custodians.append((cdir, vkey, curl, proc))
        yield net
    finally:
        for _, _, _, p in net.custodians:
            p.stop()
        server.stop()
        witness.stop()


def wait_ready(net: Network, epochs: list[str], timeout: float = 90) -> CustodyLog:
    deadline = time.monotonic() + timeout
    while True:
        c = net.custody()
        if all(c.epoch_public(e) is not None for e in epochs):
            return c
        assert time.monotonic() < deadline, f"epochs never ready: {c.status()}"
        time.sleep(0.3)


@dataclass
class Footage:
    records: list[bytes]
    plain: list[bytes]
    cipher: list[bytes]
    batch: dict[str, Any]


def record_segments(public: EpochPublic, n: int, t0_ms: int) -> Footage:
    records, plain, cipher = [], [], []
    for k in range(n):
        data = bytes([65 + k % 26]) * (100_000 + k)
        start = format_ms(t0_ms + 10_000 * k).replace(".000Z", "Z")
        seg = SegmentId(epoch=public.epoch, camera="cam-n1", start=start)
        out = io.BytesIO()
        sealed = encrypt_segment(io.BytesIO(data), out, public, seg)
        rec = {
            "camera": "cam-n1",
            "start": start,
            "duration": 10.0,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "epoch": public.epoch,
            "ephemeral": base64.b64encode(sealed.ephemeral.encode()).decode(),
            "ciphertext_sha256": hashlib.sha256(out.getvalue()).hexdigest(),
        }
        records.append(canonicalize(rec))
        plain.append(data)
        cipher.append(out.getvalue())
    root = MemoryTree(leaf_hash(r) for r in records).root()
    batch = {"type": "segments.batch", "v": 2, "time": format_ms(now_ms()), "batch": 1,
             "count": n, "root": root.hex(), "agent": None}  # fmt: skip
    return Footage(records, plain, cipher, batch)


def sealed_request(
    public: EpochPublic, rid: str, cameras: list[str], from_ms: int, to_ms: int
) -> Sealed:
    """A request's details (its cameras and window) sealed to the custodians."""
    from custodes.access.sealing import seal_to_custodians
    from custodes.fleet.model import format_time

    details = {"request": rid, "case": f"CASE-{rid}", "cameras": cameras,
               "from": format_time(from_ms), "to": format_time(to_ms)}  # fmt: skip
    return seal_to_custodians(public, rid, details)


def with_seal(entry: dict[str, Any], sealed: Sealed | None) -> dict[str, Any]:
    """An ``access.requested`` that commits to ``sealed`` and logs its ephemeral key."""
    if sealed is not None:
        entry["commitment"], entry["sealed"] = sealed.commitment, sealed.logged
    return entry


def scope_details(
    net: Network, note: bytes, cause: int, request: int, size: int, sealed: Sealed
) -> dict[str, Any]:
    """What ``POST /partials`` carries for the scope check: the sealed details and every
    custodian's partial of them, asked for the release at ``cause`` (each encrypted to each
    custodian: none is given in the clear for a release)."""
    from custodes.custody.daemon.client import ask_custodians, details_request

    body = details_request(
        note, (cause, net.entry(cause), net.proof(cause, size)),
        (request, net.entry(request), net.proof(request, size)),
    )  # fmt: skip
    cset = net.custody().current
    assert cset is not None
    got = ask_custodians(cset, body, timeout=30, path="/details-partials")
    assert not got.refused and not got.unreachable and not got.partials, got
    return {"sealed": base64.b64encode(sealed.ciphertext).decode(), "relay": got.relayed}


def release_entries(
    digests: list[str], t_ms: int, sealed: Sealed | None = None
) -> list[dict[str, Any]]:
    """Users, a policy, a request (its details ``sealed`` to the custodians, if given), its
    approval and its release: the public rules hold."""
    ivan, anna = "u-" + "1" * 16, "u-" + "2" * 16
    return [
        A.user_added(ivan, "investigator", "all", t_ms),
        A.user_added(anna, "approver", "all", t_ms),
        A.policy_changed(1, DEFAULT_POLICY, t_ms),
        with_seal(
            A.access_requested(
                "r-1",
                "ab" * 32,
                ivan,
                "investigation",
                cameras=1,
                districts=["north"],
                window_s=60,
                sensitive=False,
                approvals=1,
                judge=False,
                policy_version=1,
                now_ms=t_ms,
            ),
            sealed,
        ),  # fmt: skip
        A.access_approved(
            "r-1",
            anna,
            "approver",
            expires_ms=t_ms + 86_400_000,
            unredacted=False,
            complete=True,
            reason="ok",
            now_ms=t_ms + 1,
        ),  # fmt: skip
        A.access_released("r-1", ivan, digests, {"method": "none"}, "cd" * 32, 10, t_ms + 2),
        # A release nobody requested: breaks the public rules.
        A.access_released("r-9", ivan, digests, {"method": "none"}, "cd" * 32, 10, t_ms + 3),
    ]


def segment_proofs(net: Network, f: Footage, batch_index: int, size: int) -> list[SegmentProof]:
    tree = MemoryTree(leaf_hash(r) for r in f.records)
    return [
        SegmentProof(
            record=r,
            position=k,
            proof=tree.prove_inclusion(k),
            batch_index=batch_index,
            batch_entry=net.entry(batch_index),
            batch_proof=net.proof(batch_index, size),
        )
        for k, r in enumerate(f.records)
    ]


def today() -> str:
    return epoch_of(now_ms())


def init_set(net: Network, tmp: Path) -> dict[str, Any]:
    """custody init --propose, each custodian's sign-set, custody init with the signatures."""
    specs = []
    for _, vkey, url, _ in net.custodians:
        specs += ["--custodian", f"{vkey}@{url}"]
    base = ["custody", "init", "--threshold", "2", *specs, "--server", net.url]
    base += ["--dkg-deadline", "3"]
    proposed = run_cli(*base, "--propose", data=net.log_data).stdout
    (tmp / "set.json").write_bytes(proposed)
    sigs: list[str] = []
    for cdir, _, _, _ in net.custodians:
        out = run_cli("custodian", "sign-set", str(tmp / "set.json"), data=cdir)
        sigs += ["--signature", out.stdout.decode()]
    body: dict[str, Any] = json.loads(proposed)
    short = run_cli(*base, "--time", body["time"], *sigs[:4], data=net.log_data, check=False)
    assert short.returncode == 1 and b"signed by all it names" in short.stderr
    run_cli(*base, "--time", body["time"], *sigs, data=net.log_data)
    return body
