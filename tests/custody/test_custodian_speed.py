"""A custodian's answer for a large release, over HTTP: every partial right, and cheap.

Real processes on loopback (a log server, a witness, three custodians, 2 of 3), with the
scene of ``benchmarks/custodian_bench.py``: segment records with real KEM ephemeral keys in
``segments.batch`` entries, and a logged release naming them.  The custodian computes its
partials on several threads (:mod:`custodes.custody.daemon.partials`); the gateway must
still get them in segment order, each one proving correct and opening the agent's key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.custodian_bench import Scene, cpu_s, scene

from custodes.custody.daemon import ask_custodians, open_segments, release_name
from custodes.custody.daemon.partials import MIN_CHUNK, WORKERS
from tests.custody.network import ORIGIN, Network, http, init_set, network

SEGMENTS = 600


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network(tmp_path_factory.mktemp("speed")) as n:
        init_set(n, n.root)
        yield n


@pytest.fixture(scope="module")
def big(net: Network) -> Scene:
    return scene(net, SEGMENTS, batch=250, per_release=SEGMENTS)


def test_a_600_segment_release_opens_every_segment_key_in_order(net: Network, big: Scene) -> None:
    assert SEGMENTS >= 2 * MIN_CHUNK  # large enough to be split across threads
    custody = net.custody()
    assert custody.current is not None
    got = ask_custodians(custody.current, json_body(big), timeout=120)
    assert not got.refused and not got.unreachable and not got.wrong, got
    assert len(got.partials) == 3
    name = release_name(ORIGIN, big.releases[0])
    opened = open_segments(custody, got, big.proofs[0], release=name)
    assert not got.wrong, got.wrong
    assert [o.key for o in opened] == big.keys


def test_a_custodian_spends_under_half_a_millisecond_of_cpu_a_segment(
    net: Network, big: Scene
) -> None:
    """>= 2,000 segments a second on one core, whatever the machine's load (CPU time)."""
    _, _, url, proc = net.custodians[0]
    assert proc.proc is not None
    pid = proc.proc.pid
    status, _ = http("POST", url + "/partials", json_body(big))  # warm: follow, rules
    assert status == 200
    before = cpu_s(pid)
    for _ in range(3):
        status, obj = http("POST", url + "/partials", json_body(big))
        assert status == 200 and len(obj["partials"]) == SEGMENTS
    per_segment_ms = 1000 * (cpu_s(pid) - before) / (3 * SEGMENTS)
    assert per_segment_ms < 0.5, f"{per_segment_ms:.3f} ms of CPU a segment ({WORKERS} threads)"


def json_body(s: Scene) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(s.bodies[0])
    return body


def test_a_bad_thread_count_is_refused_in_one_sentence(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "custodes", "--data", str(tmp_path / "c"), "custodian", "serve",
           "--port", "1", "--log", "http://127.0.0.1:1", "--log-vkey", "x"]  # fmt: skip
    env = {**os.environ, "CUSTODES_PARTIAL_THREADS": "0"}
    got = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    assert got.returncode != 0
    assert got.stderr.decode().strip() == (
        "custodes: CUSTODES_PARTIAL_THREADS must be a number from 1 to 64, not '0'."
    )
