"""Reading a log over HTTP as real logs serve it: gzip bundles unasked, kept-alive connections.

The server here is written for the test from the standard library, not from
custodes: it serves a tlog-tiles directory, compresses every entry bundle
with gzip whatever the client asked for, and counts requests and connections.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from custodes.client import verify as verify_module
from custodes.client.http import HttpClient, decode_body
from custodes.client.source import HttpSource
from custodes.client.verify import verify_log
from custodes.errors import FormatError, NotFoundError
from custodes.ledger.instance import Instance
from custodes.ledger.publish import export_tiles
from custodes.tlog import Verifier

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "tlog" / "log1000"
if not VECTORS.is_dir():
    VECTORS = Path("/work/shared/vectors/tlog/log1000")


@dataclass
class Seen:
    requests: int = 0
    connections: int = 0
    accept_encoding: set[str] = field(default_factory=set)
    gzipped: int = 0
    drop_every: int = 0  # close a kept-alive connection silently after this many answers


def _serve(root: Path, seen: Seen) -> tuple[ThreadingHTTPServer, str]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.answered = 0
            with lock:
                seen.connections += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                seen.requests += 1
                seen.accept_encoding.add(self.headers.get("Accept-Encoding", ""))
            path = (root / self.path.lstrip("/")).resolve()
            if root not in path.parents or not path.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = path.read_bytes()
            self.send_response(200)
            if self.path.startswith("/tile/entries/"):
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
                with lock:
                    seen.gzipped += 1
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.answered += 1
            if seen.drop_every and self.answered % seen.drop_every == 0:
                self.close_connection = True  # without saying so: the client must reconnect

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def go_log() -> Iterator[tuple[str, Seen, str]]:
    """The Go-written 1,000-entry log, served with gzip bundles."""
    seen = Seen()
    server, url = _serve(VECTORS, seen)
    vkey = json.loads((VECTORS / "vectors.json").read_text())["verifier_key"]
    try:
        yield url, seen, vkey
    finally:
        server.shutdown()
        server.server_close()


def test_a_log_written_and_served_by_independent_code_with_gzip_bundles_verifies(
    go_log: tuple[str, Seen, str],
) -> None:
    url, seen, vkey = go_log
    source = HttpSource(url)
    result = verify_log(source, Verifier.from_key(vkey), fetch_window=1)
    source.close()
    assert result.size == 1000
    assert seen.gzipped == 4
    assert seen.accept_encoding == {"gzip, identity"}
    # One connection carried every request.
    assert seen.connections == 1
    assert seen.requests == result.tiles + 1


def test_a_connection_the_server_drops_is_opened_again(go_log: tuple[str, Seen, str]) -> None:
    url, seen, vkey = go_log
    seen.drop_every = 3
    source = HttpSource(url)
    result = verify_log(source, Verifier.from_key(vkey), fetch_window=1)
    source.close()
    assert result.size == 1000
    assert seen.connections == -(-seen.requests // 3)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_large_log_served_gzip_verifies_in_threads_and_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(verify_module, "PARALLEL_MIN", 1000)
    monkeypatch.setattr(verify_module, "_BUNDLES_PER_TASK", 3)
    inst = Instance.init(tmp_path / "inst", origin="gz.example/log")
    with inst.open_log() as log:
        log.append(json.dumps({"n": i}).encode() for i in range(9000))
        log.integrate()
        export_tiles(log, tmp_path / "export")
    seen = Seen()
    server, url = _serve((tmp_path / "export").resolve(), seen)
    try:
        v = Verifier.from_key(inst.verifier_key)
        source = HttpSource(url)
        result = verify_log(source, v, workers=workers)
        source.close()
    finally:
        server.shutdown()
        server.server_close()
    assert result.size == 9000
    assert seen.gzipped == 36
    assert seen.connections < seen.requests / 2


def test_a_missing_object_is_not_found(go_log: tuple[str, Seen, str]) -> None:
    url, _, _ = go_log
    source = HttpSource(url)
    with pytest.raises(NotFoundError, match="HTTP 404"):
        source.fetch("tile/0/999")
    source.close()


def test_gzip_bodies_are_decoded_within_limits() -> None:
    assert decode_body(gzip.compress(b"abc"), "gzip", 10) == b"abc"
    assert decode_body(b"abc", "identity", 10) == b"abc"
    assert decode_body(b"abc", None, 10) == b"abc"
    with pytest.raises(FormatError, match="more than 10"):
        decode_body(gzip.compress(b"x" * 11), "gzip", 10)  # a gzip bomb stops at the limit
    with pytest.raises(FormatError, match="truncated"):
        decode_body(gzip.compress(b"abc")[:-6], "gzip", 10)
    with pytest.raises(FormatError, match="corrupt"):
        decode_body(b"not gzip", "gzip", 10)
    with pytest.raises(FormatError, match="br"):
        decode_body(b"abc", "br", 10)


def test_the_client_survives_pickling_for_worker_processes() -> None:
    import pickle

    client = HttpClient(timeout=3.0, user_agent="x", limit=5)
    copy = pickle.loads(pickle.dumps(client))
    assert (copy.timeout, copy.user_agent, copy.limit) == (3.0, "x", 5)


def test_the_proxy_the_environment_names_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            lines.append(self.requestline)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("no_proxy", "direct.invalid")
        client = HttpClient(timeout=5)
        assert client.get("http://log.invalid/log/checkpoint").body == b"ok"
        assert lines == ["GET http://log.invalid/log/checkpoint HTTP/1.1"]
        with pytest.raises(OSError):  # no_proxy: straight to a host that does not exist
            client.get("http://direct.invalid/checkpoint")
        client.close()
    finally:
        server.shutdown()
        server.server_close()
