"""An encrypted segment through the archive route: into SeaweedFS as ciphertext only."""

from __future__ import annotations

import hashlib
import io
import json
import stat
from pathlib import Path

from custodes.custody.group import Point, Scalar, b64encode
from custodes.custody.kem import SegmentId
from custodes.custody.keys import EpochPublic
from custodes.custody.stream import encrypt_segment
from custodes.fleet.archive import S3Archive, open_archive
from custodes.fleet.model import parse_time
from tests.fleet.conftest import FAST, Server, post
from tests.fleet.test_archive_s3 import _put, seaweed  # noqa: F401 (the fixture)
from tests.fleet.test_ingest_http import _t
from tests.ledger.test_objectstore import BUCKET, SeaweedFS


def test_an_encrypted_segment_is_archived_as_its_ciphertext_only(
    fleet: tuple[Path, str],
    seaweed: SeaweedFS,  # noqa: F811
) -> None:
    data, token = fleet
    url = f"s3://{BUCKET}/city?endpoint={seaweed.endpoint}"
    (data / "fleet.json").write_text(json.dumps({**FAST, "archive": url}))
    payload = bytes(range(256)) * 64
    blob = (
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42"
        + (8 + len(payload)).to_bytes(4, "big")
        + b"mdat"
        + payload
    )
    start = _t(-120)
    epoch = start[:10]
    y = Point.base_mul(Scalar.random())
    public = EpochPublic(epoch, 1, (1,), y, (y,))
    out = io.BytesIO()
    sealed = encrypt_segment(
        io.BytesIO(blob), out, public, SegmentId(epoch, "MSK-0001", start), chunk_size=4096
    )
    cipher = out.getvalue()
    d = sealed.digests
    seg = {
        "camera": "MSK-0001",
        "start": start,
        "duration": 60,
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "epoch": epoch,
        "ephemeral": b64encode(sealed.ephemeral.encode()),
        "ciphertext": {"sha256": d.ciphertext_sha256, "bytes": d.ciphertext_size},
    }
    assert d.ciphertext_sha256 == hashlib.sha256(cipher).hexdigest()
    srv = Server(data)
    srv.start()
    try:
        status, body = post(srv.url + "/fleet/segments", {"segments": [seg]}, token)
        assert status == 200 and body["accepted"] == 1, body
        where = f"{srv.url}/fleet/archive?camera=MSK-0001&start={start}&suffix=.mp4"
        # The plaintext is refused for an encrypted segment: its digest is not the one due.
        status, body = _put(where, blob, token)
        assert status == 422 and d.ciphertext_sha256 in body["error"]
        status, body = _put(where, cipher[:-1] + bytes([cipher[-1] ^ 1]), token)
        assert status == 422
        status, body = _put(where, cipher, token)
        assert status == 200, body
        assert body["stored"].endswith(".mp4.enc") and body["sha256"] == d.ciphertext_sha256
    finally:
        srv.stop()
    assert not [p for p in (data / "archive").rglob("*") if p.is_file()]
    keys = [o["Key"] for o in seaweed.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    stored = [k for k in keys if k.startswith("city/archive/")]
    assert stored == [body["stored"].removeprefix(f"s3://{BUCKET}/")]
    archive = open_archive(data)
    assert isinstance(archive, S3Archive)
    got = archive.fetch("MSK-0001", parse_time(start, "start"))
    assert got is not None and got.name.endswith(".mp4.enc") and got.read_bytes() == cipher
    assert stat.S_IMODE(got.stat().st_mode) == 0o600
    assert blob[4000:4064] not in got.read_bytes()
