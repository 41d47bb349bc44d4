"""Tiles served from memory are the log's tiles: exact widths, none past the signed size, bounded.

``custodes serve`` keeps every tile and bundle it has read in a bounded cache
and answers later requests from it (see custodes.web.tile_cache); these tests
read the log through the real app and its real store, as a verifier would,
while the log grows underneath.
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from custodes.ledger.instance import Instance
from custodes.tlog import leaf_hash, parse_entry_bundle
from custodes.web.app import Settings, create_app
from custodes.web.tile_cache import TileCache

SITE = "http://testserver"


class Log:
    def __init__(self, tmp: Path) -> None:
        data = tmp / "data"
        Instance.init(data, origin="test.custodes.example/log")
        self.app: Any = create_app(
            Settings(data=data, integrate_interval=60, trusted_hosts=("testserver",))
        )
        self.n = 0

    def grow(self, count: int) -> None:
        start, self.n = self.n, self.n + count
        entries = [json.dumps({"n": i}).encode() for i in range(start, self.n)]
        self.app.state.ledger.write(lambda log: log.append(entries))
        self.app.state.ledger.integrate_now()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[Log, TestClient]]:
    lg = Log(tmp_path)
    with TestClient(lg.app, base_url=SITE) as client:  # the lifespan: the writer runs
        yield lg, client


def _get(client: TestClient, path: str, accept: str = "gzip, identity") -> tuple[int, bytes, Any]:
    r = client.get(path, headers={"Accept-Encoding": accept})
    return r.status_code, r.content, r.headers


def test_a_tile_not_reached_is_refused_until_the_log_reaches_it(
    log: tuple[Log, TestClient],
) -> None:
    lg, client = log
    lg.grow(300)
    assert _get(client, "/log/tile/0/001")[0] == 404  # only 44 of its 256 leaves exist
    assert _get(client, "/log/tile/0/001.p/45")[0] == 404
    status, partial, head = _get(client, "/log/tile/0/001.p/44")
    assert status == 200 and len(partial) == 44 * 32
    assert head["cache-control"] == "public, max-age=86400"
    lg.grow(300)  # the refusals were not kept: both exist now
    status, full, head = _get(client, "/log/tile/0/001")
    assert status == 200 and len(full) == 256 * 32
    assert head["cache-control"] == "public, max-age=31536000, immutable"
    assert _get(client, "/log/tile/0/001.p/45")[1] == full[: 45 * 32]
    # The partial tile read before the log grew is still exactly its prefix.
    assert _get(client, "/log/tile/0/001.p/44")[1] == partial == full[: 44 * 32]
    status, bundle, _ = _get(client, "/log/tile/entries/001")
    entries = parse_entry_bundle(bundle, 256)
    assert b"".join(leaf_hash(e) for e in entries) == full
    assert entries[0] == json.dumps({"n": 256}).encode()


def test_each_width_is_its_own_object_and_repeats_are_identical(
    log: tuple[Log, TestClient],
) -> None:
    lg, client = log
    lg.grow(700)
    first = {w: _get(client, f"/log/tile/entries/002.p/{w}")[1] for w in (10, 11, 188)}
    for w in (10, 11, 188):
        assert len(parse_entry_bundle(first[w], w)) == w
    again = {w: _get(client, f"/log/tile/entries/002.p/{w}")[1] for w in (10, 11, 188)}
    assert again == first
    cache: TileCache = lg.app.state.tile_cache
    assert cache.hits >= 3  # the repeats came from memory
    # Compressed or not, from the cache or not, a bundle is the same bundle.
    status, plain, head = _get(client, "/log/tile/entries/002.p/11", accept="identity")
    assert status == 200 and "content-encoding" not in head and plain == first[11]
    r = client.get("/log/tile/entries/002.p/11", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.content == plain  # the test client inflates it; the raw body was gzip
    raw = client.head("/log/tile/entries/002.p/11", headers={"Accept-Encoding": "gzip"})
    assert raw.status_code == 200 and raw.headers["access-control-allow-origin"] == "*"
    assert int(raw.headers["content-length"]) == len(gzip.compress(plain, mtime=0))


def test_malformed_paths_get_the_same_one_sentence_errors(log: tuple[Log, TestClient]) -> None:
    lg, client = log
    lg.grow(5)
    r = client.get("/log/tile/entries/x05")
    assert r.status_code == 400 and r.json()["error"].endswith(".")
    r = client.get("/log/tile/3/000")
    assert r.status_code == 404 and "beyond the log's signed size" in r.json()["error"]
    assert "content-security-policy" in r.headers  # the guard still wraps the fast route


def test_the_cache_stays_within_its_bound_dropping_the_least_recently_used() -> None:
    cache = TileCache(max_bytes=10_000)
    for i in range(40):
        cache.put((0, i, 256), bytes(1000))
        assert cache.bytes <= 10_000
    assert len(cache) < 10 and cache.get((0, 0, 256)) is None
    kept = [i for i in range(40) if cache.get((0, i, 256)) is not None]
    assert kept == list(range(40 - len(kept), 40))
    cache.get((0, kept[0], 256))  # used again: now the most recent
    cache.put((0, 99, 256), bytes(1000))
    assert cache.get((0, kept[0], 256)) is not None and cache.get((0, kept[1], 256)) is None
    cache.put((0, 100, 256), bytes(20_000))  # larger than the whole cache: not kept
    assert cache.get((0, 100, 256)) is None and cache.bytes <= 10_000
