"""``custodes serve`` serves the log as tlog-tiles recommends: gzip bundles, caching, CORS, HEAD."""

from __future__ import annotations

import gzip
import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from custodes.tlog import parse_entry_bundle
from custodes.web.routes.log import accepts_gzip
from tests.conftest import run_cli


@pytest.fixture
def filled(instance: tuple[Path, str]) -> tuple[Path, str]:
    data, vkey = instance
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(600)).encode()
    run_cli("log", "append", "-", data=data, input=lines)
    return data, vkey


def _ask(
    url: str, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def test_bundles_are_gzipped_only_for_a_client_that_accepts_it(
    filled: tuple[Path, str], server: tuple[str, Path, str]
) -> None:
    url, _, _ = server
    status, head, plain = _ask(url, "/log/tile/entries/000", **{"Accept-Encoding": "identity"})
    assert status == 200 and "content-encoding" not in head
    assert len(parse_entry_bundle(plain, 256)) == 256
    status, head, packed = _ask(url, "/log/tile/entries/000", **{"Accept-Encoding": "gzip"})
    assert status == 200 and head["content-encoding"] == "gzip"
    assert "accept-encoding" in head["vary"].lower()
    assert gzip.decompress(packed) == plain and len(packed) < len(plain)
    status, head, _ = _ask(url, "/log/tile/entries/000", **{"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in head
    # Hash tiles are random bytes: never compressed.
    _, head, _ = _ask(url, "/log/tile/0/000", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in head
    # custodes verify asks for gzip and verifies the compressed bundles.
    out = run_cli("verify", "--vkey", server[2], "--source", url + "/log", "--json")
    assert json.loads(out.stdout)["size"] == 600


def test_caching_cors_and_head_on_the_read_only_paths(
    filled: tuple[Path, str], server: tuple[str, Path, str]
) -> None:
    url, _, _ = server
    expect = {
        "/log/checkpoint": ("text/plain; charset=utf-8", "no-cache"),
        "/log/tile/0/000": ("application/octet-stream", "public, max-age=31536000, immutable"),
        "/log/tile/0/002.p/88": ("application/octet-stream", "public, max-age=86400"),
        "/log/tile/1/000.p/2": ("application/octet-stream", "public, max-age=86400"),
        "/log/tile/entries/002.p/88": ("application/octet-stream", "public, max-age=86400"),
    }
    for path, (kind, cache) in expect.items():
        status, head, body = _ask(url, path, Origin="https://verifier.example")
        assert status == 200, path
        assert head["content-type"] == kind and head["cache-control"] == cache, path
        assert head["access-control-allow-origin"] == "*", path
        status, hhead, hbody = _ask(url, path, "HEAD")
        assert status == 200 and hbody == b"", path
        assert hhead["content-length"] == str(len(body)), path
        assert hhead["access-control-allow-origin"] == "*", path
    for path in ("/log/entry/5", "/log/proof/inclusion?index=5&size=600"):
        status, head, _ = _ask(url, path)
        assert status == 200 and head["access-control-allow-origin"] == "*", path
        assert _ask(url, path, "HEAD")[0] == 200, path


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("gzip", True),
        ("gzip, identity", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0", False),
        ("identity", False),
        ("", False),
        (None, False),
        ("deflate, br", False),
    ],
)
def test_accept_encoding_is_read_with_its_weights(value: str | None, ok: bool) -> None:
    assert accepts_gzip(value) is ok
