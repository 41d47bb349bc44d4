"""The auditor's page as an auditor uses it (issue 15, item 16).

An investigator asks for the same camera under four different cases: the
gateway's sweep flags the pattern (repeated-place).  The auditor sees the
flag grouped by person (the pseudonym) and by place, drawn on a map, finds
the requests by searching, and every read of sealed details is logged before
the details are shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from html import unescape
from typing import Any

from tests.web import test_internal_pages as kit

city = kit.city  # the fixtures: a served city with a recorded segment, and Chromium
browser = kit.browser
_entries, _login = kit._entries, kit._login
T = "%Y-%m-%dT%H:%M:%S"


@contextmanager
def _session(base: str, name: str) -> Iterator[Any]:
    client = kit._session(base, name)
    try:
        yield client
    finally:
        client.close()


def _words(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _four_cases(city: dict[str, Any]) -> list[str]:
    """Four requests for MSK-0001 under four cases; waits for the sweep to flag them."""
    base, start = city["server"].url, city["start"]
    rids = []
    with _session(base, "ivan") as ivan:
        for n in range(1, 5):
            form = {
                "scope": "cameras", "cameras": "MSK-0001", "purpose": "investigation",
                "from": (start - timedelta(seconds=30)).strftime(T),
                "to": (start + timedelta(seconds=30)).strftime(T),
                "case": f"CASE-2026-000{n}", "justification": f"Incident number {n}.",
            }  # fmt: skip
            sent = ivan.post("/app/requests/new", data=form, follow_redirects=False)
            assert sent.status_code == 303
            rids.append(sent.headers["location"].split("/")[-1].split("?")[0])
    deadline = time.monotonic() + 120  # the gateway sweeps every 30 s
    while time.monotonic() < deadline:
        if any(e["type"] == "anomaly.flagged" for e in _entries(city["data"])):
            return rids
        time.sleep(2)
    raise AssertionError("no anomaly.flagged entry within 120 s")


def test_flags_by_person_and_place_search_and_logged_reads(
    city: dict[str, Any], browser: Any
) -> None:
    from tests.web.test_pages_a11y import _axe, _too_wide

    rids = _four_cases(city)
    base = city["server"].url
    flagged = [e for e in _entries(city["data"]) if e["type"] == "anomaly.flagged"]
    rules = {e["rule"] for e in flagged}
    assert "repeated-place" in rules
    requested = [e for e in _entries(city["data"]) if e["type"] == "access.requested"]
    ivan = requested[0]["requester"]
    with _session(base, "olga") as olga:
        page = olga.get("/app/audit").text
        person = _words(page.split('id="by-person-title"')[1].split("</table>")[0])
        assert f"{ivan} {len(flagged)} " in person and "repeated-place" in person
        places = _words(page.split('id="by-place"')[1].split("</ul>")[0])
        n = len(flagged)
        assert f"{n} flag{'s' if n != 1 else ''} (" in places and "cameras MSK-0001" in places
        assert 'data-lat="55.755826' in page  # the place has a position for the map

        # Search: by pseudonym, and by words together; public fields only, nothing logged.
        reads_before = [e for e in _entries(city["data"]) if e["type"] == "access.details_read"]
        found = olga.get("/app/audit", params={"q": ivan}).text
        assert f"4 requests match “{ivan}”. Only public fields" in _words(found)
        for rid in rids:
            assert f'href="/app/audit?request={rid}#sealed-title"' in found
        narrow = olga.get("/app/audit", params={"q": f"{rids[2]} pending"}).text
        assert "1 request match" in _words(narrow)
        none = olga.get("/app/audit", params={"q": "no-such-thing"}).text
        assert "0 requests match" in _words(none)
        assert [e for e in _entries(city["data"]) if e["type"] == "access.details_read"] == (
            reads_before
        )

        # Opening sealed details: the read is an entry of the log before the page exists.
        opened = olga.get("/app/audit", params={"request": rids[0], "why": "flag review"})
        m = re.search(r"entry\s+(\d+)\s+of the log", opened.text)
        assert m is not None and "CASE-2026-0001" in opened.text
        entry = _entries(city["data"])[int(m.group(1))]
        assert entry["type"] == "access.details_read" and entry["request"] == rids[0]
        assert entry["why"] == "flag review"
        again = olga.get("/app/audit", params={"request": rids[0], "why": "second look"})
        m2 = re.search(r"entry\s+(\d+)\s+of the log", again.text)
        assert m2 is not None and int(m2.group(1)) > int(m.group(1))  # each read its own entry

    # The approver sees the same flag beside each of those requests in the queue.
    with _session(base, "anna") as anna:
        queue = anna.get("/app/queue").text
        for rid in rids:
            section = queue.split(f'aria-labelledby="q-{rid}"')[1].split("</section>")[0]
            flags = _words(section.split(f'id="flags-{rid}"')[1])
            assert flags.startswith(">Open flags repeated-place : One place was requested"), flags[
                :99
            ]
            assert "made 3 other requests: 3 pending." in _words(section)

    # In the browser: the map draws the place; the page passes axe and fits 360 px.
    pg = _login(browser, base, "olga", "/app/audit?q=" + ivan)
    pg.wait_for_selector("#flag-map[data-ready=true]", timeout=20_000)
    assert pg.locator("#flag-map path.leaflet-interactive").count() == 1
    problems = [v["id"] for v in _axe(pg, base)]
    pg.set_viewport_size({"width": 360, "height": 800})
    problems += _too_wide(pg)
    assert problems == []
