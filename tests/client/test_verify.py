"""The verifying client, in one process and spread over worker processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from custodes.client import verify as verify_module
from custodes.client.source import DirSource
from custodes.client.verify import verify_log
from custodes.errors import InconsistentLogError, ProofError
from custodes.ledger.instance import Instance
from custodes.ledger.publish import export_tiles
from custodes.tlog import Verifier


def _log(path: Path, origin: str, sizes: list[int]) -> tuple[Instance, list[Path]]:
    inst = Instance.init(path, origin=origin)
    exports = []
    n = 0
    with inst.open_log() as log:
        for k, size in enumerate(sizes):
            log.append(json.dumps({"n": n + i}).encode() for i in range(size))
            n += size
            log.integrate()
            out = path.parent / f"{path.name}-export-{k}"
            export_tiles(log, out)
            exports.append(out)
    return inst, exports


def _no_process_left(workers: int) -> None:
    raise BlockingIOError(11, "Resource temporarily unavailable")  # what fork() says then


@pytest.fixture(params=[1, 2, 0], ids=["one-process", "workers", "no-process-left"])
def workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(verify_module, "PARALLEL_MIN", 1000)
    monkeypatch.setattr(verify_module, "_BUNDLES_PER_TASK", 3)
    if request.param == 0:  # the pool cannot start: the same checks, in this process
        monkeypatch.setattr(verify_module, "_start_pool", _no_process_left)
        return 2
    return int(request.param)


def test_both_ways_agree_and_follow_the_log(tmp_path: Path, workers: int) -> None:
    inst, exports = _log(tmp_path / "a", "v.example/log", [5000, 3001, 70_000])
    v = Verifier.from_key(inst.verifier_key)
    state = tmp_path / "state"
    sizes = [verify_log(DirSource(e), v, state=state, workers=workers).size for e in exports]
    assert sizes == [5000, 8001, 78_001]


def test_a_tampered_tile_is_caught(tmp_path: Path, workers: int) -> None:
    inst, exports = _log(tmp_path / "a", "v.example/log", [9000])
    tile = exports[0] / "tile" / "0" / "020"
    raw = bytearray(tile.read_bytes())
    raw[100] ^= 0x40
    tile.write_bytes(bytes(raw))
    with pytest.raises(ProofError, match="020"):
        verify_log(DirSource(exports[0]), Verifier.from_key(inst.verifier_key), workers=workers)


def test_a_fork_is_caught_with_evidence(tmp_path: Path, workers: int) -> None:
    inst, exports = _log(tmp_path / "a", "v.example/log", [4321])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    twin = Instance.load(tmp_path / "b")
    with inst.open_log() as log:
        log.append([b'{"branch":"a"}'] * 3000)
        log.integrate()
        export_tiles(log, tmp_path / "ea")
    with twin.open_log() as log:
        log.append([b'{"branch":"b"}'] * 3000)
        log.integrate()
        export_tiles(log, tmp_path / "eb")
    v = Verifier.from_key(inst.verifier_key)
    state = tmp_path / "state"
    verify_log(DirSource(exports[0]), v, state=state, workers=workers)
    verify_log(DirSource(tmp_path / "ea"), v, state=state, workers=workers)
    with pytest.raises(InconsistentLogError) as info:
        verify_log(DirSource(tmp_path / "eb"), v, state=state, workers=workers)
    assert b"\n7321\n" in info.value.old_checkpoint and b"\n7321\n" in info.value.new_checkpoint
    assert info.value.old_checkpoint != info.value.new_checkpoint
