"""Recording under custody: a real agent beside real ffmpeg, a log with real custodians.

The agent encrypts every segment to its day's epoch key (learnt from the log's custody
entries, checked against verified checkpoints), so the operator's data directory holds
ciphertext only: no 64-byte run from the middle of any recorded file is anywhere in it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from custodes.custody.daemon.custodian import CustodianDir
from custodes.custody.kem import SegmentId, combine, partial_decrypt
from custodes.custody.stream import MAGIC, decrypt_stream, read_header
from tests.conftest import run_cli
from tests.custody.network import init_set, network, today, wait_ready
from tests.fleet.conftest import DATA, FAST

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")


def _record(folder: Path, seconds: int, src: str) -> list[Path]:
    assert FFMPEG is not None
    folder.mkdir(parents=True)
    subprocess.run(
        [
            FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", f"{src}=size=320x240:rate=10",
            "-t", str(seconds), "-g", "10", "-c:v", "libx264", "-preset", "ultrafast",
            "-f", "segment", "-segment_time", "1", "-reset_timestamps", "1",
            str(folder / "%03d.mp4"),
        ],
        check=True,
        env={**os.environ, "TZ": "UTC"},
        timeout=60,
    )  # fmt: skip
    return sorted(folder.glob("*.mp4"))


def _agent(rec: Path, url: str, token: str, journal: Path, *extra: str, code: int = 0) -> str:
    out = subprocess.run(
        [
            sys.executable, "-m", "custodes", "agent", "--watch", str(rec), "--server", url,
            "--token", token, "--journal", str(journal), "--settle", "0", "--once",
            "--max-backoff", "2", *extra,
        ],
        capture_output=True,
        timeout=180,
    )  # fmt: skip
    assert out.returncode == code, out.stdout + out.stderr
    return out.stdout.decode() + out.stderr.decode()


def _middles(files: list[Path]) -> list[bytes]:
    """64-byte runs from the middle of each file (and a quarter and three quarters in)."""
    runs = []
    for f in files:
        blob = f.read_bytes()
        for at in (len(blob) // 4, len(blob) // 2, 3 * len(blob) // 4):
            runs.append(blob[at : at + 64])
    return runs


def _grep(root: Path, runs: list[bytes]) -> list[str]:
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            blob = p.read_bytes()
            found += [f"{p}: run {k}" for k, r in enumerate(runs) if r in blob]
    return found


def _fleet(data: Path) -> str:
    (data / "fleet.json").write_text(json.dumps(FAST))
    run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
    out = run_cli("agents", "add", "rec-1", "--cameras", "MSK-0001,MSK-0002", data=data)
    return out.stdout.decode().splitlines()[-1]


def test_agent_stores_ciphertext_only_and_the_records_carry_custody(tmp_path: Path) -> None:
    with network(tmp_path / "net") as net:
        init_set(net, tmp_path)
        epoch = today()
        custody = wait_ready(net, [epoch])
        public = custody.epoch_public(epoch)
        assert public is not None
        net.server.stop()  # the fleet's set-up writes the log directly
        token = _fleet(net.log_data)
        net.server.start()

        # Two recorders: one agent follows verified checkpoints, the other reads the
        # entries as served (custodians' signatures still checked), and says so.
        one_files = _record(tmp_path / "rec1" / "MSK-0001", 3, "testsrc")
        two_files = _record(tmp_path / "rec2" / "MSK-0002", 2, "testsrc2")
        files = one_files + two_files
        assert len(files) >= 4
        plain = {f: f.read_bytes() for f in files}
        pins = [a for _, vkey, _, _ in net.custodians for a in ("--custodian", vkey)]
        journal = tmp_path / "agent" / "agent.db"
        said = _agent(tmp_path / "rec1", net.url, token, journal, "--log-vkey", net.log_vkey, *pins)
        assert f"archived {len(one_files)}" in said and "without --log-vkey" not in said
        journal2 = tmp_path / "agent2" / "agent.db"
        # Trusting only two of the three custodians, the agent seals nothing: it waits.
        said = _agent(tmp_path / "rec2", net.url, token, journal2, *pins[:4], code=1)
        assert "not given with --custodian (c3.test.example)" in said, said
        assert "archived 0" in said and not (net.log_data / "archive" / "MSK-0002").exists()
        said = _agent(tmp_path / "rec2", net.url, token, journal2)
        assert f"archived {len(two_files)}" in said and "without --log-vkey" in said
        # The recorder's files are untouched, and the agents' spools are empty again.
        assert {f: f.read_bytes() for f in files} == plain
        for j in (journal, journal2):
            assert list(j.with_name(j.name + ".sealed").glob("*.enc")) == []

        data = net.log_data
        # (1) The archive holds one ciphertext per segment, for today's epoch, 0600; no MP4.
        archived = sorted(p for p in (data / "archive").rglob("*") if p.is_file())
        assert archived and all(p.name.endswith(".mp4.enc") for p in archived), archived
        assert len(archived) == len(files)
        for p in archived:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600
            with open(p, "rb") as f:
                assert f.read(len(MAGIC)) == MAGIC
                f.seek(0)
                assert read_header(f).epoch == epoch

        # (2) No plaintext anywhere in the data directory: archive, databases, keys.
        assert _grep(data, _middles(files)) == []

        # (3) Each record: the plaintext's digest and size, and epoch, ephemeral, ciphertext.
        db = sqlite3.connect(f"file:{data / 'fleet.db'}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT s.camera, s.sha256, s.bytes, s.record, s.epoch, s.ephemeral,"
                " s.cipher_sha256, s.cipher_bytes, b.log_index FROM segments s"
                " JOIN batches b ON b.id = s.batch"
            ).fetchall()
        finally:
            db.close()
        by_plain = {hashlib.sha256(b).hexdigest(): (f, b) for f, b in plain.items()}
        by_cipher = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in archived}
        assert len(rows) == len(files)
        batches = set()
        for cam, sha, size, record, ep, eph, csha, csize, index in rows:
            f, b = by_plain[sha]
            assert cam == f.parent.name and size == len(b)
            rec_obj = json.loads(record)
            assert set(rec_obj) == {
                "camera", "start", "duration", "bytes", "sha256", "epoch", "ephemeral",
                "ciphertext",
            }  # fmt: skip
            assert rec_obj["epoch"] == ep == epoch and rec_obj["ephemeral"] == eph
            assert rec_obj["ciphertext"] == {"sha256": csha, "bytes": csize}
            assert len(base64.b64decode(eph, validate=True)) == 32
            cipher = by_cipher[csha]
            assert cipher.stat().st_size == csize
            with open(cipher, "rb") as fh:
                assert base64.b64encode(read_header(fh).ephemeral.encode()).decode() == eph
            batches.add(index)
            # Two custodians' shares open it to exactly the recorded file.
            seg = SegmentId(epoch=epoch, camera=cam, start=rec_obj["start"])
            with open(cipher, "rb") as fh:
                header = read_header(fh)
                shares = [
                    CustodianDir.load(cdir).state.shares[epoch]
                    for cdir, _, _, _ in net.custodians[:2]
                ]
                parts = [partial_decrypt(s, header.ephemeral, seg) for s in shares]
                key = combine(public, parts, header.ephemeral, seg).key
                out = io.BytesIO()
                decrypt_stream(fh, out, key=key, segment=str(seg), header=header)
            assert out.getvalue() == b
        for index in batches:
            entry = json.loads(net.entry(index))
            assert entry["type"] == "segments.batch" and entry["v"] == 3
            assert entry["encrypted"] == entry["count"]

        # (4) verify-footage: the ciphertext passes, saying its epoch; a flipped bit fails.
        one = archived[0]
        cam = one.parts[-3]
        ok = run_cli("fleet", "verify-footage", str(one), "--camera", cam, "--json", data=data,
                     check=False)  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        rep = json.loads(ok.stdout)
        assert rep["ok"] and rep["segment"]["verified"]
        assert rep["encrypted"] == {"epoch": epoch}
        assert f"encrypted for epoch {epoch}" in rep["result"]
        remote = run_cli("fleet", "verify-footage", str(one), "--camera", cam,
                         "--server", net.url, data=data, check=False)  # fmt: skip
        assert remote.returncode == 0 and f"epoch {epoch}".encode() in remote.stdout
        original = next(f for f in files if f.parent.name == cam)
        plain_ok = run_cli("fleet", "verify-footage", str(original), "--camera", cam, data=data,
                           check=False)  # fmt: skip
        assert plain_ok.returncode == 0, plain_ok.stdout
        flipped = tmp_path / "flipped.enc"
        blob = bytearray(one.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        flipped.write_bytes(bytes(blob))
        bad = run_cli("fleet", "verify-footage", str(flipped), "--camera", cam, data=data,
                      check=False)  # fmt: skip
        assert bad.returncode == 1
        assert f"ciphertext for epoch {epoch}".encode() in bad.stdout
        assert b"differs from the segment" in bad.stdout


def test_without_custody_the_agent_records_plaintext_as_before(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    from tests.fleet.conftest import Server

    data, token = fleet
    rec = tmp_path / "rec"
    files = _record(rec / "MSK-0001", 2, "testsrc")
    srv = Server(data)
    srv.start()
    try:
        said = _agent(rec, srv.url, token, tmp_path / "agent.db")
    finally:
        srv.stop()
    assert f"archived {len(files)}" in said and "custody" not in said
    archived = sorted(p for p in (data / "archive").rglob("*") if p.is_file())
    assert sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in archived) == sorted(
        hashlib.sha256(f.read_bytes()).hexdigest() for f in files
    )
    assert all(p.suffix == ".mp4" for p in archived)
    db = sqlite3.connect(f"file:{data / 'fleet.db'}?mode=ro", uri=True)
    try:
        records = [json.loads(r) for (r,) in db.execute("SELECT record FROM segments")]
        nulls = db.execute(
            "SELECT COUNT(*) FROM segments WHERE epoch IS NULL AND cipher_sha256 IS NULL"
        ).fetchone()[0]
    finally:
        db.close()
    assert nulls == len(files)
    assert all(set(r) == {"camera", "start", "duration", "bytes", "sha256"} for r in records)
    from custodes.ledger.instance import Instance

    store = Instance.load(data).reader().store
    try:
        logged = [json.loads(e) for e in store.read_entries(0, store.next_index())]
    finally:
        store.close()
    batches = [o for o in logged if o.get("type") == "segments.batch"]
    assert batches and all(o["v"] == 2 and "encrypted" not in o for o in batches)
