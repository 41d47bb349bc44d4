"""The admin's page as an admin uses it (issue 15, item 18).

A revocation asks first (a page of its own, no script needed), a password
shorter than the minimum is refused in one sentence, and a scope may name
only districts and camera groups the city has.  The same rules hold on the
command line.  The pages pass axe-core and fit a 360 px screen.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from custodes.access.users import MIN_PASSWORD
from custodes.ledger.instance import Instance
from tests.conftest import run_cli
from tests.fleet.conftest import DATA
from tests.geo import city
from tests.web.test_login import Server

ADMIN_PW = "the admin's password"
CHROMIUM = "/usr/bin/chromium"


def _entries(data: Path) -> list[dict[str, Any]]:
    store = Instance.load(data).reader().store
    try:
        return [json.loads(e) for e in store.read_entries(0, store.next_index())]
    finally:
        store.close()


def _kinds(data: Path, kind: str) -> int:
    return sum(1 for e in _entries(data) if e["type"] == kind)


@pytest.fixture
def site(instance: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """Districts west, centre and east; cameras of the OSM fixture (MSK-0001 in zone town)."""
    data, _ = instance
    files = city.write(tmp_path)
    run_cli("geo", "districts", "import", str(files["districts"]), data=data)
    run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
    for name, role in (("root", "admin"), ("olga", "auditor")):
        run_cli("users", "add", name, "--role", role, "--password-stdin", data=data,
                input=f"{ADMIN_PW} {name}".encode())  # fmt: skip
    run_cli("log", "checkpoint", data=data)
    srv = Server(data)
    srv.start()
    try:
        yield srv, data
    finally:
        srv.stop()


@contextmanager
def _admin(srv: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}, timeout=60) as client:
        resp = client.post("/login", data={"name": "root", "password": f"{ADMIN_PW} root"})
        assert resp.status_code == 303
        yield client


def _error(html: str) -> str:
    return unescape(html.split('id="form-error">')[1].split("</p>")[0])


def test_short_passwords_and_unknown_scopes_are_refused(site: tuple[Server, Path]) -> None:
    srv, data = site
    added_before = _kinds(data, "user.added")
    with _admin(srv) as admin:
        page = admin.get("/app/users").text
        assert f"At least {MIN_PASSWORD} characters." in page
        assert f'minlength="{MIN_PASSWORD}"' in page
        short = admin.post("/app/users", data={"name": "petr", "role": "judge",
                                               "password": "short pw"})  # fmt: skip
        assert short.status_code == 400
        assert (
            _error(short.text) == "a password must be at least 10 characters long (this one has 8)"
        )
        unknown = admin.post("/app/users", data={"name": "petr", "role": "judge",
                                                 "scope": "district:north"})  # fmt: skip
        assert unknown.status_code == 400
        assert _error(unknown.text) == "there is no district 'north' (known: centre, east, west)"
        assert 'value="district:north"' in unknown.text  # what was typed stays in the form
        group = admin.post("/app/users", data={"name": "petr", "role": "judge",
                                               "scope": "district:centre,group:metro"})  # fmt: skip
        assert group.status_code == 400
        assert _error(group.text) == "there is no camera group 'metro' (known: town)"
        assert _kinds(data, "user.added") == added_before  # nothing was logged
        ok = admin.post("/app/users", data={"name": "petr", "role": "judge",
                                            "scope": "district:centre,group:town",
                                            "password": "petr's long password"})  # fmt: skip
        assert ok.status_code == 201 and 'id="token"' in ok.text
        # The JSON API for scripts keeps the same rule.
        token = ok.text.split('<pre id="token">')[1].split("</pre>")[0]
        assert token.startswith("cuu_")
        api = admin.post("/admin/users/petr/change", json={"scope": "district:nowhere"})
        assert api.status_code == 400 and "there is no district 'nowhere'" in api.json()["error"]


def test_revoking_asks_first(site: tuple[Server, Path]) -> None:
    srv, data = site
    with _admin(srv) as admin:
        users = admin.get("/app/users").text
        assert 'href="/app/users/olga/revoke"' in users  # a link to a page, not a bare button
        confirm = admin.get("/app/users/olga/revoke")
        assert confirm.status_code == 200
        assert "<h1>Revoke olga?</h1>" in confirm.text
        assert "every open session stop working" in confirm.text
        assert 'name="confirm" value="yes"' in confirm.text
        # A POST that was not confirmed (an old form, a stray click) revokes nothing.
        unconfirmed = admin.post("/app/users/olga/revoke")
        assert unconfirmed.status_code == 200 and "<h1>Revoke olga?</h1>" in unconfirmed.text
        assert _kinds(data, "user.revoked") == 0
        listed = {u["name"]: u["active"] for u in admin.get("/admin/users").json()["users"]}
        assert listed["olga"] is True
        done = admin.post("/app/users/olga/revoke", data={"confirm": "yes"})
        assert done.status_code == 303 and done.headers["location"] == "/app/users?revoked=olga"
        assert "Revoked <strong>olga</strong>" in admin.get(done.headers["location"]).text
        assert _kinds(data, "user.revoked") == 1
        again = admin.get("/app/users/olga/revoke")
        assert again.status_code == 409 and "already revoked" in unescape(again.text)
        me = admin.get("/app/users/root/revoke")
        assert me.status_code == 409 and "you cannot revoke yourself" in unescape(me.text)


def test_the_command_line_keeps_the_same_rules(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    files = city.write(tmp_path)
    run_cli("geo", "districts", "import", str(files["districts"]), data=data)
    short = run_cli("users", "add", "ivan", "--role", "investigator", "--password-stdin",
                    data=data, input=b"abc\n", check=False)  # fmt: skip
    assert short.returncode != 0
    assert "a password must be at least 10 characters long (this one has 3)" in (
        short.stderr.decode()
    )
    unknown = run_cli("users", "add", "ivan", "--role", "investigator", "--scope",
                      "district:nowhere", data=data, check=False)  # fmt: skip
    assert unknown.returncode != 0
    assert "there is no district 'nowhere' (known: centre, east, west)" in unknown.stderr.decode()
    assert _kinds(data, "user.added") == 0
    run_cli("users", "add", "ivan", "--role", "investigator", "--scope", "district:west",
            data=data)  # fmt: skip
    change = run_cli("users", "change", "ivan", "--scope", "group:nope", data=data, check=False)
    assert change.returncode != 0 and "there is no camera group 'nope'" in change.stderr.decode()
    pw = run_cli("users", "password", "ivan", data=data, input=b"tiny\n", check=False)
    assert pw.returncode != 0 and "at least 10 characters" in pw.stderr.decode()
    helped = " ".join(run_cli("users", "add", "--help", data=data).stdout.decode().split())
    assert "(at least 10 characters)" in helped


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium")
def test_admin_pages_pass_axe_and_fit_a_phone(site: tuple[Server, Path]) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    from tests.web.test_pages_a11y import _axe, _too_wide

    srv, _ = site
    assert shutil.which(CHROMIUM)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            pg = browser.new_context(viewport={"width": 360, "height": 800}).new_page()
            pg.goto(srv.url + "/login?next=/app/users")
            pg.get_by_label("Name").fill("root")
            pg.get_by_label("Password").fill(f"{ADMIN_PW} root")
            pg.get_by_role("button", name="Log in").click()
            pg.wait_for_url(srv.url + "/app/users")
            problems = []
            for path in ("/app/users", "/app/users/olga/revoke"):
                pg.goto(srv.url + path)
                problems += [f"{path}: {v['id']}" for v in _axe(pg, srv.url)]
                problems += [f"{path}: {w}" for w in _too_wide(pg)]
            assert problems == []
            # Through the browser: the link, the question, the answer.
            pg.goto(srv.url + "/app/users")
            pg.get_by_role("link", name="Revoke olga").click()
            pg.get_by_role("button", name="Yes, revoke olga").click()
            pg.wait_for_url(srv.url + "/app/users?revoked=olga")
            assert "revoked" in pg.locator("table").inner_text()
        finally:
            browser.close()
