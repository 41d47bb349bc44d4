"""A first read of a full tile brings the next ones of its level with it, and never more than
the signed log holds.

``custodes serve`` reads up to :data:`custodes.web.routes.log.READ_AHEAD` full bundles (or
hash tiles of one level) from the store on a miss, since verifiers read in order.  What it
reads ahead must be exactly what it would have read one by one, and entries sequenced but
not yet in a signed checkpoint must stay unserved.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from custodes.tlog import leaf_hash, parse_entry_bundle
from custodes.web.routes.log import READ_AHEAD
from tests.web.test_tile_cache import Log, _get


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[Log, TestClient]]:
    lg = Log(tmp_path)
    with TestClient(lg.app, base_url="http://testserver") as client:
        yield lg, client


def test_tiles_read_ahead_are_the_log_and_stop_at_its_signed_size(
    log: tuple[Log, TestClient],
) -> None:
    lg, client = log
    signed = 256 * 20 + 7  # 20 full bundles and a partial one
    lg.grow(signed)
    # Sequenced but not in any signed checkpoint: must not be served, read ahead or not.
    pending = [json.dumps({"n": i}).encode() for i in range(signed, signed + 256 * 12)]
    lg.app.state.ledger.write(lambda log: log.append(pending))
    status, first, _ = _get(client, "/log/tile/entries/000")
    assert status == 200
    cache = lg.app.state.tile_cache
    assert len(cache) == READ_AHEAD  # one read brought the next ones
    assert all(cache.get(f"entries/{i:03d}") is not None for i in range(READ_AHEAD))
    for i in range(20):
        status, bundle, head = _get(client, f"/log/tile/entries/{i:03d}")
        entries = parse_entry_bundle(bundle, 256)
        assert entries[0] == json.dumps({"n": 256 * i}).encode()
        assert head["cache-control"] == "public, max-age=31536000, immutable"
        status, tile, _ = _get(client, f"/log/tile/0/{i:03d}")
        assert status == 200 and tile == b"".join(leaf_hash(e) for e in entries)
    # The bundle after the signed ones is the partial one, not the pending entries.
    assert _get(client, "/log/tile/entries/020")[0] == 404
    assert len(parse_entry_bundle(_get(client, "/log/tile/entries/020.p/7")[1], 7)) == 7
    assert _get(client, "/log/tile/entries/021")[0] == 404
    assert cache.get("entries/020") is None and cache.get("0/020") is None
    lg.app.state.ledger.integrate_now()  # now signed: served, and what was read before holds
    assert len(parse_entry_bundle(_get(client, "/log/tile/entries/021")[1], 256)) == 256
    assert _get(client, "/log/tile/entries/000")[1] == first
