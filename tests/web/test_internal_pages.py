"""The staff pages in a real browser, against a real server, real ffmpeg footage and the log.

An investigator requests footage, an approver approves it, the investigator
releases it and the clip downloads; an auditor opens the sealed details; an
operator edits a camera.  Pages refuse people without the role.  Screenshots of
each step go to artifacts/screenshots/.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from custodes.access.identity import Identities, Scope
from custodes.access.sealing import check_commitment
from custodes.access.users import add_user
from custodes.ledger.instance import Instance
from tests.conftest import REPO, run_cli
from tests.fleet.conftest import DATA, post
from tests.web.test_login import Server

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "screenshots"
PASSWORDS = {
    "ivan": ("investigator", "ivan's password", ""),
    "anna": ("approver", "anna's password", ""),
    "olga": ("auditor", "olga's password", ""),
    "oleg": ("operator", "oleg's password", ""),
    "nina": ("operator", "nina's password", "district:tverskoy"),
}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None,
    reason="needs Chromium at /usr/bin/chromium and ffmpeg",
)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(data: Path) -> list[dict[str, Any]]:
    store = Instance.load(data).reader().store
    try:
        return [json.loads(e) for e in store.read_entries(0, store.next_index())]
    finally:
        store.close()


@pytest.fixture
def city(instance: tuple[Path, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A server with cameras, staff, and one recorded 4-second segment in the archive."""
    data, _ = instance
    run_cli("cameras", "import", str(DATA / "overpass_moscow.json"), data=data)
    agent = (
        run_cli("agents", "add", "recorder-1", "--cameras", "MSK-0001", data=data)
        .stdout.decode()
        .splitlines()[-1]
    )
    with Instance.load(data).open_log() as log, Identities(data) as ids:
        for name, (role, pw, scope) in PASSWORDS.items():
            add_user(log, ids, name, role, Scope.parse(scope), password=pw)
        log.integrate()
    clip = tmp_path / "segment.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "testsrc=duration=4:size=320x240:rate=10", "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    raw = clip.read_bytes()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    srv = Server(data)
    srv.start()
    try:
        seg = {"camera": "MSK-0001", "start": _stamp(start), "duration": 4,
               "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}  # fmt: skip
        status, body = post(srv.url + "/fleet/segments", {"segments": [seg]}, agent)
        assert status == 200 and body["accepted"] == 1, body
        put = urllib.request.Request(
            f"{srv.url}/fleet/archive?camera=MSK-0001&start={seg['start']}",
            data=raw,
            method="PUT",
            headers={"Authorization": f"Bearer {agent}"},
        )
        with urllib.request.urlopen(put, timeout=30) as r:
            assert r.status == 200
        yield {"server": srv, "data": data, "start": start, "segment": seg}
    finally:
        srv.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"internal-{name}.png"), full_page=True)


def _login(browser: Any, base: str, name: str, path: str) -> Any:
    """A fresh browser context for ``name``, logged in through the form that ``path`` leads to."""
    ctx = browser.new_context(accept_downloads=True)
    page = ctx.new_page()
    page.goto(base + path)
    assert "/login?next=" in page.url  # logged out: sent to the login form first
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name][1])
    if name == "ivan":
        _shot(page, "0-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + path)
    return page


def test_request_approve_release_download(city: dict[str, Any], browser: Any) -> None:
    srv, start = city["server"], city["start"]
    base = srv.url

    # (1) The investigator fills in the request form.
    ivan = _login(browser, base, "ivan", "/app/requests/new")
    ivan.get_by_label("Camera ids").fill("MSK-0001")
    ivan.get_by_label("From").fill((start - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S"))
    ivan.get_by_label("to", exact=True).fill(
        (start + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    ivan.get_by_label("Purpose").select_option("investigation")
    ivan.get_by_label("Case reference").fill("CASE-2026-0042")
    ivan.get_by_label("Justification").fill("Robbery at the kiosk on the square.")
    _shot(ivan, "1-request-form")
    ivan.get_by_role("button", name="Send the request").click()
    ivan.wait_for_url("**/app/requests/r-*?created=1")
    rid = ivan.locator("#request-id").inner_text()
    assert rid.startswith("r-") and rid in ivan.locator("#created").inner_text()
    assert ivan.locator("#state").inner_text() == "pending"
    assert ivan.get_by_role("button", name="Release and download the footage").count() == 0
    _shot(ivan, "2-request-created")

    # (2) The investigator may not decide anything: the queue is a 403 page.
    resp = ivan.goto(base + "/app/queue")
    assert resp is not None and resp.status == 403
    assert "approver, judge; you are investigator" in ivan.locator("#forbidden").inner_text()
    _shot(ivan, "3-queue-forbidden")

    # (3) The approver sees it in the queue, with its sealed details, and approves.
    anna = _login(browser, base, "anna", "/app/queue")
    section = anna.locator("section.queued", has_text=rid)
    assert "CASE-2026-0042" in section.inner_text()
    _shot(anna, "4-queue")
    section.get_by_role("button", name=f"Approve request {rid}").click()
    anna.wait_for_url(f"{base}/app/requests/{rid}")
    assert anna.locator("#state").inner_text() == "approved"
    _shot(anna, "5-approved")
    anna.goto(base + "/app/queue")
    assert anna.locator("#empty").is_visible()

    # (4) The investigator releases: the log entry first, then the download.
    ivan.goto(f"{base}/app/requests/{rid}")
    assert ivan.locator("#state").inner_text() == "approved"
    with ivan.expect_download(timeout=240_000) as info:
        ivan.get_by_role("button", name="Release and download the footage").click()
    download = info.value
    assert download.suggested_filename == f"{rid}.mp4"
    saved = Path(download.path())
    body = saved.read_bytes()
    assert len(body) > 1000 and body[4:8] == b"ftyp"
    ivan.goto(f"{base}/app/requests/{rid}")
    assert ivan.locator("#state").inner_text() == "released"
    _shot(ivan, "6-released")
    # The clip is kept: downloading it again gives the same bytes (and is logged).
    with ivan.expect_download(timeout=120_000) as info2:
        ivan.get_by_role("button", name="Download the released clip again").click()
    assert Path(info2.value.path()).read_bytes() == body
    assert [e["request"] for e in _entries(city["data"]) if e["type"] == "access.downloaded"] == [
        rid
    ]

    released = [e for e in _entries(city["data"]) if e["type"] == "access.released"]
    assert len(released) == 1 and released[0]["request"] == rid
    assert released[0]["output"] == {
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
    }
    assert released[0]["segments"] == [city["segment"]["sha256"]]

    # (5) The auditor opens the sealed details, which match the logged commitment.
    olga = _login(browser, base, "olga", f"/app/audit?request={rid}&why=release+review")
    sealed = olga.locator("#sealed").inner_text()
    assert "CASE-2026-0042" in sealed and "Robbery at the kiosk" in sealed
    assert olga.locator("#commitment-ok").is_visible()
    _shot(olga, "7-audit")
    # ... but may not release or request anything.
    resp = olga.goto(base + "/app/requests/new")
    assert resp is not None and resp.status == 403


def test_operator_edits_a_camera_and_the_change_is_logged(
    city: dict[str, Any], browser: Any
) -> None:
    base = city["server"].url
    oleg = _login(browser, base, "oleg", "/app/registry")
    oleg.get_by_role("link", name="Edit camera MSK-0002").click()
    oleg.wait_for_url(base + "/app/registry/MSK-0002")
    oleg.get_by_label("Name").fill("Театральная площадь, north side")
    oleg.get_by_label("District").fill("tverskoy")
    _shot(oleg, "8-camera-edit")
    oleg.get_by_role("button", name="Save and log the change").click()
    oleg.wait_for_url(base + "/app/registry?changed=MSK-0002")
    assert "MSK-0002 was changed" in oleg.locator("#changed").inner_text()
    _shot(oleg, "9-registry")

    # A bad value is refused with a sentence, and nothing is logged.
    oleg.goto(base + "/app/registry/MSK-0002")
    oleg.get_by_label("Latitude").fill("123")
    oleg.get_by_role("button", name="Save and log the change").click()
    assert "latitude" in oleg.locator("#form-error").inner_text()

    changed = [e for e in _entries(city["data"]) if e["type"] == "camera.changed"]
    assert [(e["camera"], e["changes"]) for e in changed] == [
        ("MSK-0002", {"district": "tverskoy", "name": "Театральная площадь, north side"})
    ]
    # An operator scoped to one district edits only the cameras there.
    nina = _session(base, "nina")
    try:
        listed = nina.get("/app/registry").text
        assert 'aria-label="Edit camera MSK-0002"' in listed
        assert 'aria-label="Edit camera MSK-0001"' not in listed
        assert nina.get("/app/registry/MSK-0001").status_code == 403
        outside = nina.post("/app/registry/MSK-0001", data={"lat": "55.7", "lon": "37.6"})
        assert outside.status_code == 403
        away = {"lat": "55.76015", "lon": "37.61856", "district": "arbat"}
        moved = nina.post("/app/registry/MSK-0002", data=away)
        assert moved.status_code == 403 and "outside your scope" in moved.text
    finally:
        nina.close()

    # An operator has no audit pages; someone logged out is sent to log in.
    resp = oleg.goto(base + "/app/audit")
    assert resp is not None and resp.status == 403
    anonymous = browser.new_page()
    anonymous.goto(base + "/app/audit")
    assert anonymous.url == base + "/login?next=/app/audit"


def _session(base: str, name: str) -> Any:
    import httpx

    client = httpx.Client(base_url=base, timeout=60, headers={"Origin": base})
    resp = client.post("/login", data={"name": name, "password": PASSWORDS[name][1]})
    assert resp.status_code == 303
    return client


def test_forms_refuse_bad_input_other_sites_and_the_wrong_person(city: dict[str, Any]) -> None:
    base, start = city["server"].url, city["start"]
    window = {
        "scope": "cameras",
        "cameras": "MSK-0001",
        "from": _stamp(start - timedelta(seconds=30)),
        "to": _stamp(start + timedelta(seconds=30)),
        "purpose": "investigation",
        "justification": "A reason.",
    }
    ivan, anna = _session(base, "ivan"), _session(base, "anna")
    try:
        bad = ivan.post("/app/requests/new", data={**window, "case": "my case"})
        assert bad.status_code == 400
        assert 'id="form-error"' in bad.text and "case" in bad.text
        assert 'value="my case"' in bad.text  # the form keeps what was typed
        foreign = ivan.post(
            "/app/requests/new",
            data={**window, "case": "CASE-2026-0001"},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign.status_code == 403
        assert not [e for e in _entries(city["data"]) if e["type"] == "access.requested"]

        made = ivan.post("/app/requests/new", data={**window, "case": "CASE-2026-0001"})
        assert made.status_code == 303
        rid = made.headers["location"].split("/")[-1].split("?")[0]
        # The requester cannot approve, and is told why.
        own = ivan.post(f"/app/requests/{rid}/approve", data={})
        assert own.status_code == 403 and "approver, judge" in own.text
        # A denial needs a reason, then it is logged with it.
        assert anna.post(f"/app/requests/{rid}/deny", data={"reason": ""}).status_code == 400
        denied = anna.post(f"/app/requests/{rid}/deny", data={"reason": "No case is open."})
        assert denied.status_code == 303
        mine = ivan.get("/app/requests")
        assert rid in mine.text and "denied" in mine.text
        page = ivan.get(f"/app/requests/{rid}")
        assert "No case is open." in page.text and "Release and download" not in page.text
        release = ivan.post(f"/app/requests/{rid}/release")
        assert release.status_code == 403 and "denied" in release.text
        # An area instead of camera ids: every camera within the circle.
        area = {**window, "scope": "area", "cameras": "", "case": "CASE-2026-0002"}
        circle = ivan.post(
            "/app/requests/new",
            data={**area, "lat": "55.75583", "lon": "37.61730", "radius_m": "50"},
        )
        assert circle.status_code == 303
        page = ivan.get(circle.headers["location"])
        assert "MSK-0001" in page.text and "50 m around 55.75583, 37.6173" in page.text
        nowhere = ivan.post(
            "/app/requests/new", data={**area, "lat": "0", "lon": "0", "radius_m": "50"}
        )
        assert nowhere.status_code == 404 and "no registered camera" in nowhere.text

        # The auditor publishes the sealed details; anyone can check them.
        olga = _session(base, "olga")
        shown = olga.get(f"/app/audit?request={rid}&why=case+closed")
        assert 'id="commitment-ok"' in shown.text
        revealed = olga.post("/app/audit/reveal", data={"request": rid, "reason": "Case closed."})
        assert revealed.status_code == 303
        assert 'id="revealed"' in olga.get(revealed.headers["location"]).text
        olga.close()
    finally:
        ivan.close()
        anna.close()
    denials = [e for e in _entries(city["data"]) if e["type"] == "access.denied"]
    assert [(d["request"], d["reason"]) for d in denials] == [(rid, "No case is open.")]
    (shown,) = [e for e in _entries(city["data"]) if e["type"] == "access.revealed"]
    requested = [e for e in _entries(city["data"]) if e["type"] == "access.requested"]
    assert shown["details"]["case"] == "CASE-2026-0001"
    assert check_commitment(requested[0]["commitment"], shown["salt"], shown["details"])


def test_fields_whose_text_is_published_say_so_and_preview_it(
    city: dict[str, Any], browser: Any
) -> None:
    """Reasons typed on the staff pages go into the public log word for word (issue 15,
    item 6): each such field says so, and shows what the log will read as one types."""
    srv, start = city["server"], city["start"]
    base = srv.url
    ivan = _login(browser, base, "ivan", "/app/requests/new")
    note = ivan.locator("#justification-note").inner_text()
    assert "Sealed" in note and "not in the public log" in note
    assert "justification-note" in (ivan.get_by_label("Justification").get_attribute(
        "aria-describedby") or "")  # fmt: skip
    ivan.get_by_label("Camera ids").fill("MSK-0001")
    ivan.get_by_label("From").fill((start - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S"))
    ivan.get_by_label("to", exact=True).fill(
        (start + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    ivan.get_by_label("Purpose").select_option("investigation")
    ivan.get_by_label("Case reference").fill("CASE-2026-0043")
    ivan.get_by_label("Justification").fill("A fight outside the station.")
    ivan.get_by_role("button", name="Send the request").click()
    ivan.wait_for_url("**/app/requests/r-*?created=1")
    rid = ivan.locator("#request-id").inner_text()

    anna = _login(browser, base, "anna", "/app/queue")
    field = anna.locator(f"#deny-reason-{rid}")
    assert "Published word for word in the public log" in anna.locator(
        f"#deny-reason-{rid}-note").inner_text()  # fmt: skip
    assert field.get_attribute("aria-describedby") == f"deny-reason-{rid}-note"
    field.fill("No crime is named for this camera")
    preview = anna.locator(f"#deny-reason-{rid}-preview")
    assert preview.inner_text() == "The public log will read: “No crime is named for this camera”"
    anna.get_by_role("button", name=f"Deny request {rid}").click()
    anna.wait_for_url(f"{base}/app/requests/{rid}")
    denied = [e for e in _entries(city["data"]) if e["type"] == "access.denied"]
    assert denied[-1]["reason"] == "No crime is named for this camera"
