"""Footage segments archived in a real S3-compatible store (SeaweedFS on loopback)."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from custodes.errors import StoreUnavailableError
from custodes.fleet.archive import S3Archive, open_archive
from custodes.fleet.model import parse_time
from tests.fleet.conftest import FAST, Server, post
from tests.fleet.test_ingest_http import _t
from tests.ledger.test_objectstore import BUCKET, SeaweedFS, seaweed  # noqa: F401 (the fixture)


def _put(url: str, body: bytes, token: str) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(
        url, data=body, method="PUT", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_segments_archive_to_the_object_store_and_come_back_intact(
    fleet: tuple[Path, str],
    seaweed: SeaweedFS,  # noqa: F811 (the imported fixture)
) -> None:
    data, token = fleet
    url = f"s3://{BUCKET}/city?endpoint={seaweed.endpoint}"
    (data / "fleet.json").write_text(json.dumps({**FAST, "archive": url}))
    # An MP4 box chain (ftyp, then mdat), since the archive checks content, not names.
    payload = bytes(range(256)) * 64
    blob = (
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42"
        + (8 + len(payload)).to_bytes(4, "big")
        + b"mdat"
        + payload
    )
    start = _t(-120)
    seg = {
        "camera": "MSK-0001",
        "start": start,
        "duration": 60,
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    srv = Server(data)
    srv.start()
    try:
        status, _ = post(srv.url + "/fleet/segments", {"segments": [seg]}, token)
        assert status == 200
        where = f"{srv.url}/fleet/archive?camera=MSK-0001&start={start}"
        # A changed file is refused and nothing reaches the bucket.
        status, body = _put(where, blob[:-1] + b"!", token)
        assert status == 422 and "differs from the one logged" in body["error"]
        status, body = _put(where, blob, token)
        assert status == 200, body
        assert body["stored"].startswith(f"s3://{BUCKET}/city/archive/MSK-0001/")
    finally:
        srv.stop()
    # Nothing was kept on the server's disk: the object store holds the file.
    assert not [p for p in (data / "archive").rglob("*") if p.is_file()]
    keys = [o["Key"] for o in seaweed.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert [k for k in keys if k.startswith("city/archive/")] == [
        body["stored"].removeprefix(f"s3://{BUCKET}/")
    ]
    archive = open_archive(data)
    assert isinstance(archive, S3Archive)
    got = archive.fetch("MSK-0001", parse_time(start, "start"))
    assert got is not None and got.read_bytes() == blob
    assert archive.fetch("MSK-0002", parse_time(start, "start")) is None
    # Once fetched it is served from the cache, even with the store gone.
    seaweed.kill()
    again = open_archive(data).fetch("MSK-0001", parse_time(start, "start"))
    assert again is not None and again.read_bytes() == blob
    # A segment not cached, with the store down: one clear error, not a missing file.
    with pytest.raises(StoreUnavailableError, match="cannot be reached"):
        open_archive(data).fetch("MSK-0003", parse_time(start, "start"))


def test_fleet_json_refuses_an_archive_that_is_not_s3(fleet: tuple[Path, str]) -> None:
    from custodes.errors import UsageError

    data, _ = fleet
    (data / "fleet.json").write_text(json.dumps({"archive": "/mnt/nas"}))
    with pytest.raises(UsageError, match="archive must be an s3://"):
        open_archive(data)
