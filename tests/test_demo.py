"""`make demo`'s main job, run as the README says (scripts/demo.sh), with a smaller city."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, run_cli, wait_http

pytestmark = pytest.mark.heavy  # it builds its own city, with footage, as make demo does

SMALL = {"DEMO_CAMERAS": "40", "DEMO_DAYS": "1", "DEMO_REQUESTS": "12"}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body


def test_demo_builds_the_city_serves_it_prints_the_logins_and_verifies(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    env = {**os.environ, **SMALL, "PORT": str(port), "DEMO_DATA": str(data)}
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", timeout=280)
        vkey = (data / "keys" / "log.vkey").read_text().strip()
        run_cli("verify", "--vkey", vkey, "--source", f"{url}/log")
        # The registry is served: 43 cameras, one of them retired during the week.
        cams = json.loads(_get(url + "/fleet/cameras"))
        assert len(cams) == 42
        assert any(c["name"].startswith("Opera Theatre") for c in cams)
        # The recorder agents keep the city heard from while it is served.
        fed = run_cli("demo-feed", "--server", url, "--rounds", "1", data=data)
        line = fed.stdout.decode()
        assert re.search(r": (\d+) accepted, 0 refused", line), line
        assert int(re.search(r": (\d+) accepted", line).group(1)) >= 35  # type: ignore[union-attr]
        printed = (tmp_path / "demo.log").read_text()
        # Every printed login works: an investigator signs in with the password shown.
        m = re.search(r"^\s+ivan\s+(\S+)\s+investigator", printed, flags=re.M)
        assert m, printed
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        form = urllib.parse.urlencode({"name": "ivan", "password": m.group(1)})
        try:
            conn.request(
                "POST", "/login", body=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        assert resp.status in (302, 303)
        assert "custodes_session" in (resp.getheader("set-cookie") or "")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    printed = (tmp_path / "demo.log").read_text()
    assert f"{url}/" in printed and "verifier key" in printed and "custodes verify" in printed
    for role in ("admin", "operator", "investigator", "approver", "judge", "auditor"):
        assert re.search(rf"^\s+\S+\s+\S+\s+{role}\s", printed, flags=re.M), role
    m = re.search(r"set up in ([\d.]+) s", printed)
    assert m and float(m.group(1)) < 120
