"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Nearly every test starts Python processes (the CLI, servers, agents).  Where the
# environment sets PYTHONDONTWRITEBYTECODE, each of them compiled all of custodes from
# source again (`custodes --help` took twice the CPU); the suite lets them keep the
# compiled modules (in the __pycache__ folders git ignores) and reuse them.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def run_cli(
    *args: str,
    data: Path | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run the custodes CLI in a subprocess, as a user would."""
    cmd = [sys.executable, "-m", "custodes"]
    if data is not None:
        cmd += ["--data", str(data)]
    cmd += list(args)
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def instance(tmp_path: Path) -> tuple[Path, str]:
    """A fresh instance on the embedded store: (data dir, verifier key)."""
    data = tmp_path / "data"
    out = run_cli("init", "--origin", "test.custodes.example/log", data=data)
    return data, out.stdout.decode().strip().splitlines()[-1]


@pytest.fixture
def server(instance: tuple[Path, str]) -> Iterator[tuple[str, Path, str]]:
    """`custodes serve` on a free loopback port: (base URL, data dir, vkey)."""
    data, vkey = instance
    port = free_port()
    log = open(data.parent / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "custodes",
            "--data",
            str(data),
            "serve",
            "--port",
            str(port),
            "--interval",
            "0.1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield url, data, vkey
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked ``heavy`` (minutes each) are spread over the first half of the run.

    ``make test`` hands out whole files to four workers in this order
    (``--dist loadfile --no-loadscope-reorder``).  A heavy file handed out last leaves
    one worker running it alone at the end; all of them handed out first build their
    cities at once on two cores, and each then takes several times as long as alone
    (past its timeout, in one run).  So the first starts the run and the others follow
    at even steps through the first half of the other files.
    """
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    heavy = [f for f, its in files.items() if any(i.get_closest_marker("heavy") for i in its)]
    order = [f for f in files if f not in heavy]
    step = len(order) // 2 / max(len(heavy), 1)
    for k, f in enumerate(heavy):
        order.insert(round(k * step) + k, f)
    items[:] = [item for f in order for item in files[f]]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback only: never route test traffic through a proxy.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("CUSTODES_TEST", "1")
