"""`make demo`'s main job, run as the README says, at its real size."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

from tests.conftest import REPO, free_port, run_cli, wait_http


def test_demo_makes_an_instance_serves_it_and_it_verifies(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    env = {**os.environ, "PORT": str(port), "DEMO_DATA": str(data)}
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            page = r.read().decode()
        assert "1000" in page and "custodes verify" in page
        vkey = (data / "keys" / "log.vkey").read_text().strip()
        run_cli("verify", "--vkey", vkey, "--source", f"http://127.0.0.1:{port}/log")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    printed = (tmp_path / "demo.log").read_text()
    assert f"http://127.0.0.1:{port}/" in printed and "verifier key" in printed
