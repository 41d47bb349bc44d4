"""Witness, verifier and monitor together, on a real custodes log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from custodes.tlog import Checkpoint, Signer, Verifier, open_checkpoint, sign_checkpoint
from tests.conftest import run_cli
from tests.witness.helpers import add_checkpoint_body, post, running_witness


def _filled(data: Path, n: int) -> None:
    lines = "".join(json.dumps({"type": "test", "n": i}) + "\n" for i in range(n)).encode()
    run_cli("log", "append", "-", data=data, input=lines)


def test_verifier_with_a_witness_policy_refuses_a_split_view(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    _filled(data, 300)
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=data)
    wdata = tmp_path / "witness"
    wkey = run_cli("witness", "init", "--name", "w.test/1", data=wdata).stdout.decode().split()[-1]
    origin = open_checkpoint((tiles / "checkpoint").read_bytes(), Verifier.from_key(vkey))
    run_cli("witness", "add-log", "--origin", origin.checkpoint.origin, "--vkey", vkey, data=wdata)
    verify = ("verify", "--source", str(tiles), "--vkey", vkey, "--witness", wkey, "--quorum", "1")
    # (a) No cosignature yet: a verifier holding the policy refuses the log.
    out = run_cli(*verify, check=False)
    assert out.returncode == 1
    assert b"0 of the 1 witness cosignatures" in out.stderr
    honest = (tiles / "checkpoint").read_bytes()
    # A forged checkpoint: same size, another root, signed with the log's own key.
    signer = Signer.from_key((data / "keys" / "log.key").read_text().strip())
    cp = origin.checkpoint
    forged = sign_checkpoint(
        Checkpoint(origin=cp.origin, size=cp.size, root_hash=bytes(32)), signer
    )
    with running_witness(wdata) as port:
        # (b) The witness cosigns the first checkpoint ...
        status, _, line = post(port, add_checkpoint_body(0, [], honest))
        assert status == 200
        # ... and refuses the second.
        assert post(port, add_checkpoint_body(0, [], forged))[:3] == (
            409,
            "text/x.tlog.size",
            f"{cp.size}\n".encode(),
        )
        assert post(port, add_checkpoint_body(cp.size, [], forged))[0] == 422
    (tiles / "checkpoint").write_bytes(honest + line)
    ok = json.loads(run_cli(*verify, "--json").stdout)
    assert ok["cosigned_by"] == ["w.test/1"]
    state = tmp_path / "monitor.json"
    mon = (
        "monitor",
        "--source",
        str(tiles),
        "--vkey",
        vkey,
        "--state",
        str(state),
        "--once",
        "--witness",
        wkey,
    )
    assert run_cli(*mon).stdout == b""
    # (c) The split view, served to this verifier: refused for want of a cosignature.
    (tiles / "checkpoint").write_bytes(forged)
    out = run_cli(*verify, check=False)
    assert out.returncode == 1
    assert b"witness cosignatures" in out.stderr
    # (d) The monitor raises it with both checkpoints (and notes the missing cosignature).
    out = run_cli(*mon, check=False)
    assert out.returncode == 1
    alerts = {a["alert"]: a for a in map(json.loads, out.stdout.decode().splitlines())}
    assert set(alerts) == {"witness", "fork"}
    assert alerts["fork"]["evidence"] == {
        "old_checkpoint": (honest + line).decode(),
        "new_checkpoint": forged.decode(),
    }


@pytest.fixture
def typed(instance: tuple[Path, str]) -> tuple[Path, str]:
    _filled(instance[0], 300)
    return instance


def test_monitor_follows_a_served_log_and_reports_a_stall(
    typed: tuple[Path, str], server: tuple[str, Path, str], tmp_path: Path
) -> None:
    url, data, vkey = server
    state = tmp_path / "monitor.json"
    mon = ["monitor", "--source", url + "/log", "--vkey", vkey, "--state", str(state)]
    assert run_cli(*mon, "--once").stdout == b""
    assert json.loads(state.read_text())["size"] == 300
    # As a daemon: the log does not move, so a stall is raised once, as a JSON line.
    cmd = [sys.executable, "-m", "custodes", *mon, "--interval", "0.1", "--stall-after", "0.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        alert = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert alert["alert"] == "stall"
    assert alert["evidence"]["last_checkpoint"].startswith("test.custodes.example/log\n300\n")
