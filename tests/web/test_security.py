"""The web guard (issue 10, items 7-11 and 14): body limits, CSRF, logout, throttling, headers.

Each test reproduces an attack that worked before the guard: a huge body read
before the 401, a cross-site form riding the session cookie, a cookie kept
after logout, a judge locked out by a stranger, a page frameable or loading
scripts from a CDN, a foreign Host header, and server paths in error bodies.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from custodes.access.identity import Scope
from custodes.access.users import add_user
from custodes.errors import StoreUnavailableError, UsageError
from custodes.ledger.instance import Instance
from custodes.web.app import Settings, create_app

SITE = "http://testserver"


class Site:
    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.data = tmp / "data"
        Instance.init(self.data, origin="test.custodes.example/log")
        self.app = create_app(
            Settings(
                data=self.data,
                integrate_interval=0.1,
                trusted_hosts=("testserver", "127.0.0.1"),
                public_url=SITE,
                **settings,
            )
        )
        self.tokens: dict[str, str] = {}

    def add(self, name: str, role: str, password: str) -> str:
        st = self.app.state
        _, token = st.ledger.write(lambda log: add_user(log, st.identities, name, role, Scope()))
        st.identities.set_password(name, password)
        self.tokens[name] = token
        return str(token)

    def client(self, host: str = "testclient") -> TestClient:
        return TestClient(self.app, base_url=SITE, client=(host, 50000))

    def login(self, client: TestClient, name: str, password: str) -> None:
        r = client.post(
            "/login",
            data={"name": name, "password": password},
            headers={"Origin": SITE},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, max_body_bytes=1 << 20)
    with s.client():  # runs the lifespan: the log's writer starts and stops
        s.add("root", "admin", "admin pass")
        s.add("judy", "judge", "judge pass")
        yield s


# -- item 7: size limits, and authentication before the body ---------------------------


def test_an_unauthenticated_body_is_refused_before_it_is_read(site: Site) -> None:
    read = 0

    def body() -> Iterator[bytes]:
        nonlocal read
        for _ in range(64):
            read += 1
            yield b"x" * 65536

    with site.client() as c:
        r = c.post("/access/requests", content=body(), headers={"Content-Length": str(64 << 16)})
        assert r.status_code == 401 and "token" in r.json()["error"]
        assert read <= 1  # the server answered without consuming the body
        r = c.post("/fleet/heartbeats", content=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 401 and "agent token" in r.json()["error"]
        forged = {"Authorization": "Bearer cuu_forged"}
        assert c.post("/access/requests", json={}, headers=forged).status_code == 401


def test_a_body_over_the_limit_is_413_even_when_authenticated(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.tokens['root']}"}
    with site.client() as c:
        big = b"{" + b" " * (2 << 20) + b"}"
        r = c.put(
            "/access/policy", content=big, headers={**auth, "Content-Type": "application/json"}
        )
        assert r.status_code == 413 and "larger than 1 MiB" in r.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b"{"
            for _ in range(40):
                yield b" " * 65536
            yield b"}"

        r = c.put(
            "/access/policy", content=chunks(), headers={**auth, "Content-Type": "application/json"}
        )
        assert r.status_code == 413
        r = c.post("/login", content=b"name=" + b"x" * (1 << 20), headers={"Origin": SITE})
        assert r.status_code == 413


def test_archive_uploads_have_their_own_larger_limit(tmp_path: Path) -> None:
    s = Site(tmp_path, max_body_bytes=1 << 10, max_upload_bytes=1 << 20)
    with s.client() as c:
        # still refused without a token, before the body
        r = c.put("/fleet/archive", content=b"x" * 4096, params={"camera": "c"})
        assert r.status_code == 401
        policy = s.app.user_middleware[0].kwargs["policy"]
        assert (
            policy.limit("/fleet/archive") == 1 << 20 and policy.limit("/access/policy") == 1 << 10
        )


# -- item 8: CSRF ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "null"}, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_cookie_requests_from_elsewhere_are_refused(site: Site, headers: dict[str, str]) -> None:
    with site.client() as c:
        site.login(c, "root", "admin pass")
        for path, kw in (
            ("/app/users", {"data": {"name": "mallory", "role": "admin", "password": "pw"}}),
            ("/admin/users", {"json": {"name": "mallory", "role": "admin"}}),
            ("/logout", {}),
        ):
            r = c.post(path, headers=headers, follow_redirects=False, **kw)
            assert r.status_code == 403, (path, r.status_code, r.text)
        assert site.app.state.identities.get("mallory") is None
        ok = c.post(
            "/admin/users",
            json={"name": "petr", "role": "judge"},
            headers={"Sec-Fetch-Site": "same-origin"},
        )
        assert ok.status_code == 201, ok.text
        ok = c.post(
            "/admin/users", json={"name": "vera", "role": "judge"}, headers={"Origin": SITE}
        )
        assert ok.status_code == 201


def test_bearer_requests_need_no_origin(site: Site) -> None:
    with site.client() as c:
        r = c.post(
            "/admin/users",
            json={"name": "petr", "role": "judge"},
            headers={"Authorization": f"Bearer {site.tokens['root']}"},
        )
        assert r.status_code == 201


def test_login_from_another_site_is_refused(site: Site) -> None:
    with site.client() as c:
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}):  # fmt: skip
            r = c.post("/login", data={"name": "root", "password": "admin pass"}, headers=headers)
            assert r.status_code == 403
            assert "custodes_session" not in r.headers.get("set-cookie", "")


# -- item 9: logout ends the session on the server ----------------------------------------


def test_a_cookie_kept_after_logout_is_dead(site: Site) -> None:
    with site.client() as c:
        site.login(c, "root", "admin pass")
        kept = c.cookies["custodes_session"]
        assert c.get("/admin/users").status_code == 200
        assert (
            c.post("/logout", headers={"Origin": SITE}, follow_redirects=False).status_code == 303
        )
    with site.client() as thief:
        thief.cookies.set("custodes_session", kept)
        assert thief.get("/admin/users").status_code == 401


# -- item 10: throttled by client and account, never locking out the right password -----


def test_a_stranger_cannot_lock_out_a_judge(site: Site) -> None:
    with site.client("10.0.0.66") as stranger:
        codes = [
            stranger.post(
                "/login", data={"name": "judy", "password": f"guess {i}"}, headers={"Origin": SITE}
            ).status_code
            for i in range(12)
        ]
        assert codes[:3] == [401, 401, 401] and codes[-1] == 429  # slowed down
        right = stranger.post(
            "/login", data={"name": "judy", "password": "judge pass"}, headers={"Origin": SITE}
        )
        assert right.status_code == 429  # the guesser stays slowed, even when right
    with site.client("10.0.0.7") as judge:
        site.login(judge, "judy", "judge pass")  # the judge's own client was never refused


def test_the_throttle_grows_and_forgives() -> None:
    from custodes.web.auth import LoginThrottle

    t = LoginThrottle(free=2, base_s=10, max_s=100)
    waits = []
    for _ in range(6):
        t.failed("a", "judy")
        waits.append(round(t.wait_s("a", "judy")))
    assert waits == [0, 10, 20, 40, 80, 100]  # free, then doubling, then capped
    assert t.wait_s("b", "judy") == 0 and t.wait_s("a", "root") == 0
    t.succeeded("a", "judy")
    assert t.wait_s("a", "judy") == 0


# -- item 11: headers, no CDN, trusted hosts -----------------------------------------------


def test_every_page_is_unframeable_and_loads_nothing_from_elsewhere(site: Site) -> None:
    with site.client() as c:
        for path in ("/", "/login", "/docs", "/healthz", "/nowhere"):
            r = c.get(path)
            csp = r.headers.get("content-security-policy", "")
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "http" not in csp  # no external host
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
        docs = c.get("/docs").text
        assert "cdn" not in docs.lower() and "https://" not in docs
        assert c.get("/redoc").status_code == 404


def test_a_foreign_host_header_is_refused(site: Site) -> None:
    with site.client() as c:
        assert c.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
        assert c.get("/healthz", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_default_hosts_are_loopback_and_the_public_host() -> None:
    from custodes.web.security import default_hosts

    assert set(default_hosts("https://custodes.example.org/")) == {
        "127.0.0.1", "localhost", "::1", "custodes.example.org"
    }  # fmt: skip


# -- item 14: no server paths in error bodies ----------------------------------------------


def test_error_bodies_name_no_server_path(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    data = site.data.resolve()

    @site.app.get("/test-broken-key")
    def broken_key() -> None:
        raise UsageError(f"{data / 'keys' / 'access.key'} is not a 32-byte key; restore it")

    @site.app.get("/test-broken-store")
    def broken_store() -> None:
        raise StoreUnavailableError(f"cannot write {data / 'log.db'}: disk I/O error")

    @site.app.get("/test-missing-file")
    def missing_file() -> None:
        raise UsageError("the archive file /var/lib/custodes/archive/cam-1/x.ts is missing")

    with site.client() as c, caplog.at_level("WARNING", logger="custodes.web"):
        for path in ("/test-broken-key", "/test-broken-store", "/test-missing-file"):
            r = c.get(path)
            assert r.status_code in (400, 503)
            body = r.text
            assert str(data) not in body and str(site.data) not in body, body
            assert "/var/lib" not in body and "/keys/" not in body
            assert r.json()["error"]  # still one sentence that says what failed
        assert str(data) in caplog.text  # the server's log keeps the path
