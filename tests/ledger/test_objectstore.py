"""Publishing tiles to a real S3 store (SeaweedFS on loopback), and killing it mid-way."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from custodes.tlog import parse_entry_bundle, parse_hash_tile, parse_tile_path
from tests.conftest import run_cli

BUCKET = "tlog"


def _port_pair() -> int:
    """A port p with p and p + 10000 free (SeaweedFS puts gRPC at +10000)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p > 55000:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        return int(p)
    raise RuntimeError("no free port pair")


class SeaweedFS:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self._weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.ports = [_port_pair() for _ in range(4)]
        self.endpoint = f"http://127.0.0.1:{self.ports[3]}"
        self.cmd = [
            self._weed, "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-master.port={self.ports[0]}",
            f"-volume.port={self.ports[1]}", "-filer", f"-filer.port={self.ports[2]}",
            "-s3", f"-s3.port={self.ports[3]}",
        ]  # fmt: skip

    def start(self) -> None:
        """Start it and wait until a bucket can be written; retry on fresh ports.

        A port found free can be taken by another test before SeaweedFS binds it
        (its gRPC ports sit in the ephemeral range), so a server that exits or
        never answers is killed and started again elsewhere, up to three times.
        """
        for attempt in range(3):
            if attempt:
                self._pick_ports()
            if self._start_once(deadline=time.monotonic() + 60):
                return
            self.kill()
        tail = (self.root / "weed.log").read_bytes()[-2000:].decode(errors="replace")
        raise RuntimeError(f"SeaweedFS did not start in three tries; its log ends:\n{tail}")

    def _start_once(self, deadline: float) -> bool:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        with open(self.root / "weed.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:  # ready once a bucket can be made and written
                s3 = self.client()
                try:
                    s3.create_bucket(Bucket=BUCKET)
                except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                    pass
                s3.put_object(Bucket=BUCKET, Key="ready", Body=b"1")
                return True
            except Exception:
                time.sleep(0.3)
        return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="custodes",
                            aws_secret_access_key="custodes", region_name="us-east-1")  # fmt: skip


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[SeaweedFS]:
    sw = SeaweedFS(tmp_path / "seaweed")
    try:
        sw.start()
        yield sw
    finally:
        sw.kill()


def _lines(n: int, start: int = 0) -> bytes:
    return "".join(
        json.dumps({"s3": i, "pad": "x" * 40}) + "\n" for i in range(start, start + n)
    ).encode()


def test_published_bucket_verifies_and_grows_incrementally(
    seaweed: SeaweedFS, instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    target = f"s3://{BUCKET}/city?endpoint={seaweed.endpoint}"
    run_cli("log", "append", "-", data=data, input=_lines(1000))
    first = json.loads(run_cli("log", "publish", target, "--json", data=data).stdout)
    assert first["size"] == 1000 and first["previous_size"] == 0
    source = f"{seaweed.endpoint}/{BUCKET}/city"
    state = tmp_path / "state"
    run_cli("verify", "--vkey", vkey, "--source", source, "--state", str(state))
    run_cli("log", "append", "-", data=data, input=_lines(300, 1000))
    again = json.loads(run_cli("log", "publish", target, "--json", data=data).stdout)
    assert again["previous_size"] == 1000 and again["written"] < first["written"]
    res = run_cli("verify", "--vkey", vkey, "--source", source, "--state", str(state), "--json")
    assert json.loads(res.stdout)["size"] == 1300


def test_killing_the_store_mid_publish_leaves_no_half_tile(
    seaweed: SeaweedFS, instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    target = f"s3://{BUCKET}/k9?endpoint={seaweed.endpoint}"
    run_cli("log", "append", "-", data=data, input=_lines(120_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "custodes", "--data", str(data), "log", "publish", target],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    s3 = seaweed.client()
    deadline = time.monotonic() + 60  # kill it once it has begun writing (slow on a busy box)
    while time.monotonic() < deadline and proc.poll() is None:
        if s3.list_objects_v2(Bucket=BUCKET, Prefix="k9/tile/").get("KeyCount", 0) >= 3:
            break
        time.sleep(0.05)
    seaweed.kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, "publishing should fail when the store dies"
    assert b"Traceback" not in err and len(err.decode().strip().splitlines()) == 1
    seaweed.start()
    s3 = seaweed.client()
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="k9/")
        for o in page.get("Contents", [])
    ]
    assert keys, "some tiles were written before the kill"
    for key in keys:  # every object there is whole
        path = key.removeprefix("k9/")
        if path == "checkpoint":
            continue
        tile = parse_tile_path(path)
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if tile.level < 0:
            body = gzip.decompress(body)  # bundles are stored compressed
            assert len(parse_entry_bundle(body, tile.width)) == tile.width
        else:
            assert len(parse_hash_tile(body, tile.width)) == tile.width
    run_cli("log", "publish", target, data=data)
    res = run_cli("verify", "--vkey", vkey, "--source", f"{seaweed.endpoint}/{BUCKET}/k9", "--json")
    assert json.loads(res.stdout)["size"] == 120_000


def test_an_unreachable_store_is_one_sentence(instance: tuple[Path, str]) -> None:
    data, _ = instance
    out = run_cli("log", "publish", "s3://b/p?endpoint=http://127.0.0.1:9", data=data, check=False)
    assert out.returncode == 1 and b"Traceback" not in out.stderr
    try:
        urllib.request.urlopen("http://127.0.0.1:9", timeout=1)
    except (urllib.error.URLError, OSError):
        pass


def test_objects_carry_the_headers_serve_sends(
    seaweed: SeaweedFS, instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    target = f"s3://{BUCKET}/hdr?endpoint={seaweed.endpoint}"
    run_cli("log", "append", "-", data=data, input=_lines(600))
    run_cli("log", "publish", target, data=data)
    base = f"{seaweed.endpoint}/{BUCKET}/hdr/"
    expect = {
        "checkpoint": ("text/plain; charset=utf-8", "no-cache", None),
        "tile/0/000": ("application/octet-stream", "public, max-age=31536000, immutable", None),
        "tile/0/002.p/88": ("application/octet-stream", "public, max-age=86400", None),
        "tile/entries/001": (
            "application/octet-stream", "public, max-age=31536000, immutable", "gzip"
        ),
        "tile/entries/002.p/88": ("application/octet-stream", "public, max-age=86400", "gzip"),
    }  # fmt: skip
    for path, (kind, cache, coding) in expect.items():
        req = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            assert r.headers["Content-Type"] == kind, path
            assert r.headers["Cache-Control"] == cache, path
            assert r.headers.get("Content-Encoding") == coding, path
        if coding:
            width = parse_tile_path(path).width
            assert len(parse_entry_bundle(gzip.decompress(body), width)) == width
    # The verifier reads the compressed bucket.
    res = run_cli("verify", "--vkey", vkey, "--source", base, "--json")
    assert json.loads(res.stdout)["size"] == 600
