"""``custodes mirror serve`` against a real ``custodes serve`` origin, both as subprocesses."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from custodes.tlog import generate_cosigner_key
from tests.conftest import free_port, run_cli, wait_http


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "custodes", *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _origin(data: Path, port: int) -> list[str]:
    return ["--data", str(data), "serve", "--port", str(port), "--interval", "0.1"]


def _size(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
        return int(r.read())


def _wait_size(url: str, size: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _size(url) < size:
        assert time.monotonic() < deadline, f"the mirror stayed at {_size(url)}, not {size}"
        time.sleep(0.1)


def _append(data: Path, start: int, n: int) -> None:
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(start, start + n)).encode()
    run_cli("log", "append", "-", data=data, input=lines)


def test_the_mirror_serves_and_cosigns_while_the_origin_is_down(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    _append(data, 0, 1000)
    origin_port, mirror_port = free_port(), free_port()
    origin_url = f"http://127.0.0.1:{origin_port}"
    mirror_url = f"http://127.0.0.1:{mirror_port}"
    skey, mirror_vkey = generate_cosigner_key("mirror.test.example")
    mirror_args = [
        "mirror", "serve", "--log", origin_url + "/log", "--log-vkey", vkey,
        "--data", str(tmp_path / "mirror"), "--port", str(mirror_port),
        "--witness-key", skey, "--interval", "0.1",
    ]  # fmt: skip
    state = tmp_path / "verified"
    with _process(mirror_args, tmp_path / "mirror.log"):
        with _process(_origin(data, origin_port), tmp_path / "origin.log"):
            wait_http(origin_url + "/healthz")
            wait_http(mirror_url + "/healthz")
            _wait_size(mirror_url, 1000)
        # The origin is down; the mirror still serves its copy, cosigned.
        time.sleep(0.5)
        ok = run_cli(
            "verify", "--vkey", vkey, "--source", mirror_url, "--witness", mirror_vkey,
            "--state", str(state), "--json",
        )  # fmt: skip
        result = json.loads(ok.stdout)
        assert result["size"] == 1000
        prefix = hashlib.sha256(b"test.custodes.example/log").hexdigest()
        ok = run_cli(
            "verify", "--vkey", vkey, "--source", f"{mirror_url}/{prefix}",
            "--witness", mirror_vkey, "--json",
        )  # fmt: skip
        assert json.loads(ok.stdout)["size"] == 1000
        with urllib.request.urlopen(mirror_url + "/checkpoint", timeout=5) as r:
            assert "\u2014 mirror.test.example " in r.read().decode()

        # The origin comes back with more; the mirror follows, then serves alone again.
        _append(data, 1000, 700)
        with _process(_origin(data, origin_port), tmp_path / "origin.log"):
            wait_http(origin_url + "/healthz")
            _wait_size(mirror_url, 1700)
        ok = run_cli(
            "verify", "--vkey", vkey, "--source", mirror_url, "--witness", mirror_vkey,
            "--state", str(state), "--json",
        )  # fmt: skip
        result = json.loads(ok.stdout)
        assert result["size"] == 1700 and result["previous_size"] == 1000

    # Restarted with the origin still down, the mirror serves what it holds.
    with _process(mirror_args, tmp_path / "mirror.log"):
        wait_http(mirror_url + "/healthz")
        assert _size(mirror_url) == 1700
        run_cli("verify", "--vkey", vkey, "--source", mirror_url, "--witness", mirror_vkey)
