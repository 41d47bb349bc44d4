"""The verifier's pipelined GETs against servers that behave as real ones may.

The server is the standard library's (it answers pipelined requests in
order); the handlers close connections partway, send chunked or unasked gzip
bodies, redirect, or answer too much, and the client must still return each
path's own body, or say in one sentence why not.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from custodes.client.pipeline import BATCH, PipelinedGetter
from custodes.client.source import HttpSource
from custodes.errors import NotFoundError


@dataclass
class Behaviour:
    close_every: int = 0  # say Connection: close after this many answers on a connection
    drop_every: int = 0  # close silently after this many answers
    chunked: bool = False
    gzip: bool = False
    connections: int = 0
    requests: int = 0


def _body(path: str) -> bytes:
    return (path * 50).encode()


@pytest.fixture
def server() -> Iterator[tuple[int, Behaviour]]:
    how = Behaviour()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.answered = 0
            with lock:
                how.connections += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                how.requests += 1
            if self.path.startswith("/old/"):
                self.send_response(301)
                self.send_header("Location", "/log/" + self.path.removeprefix("/old/"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.endswith("/missing"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = _body(self.path)
            if self.path.endswith("/huge"):
                body = bytes(300)
            self.send_response(200)
            if how.gzip:
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.answered += 1
            closing = bool(how.close_every and self.answered % how.close_every == 0)
            if closing:
                self.send_header("Connection", "close")
            if how.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 37):
                    piece = body[i : i + 37]
                    self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            if closing or (how.drop_every and self.answered % how.drop_every == 0):
                self.close_connection = True

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1], how
    finally:
        srv.shutdown()
        srv.server_close()


def _paths(n: int) -> list[str]:
    return [f"tile/entries/{i:03d}" for i in range(n)]


def test_many_requests_go_over_one_connection_in_order(server: tuple[int, Behaviour]) -> None:
    port, how = server
    source = HttpSource(f"http://127.0.0.1:{port}/log")
    paths = _paths(5 * BATCH + 3)
    assert source.fetch_many(paths) == [_body("/log/" + p) for p in paths]
    assert how.connections == 1 and how.requests == len(paths)
    source.close()


@pytest.mark.parametrize("said", [True, False], ids=["connection-close", "silent-close"])
def test_requests_a_closed_connection_left_unanswered_are_sent_again(
    server: tuple[int, Behaviour], said: bool
) -> None:
    port, how = server
    if said:
        how.close_every = 7
    else:
        how.drop_every = 7
    source = HttpSource(f"http://127.0.0.1:{port}/log")
    paths = _paths(3 * BATCH)
    assert source.fetch_many(paths) == [_body("/log/" + p) for p in paths]
    assert len(paths) // 7 <= how.connections <= len(paths) // 7 + 2
    assert source.getter is not None and source.getter.batch == 7  # no more written ahead
    source.close()


def test_chunked_and_unasked_gzip_bodies_are_decoded(server: tuple[int, Behaviour]) -> None:
    port, how = server
    how.chunked = how.gzip = True
    source = HttpSource(f"http://127.0.0.1:{port}/log")
    paths = _paths(40)
    assert source.fetch_many(paths) == [_body("/log/" + p) for p in paths]
    source.close()


def test_redirects_are_followed_and_refusals_named(server: tuple[int, Behaviour]) -> None:
    port, _ = server
    source = HttpSource(f"http://127.0.0.1:{port}/old")
    assert source.fetch_many(["tile/0/000"]) == [_body("/log/tile/0/000")]
    with pytest.raises(NotFoundError, match=r"/old/tile/missing answered HTTP 404"):
        source.fetch_many(["tile/0/000", "tile/missing"])
    source.close()


def test_a_body_over_the_limit_is_refused_in_one_sentence(server: tuple[int, Behaviour]) -> None:
    port, _ = server
    getter = PipelinedGetter("127.0.0.1", port, limit=200)
    with pytest.raises(Exception, match=r"^The body is larger than 200 bytes\.$"):
        getter.get_many(["/log/huge"])
    getter.close()


def test_a_server_that_is_not_there_is_named() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = HttpSource(f"http://127.0.0.1:{port}/log", timeout=2)
    with pytest.raises(
        NotFoundError, match=rf"cannot reach http://127.0.0.1:{port}/log/checkpoint"
    ):
        source.fetch("checkpoint")


def test_a_stream_left_early_does_not_hand_its_answers_to_the_next_request(
    server: tuple[int, Behaviour],
) -> None:
    port, how = server
    source = HttpSource(f"http://127.0.0.1:{port}/log")
    paths = _paths(3 * BATCH)
    stream = source.fetch_stream(paths)
    assert [next(stream) for _ in range(3)] == [_body("/log/" + p) for p in paths[:3]]
    stream.close()  # as a verifier stops at a bad tile, with requests still written ahead
    again = _paths(2)[::-1]
    assert source.fetch_many(again) == [_body("/log/" + p) for p in again]
    assert list(source.fetch_stream(paths)) == [_body("/log/" + p) for p in paths]
    source.close()
