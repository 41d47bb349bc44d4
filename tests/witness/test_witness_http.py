"""The witness over HTTP: every C2SP tlog-witness answer, and a split view refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from custodes.tlog import CosignatureVerifier, Verifier, open_checkpoint
from tests.conftest import run_cli
from tests.witness.helpers import FakeLog, add_checkpoint_body, post, running_witness


def _cosigned_by(log: FakeLog, wkey: str, note: bytes, line: bytes) -> dict[str, int]:
    signed = open_checkpoint(
        note + line, Verifier.from_key(log.vkey), cosigners=[CosignatureVerifier.from_key(wkey)]
    )
    return signed.cosignatures


def test_init_prints_vkey_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "w"
    out = run_cli("witness", "init", "--name", "w.test/one", data=data)
    vkey = out.stdout.decode().strip().splitlines()[-1]
    assert CosignatureVerifier.from_key(vkey).name == "w.test/one"
    again = run_cli("witness", "init", "--name", "w.test/one", data=data, check=False)
    assert again.returncode == 1
    assert b"never overwritten" in again.stderr
    assert (data / "witness.key").read_text().strip().startswith("PRIVATE+KEY+")


def test_add_log_refuses_what_is_not_a_key_and_a_key_it_has(
    witness: tuple[Path, str], log: FakeLog
) -> None:
    data, _ = witness
    out = run_cli(
        "witness", "add-log", "--origin", "x.example/log", "--vkey", "junk", data=data, check=False
    )
    assert out.returncode == 1 and b"Traceback" not in out.stderr
    again = run_cli(
        "witness", "add-log", "--origin", log.origin, "--vkey", log.vkey, data=data, check=False
    )
    assert again.returncode == 1 and b"already witnesses" in again.stderr
    listed = run_cli("witness", "logs", "--json", data=data).stdout.decode().splitlines()
    assert len(listed) == 1


def test_status_codes(witness: tuple[Path, str], log: FakeLog) -> None:
    data, wkey = witness
    log.append(10)
    with running_witness(data) as port:
        # 404: a log the witness does not witness.
        stranger = FakeLog("stranger.example/log")
        stranger.append(3)
        assert post(port, stranger.request(0))[0] == 404
        # 403: the right origin, signed by another key.
        impostor = FakeLog(log.origin)
        impostor.append(3)
        assert post(port, impostor.request(0))[0] == 403
        # 400: malformed, and old larger than the checkpoint.
        for bad in (
            b"",
            b"old 1",
            b"old 01\n\n" + log.checkpoint(),
            b"old x\n\n" + log.checkpoint(),
            b"old 0\nnot-base64\n\n" + log.checkpoint(),
            b"old 0\n\nnot a note",
        ):
            assert post(port, bad)[0] == 400, bad
        assert post(port, add_checkpoint_body(11, [], log.checkpoint(10)))[0] == 400
        # 200: the first checkpoint, from size 0.
        status, _, line = post(port, log.request(0, 4))
        assert status == 200
        assert line.startswith("— witness.test/w1 ".encode())
        assert set(_cosigned_by(log, wkey, log.checkpoint(4), line)) == {"witness.test/w1"}
        # 409: old is not the size the witness holds; it says which it holds.
        status, ctype, body = post(port, log.request(2, 10))
        assert (status, ctype, body) == (409, "text/x.tlog.size", b"4\n")
        # 422: a consistency proof that does not hold.
        proof = log.proof(4, 10)
        proof[0] = bytes(32)
        assert post(port, add_checkpoint_body(4, proof, log.checkpoint(10)))[0] == 422
        assert post(port, add_checkpoint_body(4, proof[:-1], log.checkpoint(10)))[0] == 422
        # 200 with a good proof; re-submitting the same checkpoint is cosigned again.
        assert post(port, log.request(4, 10))[0] == 200
        assert post(port, log.request(10, 10))[0] == 200
        # Other routes and methods.
        assert post(port, b"", path="/nowhere")[0] == 404
    listed = run_cli("witness", "logs", "--json", data=data).stdout.decode()
    assert '"size": 10' in listed


def test_split_view_is_refused(witness: tuple[Path, str], log: FakeLog) -> None:
    """Two checkpoints of one size, both signed by the log: only the first is cosigned."""
    data, wkey = witness
    log.append(5)
    evil = log.fork(3)
    evil.append(2, tag="evil")
    assert log.checkpoint(5) != evil.checkpoint(5)
    with running_witness(data) as port:
        status, _, line = post(port, log.request(0))
        assert status == 200
        assert _cosigned_by(log, wkey, log.checkpoint(), line)
        # The same size with another root: refused however it is asked.
        assert post(port, evil.request(0))[:3] == (409, "text/x.tlog.size", b"5\n")
        assert post(port, evil.request(5))[0] == 422
        # And a later checkpoint of the other history does not extend the cosigned one.
        evil.append(3, tag="evil")
        assert post(port, add_checkpoint_body(5, evil.proof(5), evil.checkpoint()))[0] == 422
        # The honest history goes on.
        log.append(3)
        assert post(port, log.request(5))[0] == 200


@pytest.mark.parametrize("size", [1, 256, 300])
def test_sizes_across_tiles(witness: tuple[Path, str], log: FakeLog, size: int) -> None:
    data, _ = witness
    log.append(size + 7)
    with running_witness(data) as port:
        assert post(port, log.request(0, size))[0] == 200
        assert post(port, log.request(size))[0] == 200
