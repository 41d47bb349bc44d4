"""Fixtures for the fleet: an instance with cameras and an agent, and a restartable server."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, run_cli, wait_http

DATA = Path(__file__).parent / "data"
FAST = {"interval_s": 1, "grace_s": 0.3, "silent_after": 2, "max_batch": 50}


class Server:
    """`custodes serve` in a subprocess that a test may kill and start again."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.data.parent / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "custodes",
                    "--data",
                    str(self.data),
                    "serve",
                    "--port",
                    str(self.port),
                    "--interval",
                    "0.1",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_http(self.url + "/healthz")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)  # reap it, or Popen.__del__ warns
            self.proc = None


def post(url: str, body: Any, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=20) as r:
        return json.loads(r.read())


@pytest.fixture
def fleet(instance: tuple[Path, str]) -> tuple[Path, str]:
    """An instance with fast intervals, the fixture's cameras and an agent: (data, token)."""
    data, _ = instance
    (data / "fleet.json").write_text(json.dumps(FAST))
    run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
    listed = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    cams = ",".join(c["id"] for c in listed)
    out = run_cli("agents", "add", "recorder-north-1", "--cameras", cams, data=data)
    token = out.stdout.decode().splitlines()[-1]
    return data, token


@pytest.fixture
def fleet_server(fleet: tuple[Path, str]) -> Iterator[tuple[Server, str]]:
    data, token = fleet
    srv = Server(data)
    srv.start()
    try:
        yield srv, token
    finally:
        srv.stop()
