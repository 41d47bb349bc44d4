"""Finding things on the public site (issue 15, item 11): the camera list and its search, a
page per camera, CSV and GeoJSON downloads, and the log's entries by type and time, each with
its inclusion proof explained.

One small city (``tests.geo.city``) with a camera whose record changed and one retired, one
``custodes serve``; every check reads pages and downloads as a person's browser would.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.geo import city

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with _OPENER.open(url, timeout=20) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _page(url: str) -> str:
    status, body, _ = _get(url)
    assert status == 200, (url, body[:300])
    return body.decode()


def _text(page: str) -> str:
    """The page's words, without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _csv(url: str) -> list[dict[str, str]]:
    status, body, headers = _get(url)
    assert status == 200, (url, body[:300])
    assert headers["content-type"].startswith("text/csv")
    assert "attachment" in headers.get("content-disposition", "")
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from custodes.fleet import entries as F

    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        data, _vkey = city.make_instance(tmp_path_factory.mktemp("city"))
        t = city._ms(f"{city.DAY}T15:00:00Z")
        changed = F.camera_changed(
            "cam-c2", {"name": "Market Street 5", "operator": "=HYPERLINK(1)"}, t
        )
        # 55 more changes, so that the entry browser has more than one page of them.
        more = [F.camera_changed("cam-out", {"zone": f"z{k}"}, t + k) for k in range(1, 56)]
        lines = "".join(json.dumps(e) + "\n" for e in [changed, *more]).encode()
        run_cli("log", "append", "-", data=data, input=lines)
        run_cli("cameras", "retire", "cam-e1", "--reason", "pole removed", data=data)
        run_cli("log", "checkpoint", data=data)
        run_cli("report", "--period", "2026-11", "--publish", data=data)
        with city.serving(data) as url:
            yield url, data


def _entry_links(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/log/entries/(\d+)"', page)]


def ids(page: str) -> list[str]:
    """The cameras a list page shows, in order."""
    return re.findall(r'<th scope="row"><a href="/cameras/([^"]+)"', page)


def test_the_camera_list_finds_by_address_or_id_and_keeps_the_search_in_the_url(
    site: tuple[str, Path],
) -> None:
    url, _ = site
    home = _page(url + "/")
    assert 'action="/cameras"' in home and 'name="q"' in home  # search from the map
    assert 'href="/cameras"' in home and 'href="/log/entries"' in home  # and from the nav

    page = _page(url + "/cameras?q=market+street")
    assert re.findall(r'href="/cameras/([^"]+)"', page) == ["cam-c2"]
    assert 'value="market street"' in page  # the search stays in the form and the URL
    assert "1 camera found" in _text(page)
    # The downloads offered are of the same search.
    assert 'href="/public/cameras.csv?q=market+street"' in page

    assert ids(_page(url + "/cameras?district=centre")) == ["cam-c1", "cam-c2", "cam-c3"]
    assert ids(_page(url + "/cameras?status=retired")) == ["cam-e1"]
    assert ids(_page(url + "/cameras?status=silent&district=centre")) == ["cam-c3"]
    assert ids(_page(url + "/cameras?q=CAM-W1")) == ["cam-w1"]
    assert len(ids(_page(url + "/cameras"))) == len(city.CAMERAS)

    status, body, _ = _get(url + "/cameras?status=broken")
    assert status == 400
    assert (
        "the status 'broken' must be one of recording, silent, unknown, retired"
        in html.unescape(body.decode())
    )
    status, body, _ = _get(url + "/cameras?district=atlantis")
    assert status == 400 and "there is no district 'atlantis'" in html.unescape(body.decode())


def test_a_camera_page_shows_its_record_history_and_outages_each_linked_to_its_entry(
    site: tuple[str, Path],
) -> None:
    url, _ = site
    page = _page(url + "/cameras/cam-c2")
    words = _text(page)
    assert "Camera cam-c2" in words and "Market Street 5" in words and "Centre" in words
    assert "camera.registered: registered in the public registry" in words
    assert "camera.changed: its record changed" in words
    assert "access.disclosed" in words  # a disclosed request named it
    linked = _entry_links(page)
    assert linked, "every history row links to its entry"
    # Following the change's link shows the change itself, with its proof.
    changed = [i for i in linked if '"Market Street 5"' in _text(_page(url + f"/log/entries/{i}"))]
    assert changed
    entry = _text(_page(url + f"/log/entries/{changed[0]}"))
    assert "camera.changed" in entry and "This entry is in the log." in entry

    silent = _text(_page(url + "/cameras/cam-c3"))
    assert "camera.silent: silent since 2026-11-01T22:00:00Z" in silent
    assert "outage.declared" in silent and "power cut" in silent and "declared late" in silent
    retired = _text(_page(url + "/cameras/cam-e1"))
    assert "retired" in retired and "pole removed" in retired
    assert "camera.retired" in retired
    # The recording timeline is there (this city's fleet logged no heartbeats).
    assert "Its recording timeline" in silent and "No heartbeat interval is logged" in silent

    status, body, _ = _get(url + "/cameras/no-such-camera")
    assert status == 404
    assert "There is no camera 'no-such-camera' in the public log" in html.unescape(body.decode())
    status, body, _ = _get(url + "/cameras/cam-c3?from=yesterday")
    assert status == 400 and "from time" in html.unescape(body.decode())


def _checkpoint(url: str) -> tuple[int, str]:
    _, note, _ = _get(url + "/log/checkpoint")
    lines = note.decode().splitlines()
    return int(lines[1]), base64.b64decode(lines[2]).hex()


def test_an_entry_page_explains_its_inclusion_proof_step_by_step_up_to_the_signed_root(
    site: tuple[str, Path],
) -> None:
    url, _ = site
    size, root = _checkpoint(url)
    for index in (0, 5, size - 1):
        page = _page(url + f"/log/entries/{index}")
        _, raw, _ = _get(url + f"/log/entry/{index}")
        hashes = re.findall(r'<code class="key">([0-9a-f]{64})</code>', page)
        leaf = hashlib.sha256(b"\x00" + raw).hexdigest()
        assert hashes[0] == leaf, "the leaf hash is SHA-256 of a zero byte and the entry"
        proof = json.loads(_get(url + f"/log/proof/inclusion?index={index}&size={size}")[1])
        want = [base64.b64decode(p).hex() for p in proof["proof"]]
        # leaf, then (proof hash, result) per step, then the checkpoint's root
        assert hashes[1:-1:2] == want
        assert hashes[-2] == root if want else hashes[0] == root
        assert hashes[-1] == root
        words = _text(page)
        assert "This entry is in the log." in words
        assert f"checkpoint {size}" in words and "on its left" in words or "on its right" in words
        assert json.loads(raw)["type"] in words

    for path, status, text in (
        (
            f"/log/entries/{size + 10}",
            404,
            f"is not covered by the public checkpoint (size {size})",
        ),
        ("/log/entries/x1", 400, "must be a whole number"),
    ):
        got, body, _ = _get(url + path)
        assert got == status and text in html.unescape(body.decode()), path


def test_the_entry_browser_filters_by_type_and_time_and_pages_with_the_filter_in_the_url(
    site: tuple[str, Path],
) -> None:
    url, _ = site
    page = _page(url + "/log/entries?type=camera.changed")
    assert "56 entries; page 1 of 2" in _text(page)
    first = _entry_links(page)
    assert len(first) == 50 and first == sorted(first, reverse=True)  # newest first
    older = re.search(r'href="(/log/entries\?type=camera.changed&amp;page=2)"', page)
    assert older, "the next page keeps the filter"
    second = _entry_links(_page(url + html.unescape(older.group(1))))
    assert len(second) == 6 and max(second) < min(first)

    # By time: the hour of the access decisions (12:00 to 13:00 on the city's day).
    window = f"from={city.DAY}T12:00&to={city.DAY}T13:00"
    page = _page(url + f"/log/entries?{window}")
    assert f'value="{city.DAY}T12:00"' in page
    found = _entry_links(page)
    kinds = {json.loads(_get(url + f"/log/entry/{i}")[1])["type"] for i in found}
    assert "access.requested" in kinds and "camera.changed" not in kinds
    rows = _csv(url + f"/public/entries.csv?{window}")
    assert [int(r["index"]) for r in rows] == found
    assert all(f"{city.DAY}T12" in r["time"] for r in rows)

    for query, text in (
        ("type=no.such.type", "the public log holds no entry of type 'no.such.type'"),
        ("from=soon", "from time"),
        ("page=0", "the page must be 1 or more"),
        (f"from={city.DAY}T13:00&to={city.DAY}T12:00", "the window must end after it starts"),
    ):
        status, body, _ = _get(url + "/log/entries?" + query)
        assert status == 400 and text in html.unescape(body.decode()), query


def test_cameras_and_every_public_table_download_as_csv(site: tuple[str, Path]) -> None:
    url, _ = site
    rows = {r["id"]: r for r in _csv(url + "/public/cameras.csv")}
    assert set(rows) == {c[0] for c in city.CAMERAS}
    assert rows["cam-e1"]["status"] == "retired" and rows["cam-c1"]["district"] == "centre"
    # A value a spreadsheet would run as a formula is written as text.
    assert rows["cam-c2"]["operator"] == "'=HYPERLINK(1)"
    found = _csv(url + "/public/cameras.csv?status=silent")
    assert [r["id"] for r in found] == ["cam-c3"]
    _, body, _ = _get(url + "/public/cameras.geojson?q=market")
    assert [f["id"] for f in json.loads(body)["features"]] == ["cam-c2"]

    linked: set[str] = set()
    for path in ("/cameras", "/coverage", "/statistics", "/outages", "/reports", "/verify"):
        linked |= set(re.findall(r'href="(/public/tables/[a-z-]+\.csv)"', _page(url + path)))
    assert len(linked) == 10
    for path in sorted(linked):
        _csv(url + path)  # each answers as a CSV download
    [report] = _csv(url + "/public/tables/reports.csv")
    assert report["period"] == "2026-11" and _get(url + report["json"])[0] == 200
    # No witness is set in this city: the header says what would be there.
    assert _get(url + "/public/tables/witnesses.csv")[1].startswith(b"witness,url,vkey,")
    cov = {r["district"]: r for r in _csv(url + "/public/tables/districts.csv")}
    # cam-e1 was retired, so the east counts none in service.
    assert {d: int(cov[d]["cameras"]) for d in city.EXPECTED} == {**city.EXPECTED, "east": 0}
    purposes = {r["purpose"]: r for r in _csv(url + "/public/tables/requests-by-purpose.csv")}
    assert purposes["investigation"]["requested"] == "2"
    types = {r["type"]: int(r["entries"]) for r in _csv(url + "/public/tables/entry-types.csv")}
    assert types["camera.registered"] == len(city.CAMERAS)
    status, body, _ = _get(url + "/public/tables/salaries.csv")
    assert status == 404 and "there is no public table 'salaries'" in html.unescape(body.decode())


def test_browsing_writes_nothing_to_the_log(site: tuple[str, Path]) -> None:
    url, _ = site
    before = _checkpoint(url)
    pages = ["/cameras?q=cam", "/cameras/cam-c1", "/log/entries", "/log/entries/3"]
    for path in [*pages, "/public/cameras.csv", "/public/entries.csv", "/public/tables/flags.csv"]:
        assert _get(url + path)[0] == 200, path
    import time

    time.sleep(0.5)  # the server integrates every 0.1 s
    assert _checkpoint(url) == before
