"""Logging in on the web: signed, expiring, HttpOnly sessions; API tokens; role checks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli
from tests.fleet.conftest import Server as _FleetServer


class Server(_FleetServer):
    """The fleet tests' server, with a stop that always reaps the process (slow machines)."""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def site(instance: tuple[Path, str]) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with an admin (password "admin pass") and an auditor (password "audit pass")."""
    data, _ = instance
    tokens = {}
    for name, role, pw in (("root", "admin", "admin pass"), ("olga", "auditor", "audit pass")):
        out = run_cli(
            "users", "add", name, "--role", role, "--password-stdin", data=data, input=pw.encode()
        )
        tokens[name] = out.stdout.decode().splitlines()[-1]
    srv = Server(data)
    srv.start()
    try:
        yield srv, tokens
    finally:
        srv.stop()


def test_login_page_is_a_labelled_form(site: tuple[Server, dict[str, str]]) -> None:
    srv, _ = site
    page = httpx.get(srv.url + "/login?next=/app/audit")
    assert page.status_code == 200
    html = page.text
    assert '<label for="name">' in html and '<label for="password">' in html
    assert 'type="password"' in html and 'value="/app/audit"' in html


def test_wrong_password_is_refused(site: tuple[Server, dict[str, str]]) -> None:
    srv, _ = site
    for name, pw in (("root", "wrong"), ("nobody", "admin pass"), ("", "")):
        resp = httpx.post(srv.url + "/login", data={"name": name, "password": pw})
        assert resp.status_code == 401
        assert "do not match an active account" in resp.text
        assert "custodes_session" not in resp.headers.get("set-cookie", "")


def test_session_cookie_logs_in_and_out(site: tuple[Server, dict[str, str]]) -> None:
    srv, tokens = site
    with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}) as client:
        assert client.get("/admin/users").status_code == 401
        resp = client.post(
            "/login", data={"name": "root", "password": "admin pass", "next": "/admin/users"}
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/admin/users"
        cookie = resp.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=28800" in cookie
        listed = client.get("/admin/users")
        assert listed.status_code == 200
        assert {u["name"] for u in listed.json()["users"]} == {"root", "olga"}
        session = client.cookies["custodes_session"]

        out = client.post("/logout")
        assert out.status_code == 303
        assert client.get("/admin/users").status_code == 401

    # A tampered cookie is no session.
    forged = session[:-3] + ("AAA" if not session.endswith("AAA") else "BBB")
    resp = httpx.get(srv.url + "/admin/users", cookies={"custodes_session": forged})
    assert resp.status_code == 401 and resp.json()["error"]


def test_wrong_role_is_403_and_revoke_ends_the_session(
    site: tuple[Server, dict[str, str]],
) -> None:
    srv, tokens = site
    with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}) as olga:
        olga.post("/login", data={"name": "olga", "password": "audit pass"})
        resp = olga.get("/admin/users")
        assert resp.status_code == 403
        assert resp.json() == {"error": "this needs the admin role, and you are auditor"}
        admin = {"Authorization": f"Bearer {tokens['root']}"}
        revoked = httpx.post(srv.url + "/admin/users/olga/revoke", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["active"] is False
        assert olga.get("/admin/users").status_code == 401
        again = olga.post("/login", data={"name": "olga", "password": "audit pass"})
        assert again.status_code == 401


def test_login_never_redirects_off_site(site: tuple[Server, dict[str, str]]) -> None:
    srv, _ = site
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        resp = httpx.post(
            srv.url + "/login", data={"name": "root", "password": "admin pass", "next": target}
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/app"


def test_password_guessing_is_throttled_per_account(site: tuple[Server, dict[str, str]]) -> None:
    srv, _ = site
    with httpx.Client(base_url=srv.url) as client:
        codes = [
            client.post("/login", data={"name": "root", "password": "guess"}).status_code
            for _ in range(6)
        ]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:]
        right = client.post("/login", data={"name": "root", "password": "admin pass"})
        assert right.status_code == 429 and "Too many failed logins" in right.text
        # Another account is not locked out by it.
        other = client.post("/login", data={"name": "olga", "password": "audit pass"})
        assert other.status_code == 303


def test_admin_page_adds_and_revokes_users(site: tuple[Server, dict[str, str]]) -> None:
    srv, _ = site
    same = {"Origin": srv.url}
    with (
        httpx.Client(base_url=srv.url, headers=same) as admin,
        httpx.Client(base_url=srv.url, headers=same) as olga,
    ):
        admin.post("/login", data={"name": "root", "password": "admin pass"})
        olga.post("/login", data={"name": "olga", "password": "audit pass"})
        assert olga.get("/app/users").status_code == 403
        home = admin.get("/app")
        assert home.status_code == 200 and 'href="/app/users"' in home.text
        page = admin.get("/app/users")
        assert page.status_code == 200 and "olga" in page.text
        added = admin.post(
            "/app/users",
            data={"name": "petr", "role": "judge", "scope": "", "password": "petr's password"},
        )
        assert added.status_code == 201
        token = added.text.split('<pre id="token">')[1].split("</pre>")[0]
        assert token.startswith("cuu_")
        me = httpx.get(srv.url + "/admin/users", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 403  # a judge's token, recognised
        bad = admin.post("/app/users", data={"name": "x", "role": "judge", "scope": "north"})
        assert bad.status_code == 400 and "district:ID or group:ID" in bad.text
        assert admin.post("/app/users/olga/revoke", data={"confirm": "yes"}).status_code == 303
        assert olga.get("/app").status_code == 303  # the session ended: back to login
        listed = admin.get("/admin/users").json()["users"]
        assert {(u["name"], u["active"]) for u in listed} == {
            ("root", True),
            ("olga", False),
            ("petr", True),
        }
