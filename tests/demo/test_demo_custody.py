"""`make demo` under custody: three local custodians (2 of 3), each its own process and
folder apart from the operator's data, the set and today's epoch key in the log, and a few
seconds recorded through a real agent that leave only ciphertext in the archive."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, run_cli, wait_http

pytestmark = pytest.mark.heavy  # it builds its own city, as make demo does

SMALL = {"DEMO_CAMERAS": "40", "DEMO_DAYS": "1", "DEMO_REQUESTS": "12"}


def test_demo_runs_three_custodians_and_records_under_custody(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    cust = tmp_path / "custodians"
    env = {**os.environ, **SMALL, "PORT": str(port), "DEMO_DATA": str(data),
           "DEMO_CUSTODIANS": str(cust)}  # fmt: skip
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", timeout=280)
        deadline = time.monotonic() + 240
        while not (cust / "recorded").exists():
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
            time.sleep(1)
        st = json.loads(run_cli("custody", "status", "--server", url, "--json").stdout)
        assert st["custody"] is True and st["set"]["threshold"] == 2
        assert [c["url"] for c in st["set"]["custodians"]] == [
            f"http://127.0.0.1:{port + k}" for k in (1, 2, 3)
        ]
        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert any(e["epoch"] == today and e["state"] == "ready" for e in st["epochs"])
        # The custodians' keys live apart from the operator's data directory.
        assert not list(data.rglob("state.json")) and all(
            (cust / f"c{k}").is_dir() for k in (1, 2, 3)
        )
        sealed = list((data / "archive").rglob("*.mp4.enc"))
        assert len(sealed) >= 2, sealed
        printed = (tmp_path / "demo.log").read_text()
        assert "3 custodians, 2 of 3" in printed and "recorded 6 s under custody" in printed
        home = urllib.request.urlopen(url + "/", timeout=10).read().decode()
        assert "stored unencrypted" not in home
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    # Each custodian stops with the server.
    deadline = time.monotonic() + 15
    for k in (1, 2, 3):
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port + k}/healthz", timeout=1)
            except OSError:
                break
            assert time.monotonic() < deadline, f"custodian {k} still runs"
            time.sleep(0.5)
