"""Custody fields of segment records, the archive's ciphertext rule, fleet.db's migration,
and an agent that holds segments while their epoch has no ready key (all in-process)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from custodes.custody.group import Point, Scalar, b64encode
from custodes.custody.kem import SegmentId
from custodes.custody.keys import EpochPublic
from custodes.custody.stream import encrypt_segment
from custodes.errors import FormatError
from custodes.fleet import entries as E
from custodes.fleet.agent import Agent
from custodes.fleet.archive import DirArchive
from custodes.fleet.model import format_time, parse_time
from custodes.fleet.ops import FleetSettings, check_segment
from custodes.fleet.registry import FleetDB

START = "2026-12-03T10:00:00Z"
EPOCH = "2026-12-03"


def _public(epoch: str = EPOCH) -> EpochPublic:
    y = Point.base_mul(Scalar.random())
    return EpochPublic(epoch, 1, (1,), y, (y,))


def _ts(n: int = 40) -> bytes:
    return b"".join(b"\x47" + bytes([k % 251]) * 187 for k in range(n))


def _sealed(plain: bytes, epoch: str = EPOCH) -> tuple[bytes, Any]:
    out = io.BytesIO()
    seg = SegmentId(epoch=epoch, camera="MSK-0001", start=START)
    sealed = encrypt_segment(io.BytesIO(plain), out, _public(epoch), seg, chunk_size=1024)
    return out.getvalue(), sealed


def _item(**over: Any) -> dict[str, Any]:
    _, sealed = _sealed(_ts())
    d = sealed.digests
    item = {
        "camera": "MSK-0001",
        "start": START,
        "duration": 1.0,
        "bytes": d.plaintext_size,
        "sha256": d.plaintext_sha256,
        "epoch": EPOCH,
        "ephemeral": b64encode(sealed.ephemeral.encode()),
        "ciphertext": {"sha256": d.ciphertext_sha256, "bytes": d.ciphertext_size},
    }
    item.update(over)
    return {k: v for k, v in item.items() if v is not None}


def _check(item: dict[str, Any]) -> Any:
    now = parse_time(START) + 60_000
    return check_segment(item, {"MSK-0001": 0}, FleetSettings(), now)


def test_an_encrypted_record_is_checked_and_keeps_the_plaintext_digest() -> None:
    item = _item()
    cam, start, dur, size, sha, sealing = _check(item)
    assert sealing is not None and sealing.epoch == EPOCH
    rec = json.loads(E.segment_record(cam, start, dur, size, sha, sealing))
    assert rec == {**item, "duration": 1.0}
    assert (
        _check({k: item[k] for k in ("camera", "start", "duration", "bytes", "sha256")})[5] is None
    )


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"ciphertext": None}, "together"),
        ({"epoch": "2026-12-04"}, "UTC day"),
        ({"ephemeral": "not base64!"}, "ephemeral"),
        ({"ephemeral": b64encode(b"\xff" * 32)}, "ephemeral"),
        ({"ciphertext": {"sha256": "ab" * 32, "bytes": 10}}, "larger than the plaintext"),
        ({"ciphertext": {"sha256": "AB" * 32, "bytes": 10**6}}, "hex"),
        ({"ciphertext": {"sha256": "ab" * 32}}, "sha256 and bytes"),
    ],
)
def test_bad_custody_fields_are_refused_with_the_reason(over: dict[str, Any], why: str) -> None:
    with pytest.raises(FormatError, match=why):
        _check(_item(**over))


def test_plaintext_records_and_batches_are_as_before() -> None:
    t = parse_time(START)
    rec = E.segment_record("MSK-0001", t, 1.0, 5, "ab" * 32)
    assert rec == (
        b'{"bytes":5,"camera":"MSK-0001","duration":1,"sha256":"' + b"ab" * 32 + b'",'
        b'"start":"2026-12-03T10:00:00Z"}'
    )
    plain = E.segments_batch(1, 2, b"\x00" * 32, t, "agent-x")
    assert plain["v"] == 2 and "encrypted" not in plain
    sealed = E.segments_batch(1, 2, b"\x00" * 32, t, "agent-x", encrypted=2)
    assert sealed["v"] == 3 and sealed["encrypted"] == 2


def test_the_archive_takes_a_ciphertext_only_for_an_encrypted_record(tmp_path: Path) -> None:
    archive = DirArchive(tmp_path / "archive")
    t = parse_time(START)
    plain = _ts()
    cipher, _ = _sealed(plain)

    def upload(blob: bytes) -> Path:
        p = tmp_path / f"up-{time.monotonic_ns()}"
        p.write_bytes(blob)
        return p

    where = archive.store(upload(cipher), "MSK-0001", t, ".ts", EPOCH)
    stored = tmp_path / where
    assert stored.name.endswith(".ts.enc") and stored.read_bytes() == cipher
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert archive.fetch("MSK-0001", t) == stored
    with pytest.raises(FormatError, match="not a recorded segment"):
        archive.store(upload(cipher), "MSK-0001", t + 1000, ".ts")  # a plaintext record
    with pytest.raises(FormatError, match="not a custody ciphertext"):
        archive.store(upload(plain), "MSK-0001", t + 2000, ".ts", EPOCH)
    other, _ = _sealed(plain, "2026-12-02")
    with pytest.raises(FormatError, match="for epoch 2026-12-02"):
        archive.store(upload(other), "MSK-0001", t + 3000, ".ts", EPOCH)
    with pytest.raises(FormatError, match="suffix"):
        archive.store(upload(cipher), "MSK-0001", t + 4000, ".m3u8", EPOCH)
    # Plaintext for a plaintext record is stored as before.
    assert archive.store(upload(plain), "MSK-0001", t + 5000, ".ts").endswith(".ts")


_OLD = """
CREATE TABLE batches (id INTEGER PRIMARY KEY, root TEXT NOT NULL, count INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, log_index INTEGER);
CREATE TABLE segments (camera TEXT NOT NULL, start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
    record BLOB NOT NULL, batch INTEGER NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY (camera, start_ms)) WITHOUT ROWID;
INSERT INTO batches VALUES (1, '00', 1, 0, 7);
INSERT INTO segments VALUES ('MSK-0001', 1000, 2000, 'aa', 5, x'7b7d', 1, 0);
"""


def test_an_old_fleet_db_is_read_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    conn = sqlite3.connect(path)
    conn.executescript(_OLD)
    conn.close()
    ro = FleetDB(path, readonly=True)  # before its writer migrated it
    (row,) = ro.segments_for("MSK-0001", 0, 10_000)
    assert row.sha256 == "aa" and not row.encrypted and row.ciphertext_sha256 is None
    assert ro.segment("MSK-0001", 1000) == ("aa", 1, None)
    ro.close()
    db = FleetDB(path)
    (row,) = db.segments_for("MSK-0001", 0, 10_000)
    assert (row.epoch, row.ephemeral, row.ciphertext_sha256, row.ciphertext_size) == (None,) * 4
    assert row.stored_sha256 == "aa" and row.log_index == 7
    cols = {r[1] for r in db.conn.execute("PRAGMA table_info(segments)")}
    assert {"epoch", "ephemeral", "cipher_sha256", "cipher_bytes"} <= cols
    db.close()


class _Keys:
    def __init__(self) -> None:
        self.known = True
        self.on = True
        self.public: EpochPublic | None = None

    def refresh(self, *, force: bool = False) -> None:
        pass

    def key_for(self, epoch: str) -> EpochPublic | None:
        return self.public if self.public and self.public.epoch == epoch else None


def test_the_agent_holds_segments_until_their_epoch_key_is_ready(tmp_path: Path) -> None:
    rec = tmp_path / "rec" / "MSK-0001"
    rec.mkdir(parents=True)
    now = int(time.time()) * 1000 - 60_000
    stamp = format_time(now)
    seg = rec / (stamp[:19].replace("-", "").replace(":", "") + ".ts")
    plain = _ts(200)
    seg.write_bytes(plain)
    old = time.time() - 30
    os.utime(seg, (old, old))
    journal = tmp_path / "agent" / "agent.db"
    agent = Agent(watch=tmp_path / "rec", server="http://127.0.0.1:9", token="x", journal=journal)
    keys = _Keys()
    agent.keys = keys  # type: ignore[assignment]
    # Custody on, no ready key: nothing is journalled, nothing spooled; the file stays.
    keys.known = False
    assert agent.collect(final=True) == 0 and agent.held == 1
    keys.known = True
    assert agent.collect(final=True) == 0 and agent.held == 1
    assert agent.journal.pending(10) == [] and not agent.spool.exists()
    keys.public = _public(stamp[:10])
    assert agent.collect(final=True) == 1 and agent.held == 0
    ((path, item),) = agent.journal.pending(10)
    assert path == str(seg) and seg.read_bytes() == plain
    assert item["epoch"] == stamp[:10] and item["sha256"] and item["ciphertext"]["bytes"]
    spooled = agent.spool / item["spool"]
    assert stat.S_IMODE(spooled.stat().st_mode) == 0o600
    blob = spooled.read_bytes()
    assert blob.startswith(b"custodes-seg") and plain[1000:1064] not in blob
    assert plain[1000:1064] not in journal.read_bytes()
