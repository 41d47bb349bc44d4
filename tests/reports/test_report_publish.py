"""What a report says about redaction, the audit command it prints, and reports on the site.

Issue 15, items 2 and 3: every sentence is derived from the entries it counts;
no placeholders; ``custodes report --publish`` and ``/reports``.
"""

from __future__ import annotations

import html
import json
import re
import shlex
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.reports.conftest import build_log, city_entries

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _faces_only() -> list[dict[str, Any]]:
    """The city, with its releases blurred as the gateway blurs them: faces only."""
    out = []
    for e in city_entries():
        if e["type"] == "access.released" and e["redaction"].get("method") != "none":
            e = {**e, "redaction": {"faces": True, "plates": False, "method": "blur"}}
        out.append(e)
    return out


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _facts(page: str) -> dict[str, str]:
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="n">([^<]+)</td></tr>', page)
    return {html.unescape(k): v for k, v in rows}


def test_a_report_says_plates_were_masked_only_when_the_release_entries_say_so(
    tmp_path: Path,
) -> None:
    inst = build_log(tmp_path / "data", _faces_only())
    out = tmp_path / "nov.html"
    run_cli("report", "--period", "2026-11", "--format", "html", "--out", str(out), data=inst.path)
    page = out.read_text()
    facts = _facts(page)
    assert "faces and plates" not in page
    assert facts["Released redacted"] == facts["Released with faces masked"] != "0"
    assert facts["Released with licence plates masked"] == "0"
    assert "No release in the period masked licence plates" in _text(page)

    both = build_log(tmp_path / "both", city_entries())  # entries saying plates were masked
    run_cli("report", "--period", "2026-11", "--format", "html", "--out", str(out), data=both.path)
    facts = _facts(out.read_text())
    assert facts["Released with licence plates masked"] == facts["Released redacted"] != "0"
    assert "No release in the period masked licence plates" not in out.read_text()


def test_the_html_names_the_real_key_source_and_json_and_its_command_runs(
    tmp_path: Path,
) -> None:
    inst = build_log(tmp_path / "data")
    run_cli("report", "--period", "2026-11", "--out", str(tmp_path / "nov.json"), data=inst.path)
    page_path = tmp_path / "nov.html"
    run_cli("report", "--period", "2026-11", "--format", "html", "--out", str(page_path),
            data=inst.path)  # fmt: skip
    page = page_path.read_text()
    for placeholder in ("LOG-URL-OR-DIR", "LOG-VERIFIER-KEY", "report-2026-11.json", "REPORT.json"):
        assert placeholder not in page
    report = json.loads((tmp_path / "nov.json").read_text())
    import base64

    root_hex = base64.b64decode(report["checkpoint"]["root"]).hex()
    assert f"root <code>{root_hex}</code>" in page  # in hex, as custodes verify prints it
    assert inst.verifier_key in html.unescape(page)
    assert 'href="nov.json"' in page
    # The command the page prints, copied and run beside the JSON, passes.
    command = html.unescape(re.search(r"<pre>(custodes audit [^<]+)</pre>", page)[1])  # type: ignore[index]
    args = shlex.split(command)[1:]
    assert args[1] == "nov.json" and str(inst.path.absolute()) in args
    args[1] = str(tmp_path / "nov.json")
    proc = run_cli(*args)
    assert "match the log" in proc.stdout.decode()


@pytest.fixture
def served(tmp_path: Path) -> Any:
    from tests.geo.city import serving

    inst = build_log(tmp_path / "data")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        proc = run_cli("report", "--period", "2026-11", "--publish", data=inst.path)
        assert "published report-2026-11.json" in proc.stderr.decode()
        run_cli("report", "--period", "2026-10", "--publish", data=inst.path)
        with serving(inst.path) as url:
            yield url, inst


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    with _OPENER.open(url, timeout=30) as r:
        return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}


def test_published_reports_are_listed_by_period_with_their_json_and_audit_by_url(
    served: tuple[str, Any],
) -> None:
    url, inst = served
    _, body, _ = _get(url + "/reports")
    page = body.decode()
    assert "<h1>Transparency reports</h1>" in page
    assert page.index(">2026-11<") < page.index(">2026-10<")  # newest first
    for suffix in (".json", ".html", ".pdf"):
        assert f'href="/reports/report-2026-11{suffix}"' in page
    status, raw, headers = _get(url + "/reports/report-2026-11.json")
    assert raw == (inst.path / "reports" / "report-2026-11.json").read_bytes()
    status, report_page, _ = _get(url + "/reports/report-2026-11.html")
    text = html.unescape(report_page.decode())
    assert f"--source {url}/log" in text and inst.verifier_key in text
    assert "LOG-URL-OR-DIR" not in text
    status, pdf, headers = _get(url + "/reports/report-2026-11.pdf")
    assert pdf.startswith(b"%PDF") and headers["content-type"] == "application/pdf"
    # The archive's JSON URL is what audit and monitor --statistics take.
    proc = run_cli("audit", f"{url}/reports/report-2026-11.json", "--source", f"{url}/log",
                   "--vkey", inst.verifier_key)  # fmt: skip
    assert "all" in proc.stdout.decode() and "match the log" in proc.stdout.decode()
    proc = run_cli("monitor", "--source", f"{url}/log", "--vkey", inst.verifier_key, "--once",
                   "--statistics", f"{url}/reports/report-2026-11.json", check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(url + "/reports/report-1999-01.json")
    assert err.value.code == 404
    err.value.close()


def test_the_reports_pages_pass_axe_and_fit_a_phone(served: tuple[str, Any]) -> None:
    import shutil

    if shutil.which("/usr/bin/chromium") is None:
        pytest.skip("needs Chromium at /usr/bin/chromium")
    sync = pytest.importorskip("playwright.sync_api")
    from tests.web.test_pages_a11y import AXE, _axe, _too_wide

    if not AXE.is_file():
        pytest.skip("axe-core is missing: run scripts/web-assets.sh")
    url, _ = served
    problems: list[str] = []
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            pg = b.new_page()
            for path in ("/reports", "/reports/report-2026-11.html"):
                for width in (1366, 360):
                    pg.set_viewport_size({"width": width, "height": 900})
                    pg.goto(url + path)
                    if width == 1366 and path == "/reports":
                        problems += [
                            f"{path}: axe {v['id']} at {v['nodes']}" for v in _axe(pg, url)
                        ]
                        current = pg.locator("header nav a[aria-current=page]").inner_text()
                        assert pg.title() == f"{current} · custodes"
                    elif width == 360:
                        problems += [f"{path} at 360px: {w}" for w in _too_wide(pg)]
        finally:
            b.close()
    assert problems == [], "\n".join(problems)
