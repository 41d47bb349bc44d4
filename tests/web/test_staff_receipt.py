"""The staff page of a released request offers the clip's receipt beside its download
(issue 15, item 4), and what it offers checks against the downloaded clip with the log's key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.web import test_internal_pages as kit
from tests.web.test_staff_investigator import _form, _session

city = kit.city
browser = kit.browser


def test_the_request_page_offers_a_receipt_that_checks(
    city: dict[str, Any], tmp_path: Path
) -> None:
    base = city["server"].url
    with _session(base, "ivan") as ivan, _session(base, "anna") as anna:
        sent = ivan.post("/app/requests/new", data=_form(city, cameras="MSK-0001"),
                         follow_redirects=False)  # fmt: skip
        rid = sent.headers["location"].split("/")[-1].split("?")[0]
        assert anna.post(f"/app/requests/{rid}/approve", data={"reason": "ok"}).status_code in (
            200,
            303,
        )
        before = ivan.get(f"/app/requests/{rid}").text
        assert 'id="receipt"' not in before  # nothing released, nothing to prove
        got = ivan.post(f"/app/requests/{rid}/release", data={}, timeout=300)
        assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
        clip = tmp_path / f"{rid}.mp4"
        clip.write_bytes(got.content)
        page = ivan.get(f"/app/requests/{rid}").text
        links = re.findall(r'href="(/access/requests/[^"]+/receipt[^"]*)"', page)
        assert len(links) == 2, page
        names = []
        for link in links:
            r = ivan.get(link.replace("&amp;", "&"))
            assert r.status_code == 200, r.text
            m = re.search(r'filename="([^"]+)"', r.headers["content-disposition"])
            assert m is not None
            name = m.group(1)
            (tmp_path / name).write_bytes(r.content)
            names.append(name)
        assert sorted(names) == sorted([f"{rid}.mp4.release.json", f"{rid}.mp4.tlog-proof"])
    vkey = (city["data"] / "keys" / "log.vkey").read_text().strip()
    for name in names:
        ok = run_cli("access", "check-receipt", str(tmp_path / name), "--vkey", vkey)
        assert ok.returncode == 0
