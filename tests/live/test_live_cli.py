"""Live grants from the command line and through POST /access/requests, and a live grant is
never exported as a clip."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.access.gateway_kit import AppCity, app_city
from tests.conftest import run_cli
from tests.live.kit import LIVE, approve


@pytest.fixture(scope="module")
def a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppCity]:
    with app_city(tmp_path_factory.mktemp("live-cli")) as got:
        yield got


def _cli(a: AppCity, *args: str, check: bool = True) -> tuple[int, str, str]:
    got = run_cli("access", "request", *args, "--server", str(a.client.base_url),
                  "--token", a.tokens["ivan"], check=check)  # fmt: skip
    return got.returncode, got.stdout.decode(), got.stderr.decode()


def test_access_request_live_logs_a_live_grant_and_prints_it_as_json(a: AppCity) -> None:
    _rc, out, _ = _cli(a, "--live", "--cameras", "cam-n1", "--minutes", "15", "--purpose",
                       "public-safety", "--case", "CASE-2026-0077", "--why", "A march.",
                       "--json")  # fmt: skip
    got = json.loads(out)
    assert got["live"] is True and got["minutes"] == 15 and got["state"] == "pending"
    rid = got["request"]
    r = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan"))
    assert r.json()["minutes"] == 15
    _rc, out, _ = _cli(a, "--live", "--emergency", "--cameras", "cam-n1", "--minutes", "5",
                       "--purpose", "public-safety", "--case", "CASE-2026-0077", "--why",
                       "A crush at the gates.")  # fmt: skip
    rid2 = out.strip().splitlines()[-1]
    assert a.client.get(f"/access/live/{rid2}", headers=a.auth("ivan")).json()["state"] == "live"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--live", "--cameras", "cam-n1"], "--minutes"),
        (["--live", "--minutes", "5", "--area", "55.76,37.61,100"], "--cameras"),
        (["--minutes", "5", "--cameras", "cam-n1"], "--live"),
        (["--live", "--cameras", "cam-n1", "--minutes", "999"], "at most 60 minutes"),
    ],
)
def test_bad_live_options_are_refused_in_one_sentence(
    a: AppCity, args: list[str], says: str
) -> None:
    rc, out, err = _cli(a, *args, "--purpose", "public-safety", "--case", "CASE-2026-0077",
                        "--why", "A march.", check=False)  # fmt: skip
    assert rc != 0 and says in err and "Traceback" not in err


def test_post_access_requests_takes_live_and_minutes_and_a_live_grant_is_never_a_clip(
    a: AppCity,
) -> None:
    body = {k: v for k, v in LIVE.items() if k != "minutes"}
    r = a.client.post("/access/requests", json={**body, "live": True, "minutes": 5},
                      headers=a.auth("ivan"))  # fmt: skip
    assert r.status_code == 201, r.text
    rid = r.json()["request"]
    approve(a, rid)
    assert a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()["state"] == "live"
    r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
    assert r.status_code == 403 and "never exported as a clip" in r.json()["error"]
    r = a.client.post("/access/requests", json={**body, "live": True}, headers=a.auth("ivan"))
    assert r.status_code == 400 and "minutes" in r.json()["error"]


def test_a_live_grant_is_disclosed_with_the_window_its_approval_fixed(a: AppCity) -> None:
    from custodes.fleet.model import parse_time
    from tests.live.kit import live, set_clock

    rid = live(a, minutes=7)["request"]
    approve(a, rid)
    g = a.client.get(f"/access/live/{rid}", headers=a.auth("ivan")).json()
    end = parse_time(g["end"], "end")
    set_clock(a, end + 91 * 86_400_000)  # past the default disclosure delay of 90 days
    try:
        r = a.client.post("/access/sweep", headers=a.auth("audrey"))
        assert r.status_code == 200, r.text
    finally:
        set_clock(a, parse_time(g["start"], "start"))
    log = a.app.state.ledger
    raw = log.read(lambda lg: list(lg.store.read_entries(0, lg.store.next_index())))
    (d,) = [e for e in map(json.loads, raw) if e["type"] == "access.disclosed"
            and e["request"] == rid]  # fmt: skip
    assert (d["from"], d["to"]) == (g["start"], g["end"]) and d["cameras"] == ["cam-n1"]
