"""The authorisation matrix: every role against every access endpoint, over HTTP.

For each endpoint and each role the test sets up what the call needs (a fresh
request, an approved one, a flag), calls it as a user of that role, and
expects a success (2xx) where the role is allowed and 403 where it is not;
without credentials every endpoint but the public policy answers 401.  A
refused call must leave the log exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.access.gateway_kit import AppCity, app_city

ROLE_USER = {
    "operator": "oscar",
    "investigator": "ivan",
    "approver": "anna",
    "judge": "jude",
    "auditor": "audrey",
    "admin": "adam",
}
ALL = frozenset(ROLE_USER)
ZONE = {"name": "Clinic 7", "kind": "clinic", "lat": 55.7600, "lon": 37.6100, "radius_m": 50}


def new_request(a: AppCity) -> str:
    r = a.client.post("/access/requests", json=a.body(), headers=a.auth("ivan"))
    assert r.status_code == 201, r.text
    rid: str = r.json()["request"]
    return rid


def new_flag(a: AppCity) -> str:
    """A sensitive-zone request, flagged by a sweep; the zone is then cleared again."""
    r = a.client.put("/access/policy", json={"sensitive_zones": [ZONE]}, headers=a.auth("adam"))
    assert r.status_code == 200, r.text
    new_request(a)
    r = a.client.post("/access/sweep", headers=a.auth("adam"))
    a.client.put("/access/policy", json={}, headers=a.auth("adam"))
    flag: str = r.json()["flagged"][0]
    return flag


# endpoint name -> (allowed roles, make the call for a user name: returns the response)
Call = Callable[[AppCity, str], Any]


def _c(
    method: str, path: str, json: Any = None, prep: Callable[[AppCity], str] | None = None
) -> Call:
    def call(a: AppCity, user: str) -> Any:
        p = path.format(id=prep(a)) if prep is not None else path
        headers = a.auth(user) if user else {}
        return a.client.request(method, p, json=json, headers=headers)

    return call


ENDPOINTS: dict[str, tuple[frozenset[str], Call]] = {
    "request": (
        frozenset({"investigator"}),
        lambda a, u: a.client.post(
            "/access/requests", json=a.body(), headers=a.auth(u) if u else {}
        ),
    ),
    "get": (
        frozenset({"investigator", "approver", "judge", "auditor"}),
        _c("GET", "/access/requests/{id}", prep=new_request),
    ),
    "mine": (ALL, _c("GET", "/access/mine")),
    "queue": (frozenset({"approver", "judge"}), _c("GET", "/access/queue")),
    "approve": (
        frozenset({"approver", "judge"}),
        _c("POST", "/access/requests/{id}/approve", {"reason": "ok"}, new_request),
    ),
    "deny": (
        frozenset({"approver", "judge"}),
        _c("POST", "/access/requests/{id}/deny", {"reason": "no case"}, new_request),
    ),
    "release": (
        frozenset({"investigator"}),
        _c("POST", "/access/requests/{id}/release", {}, lambda a: a.approved()),
    ),
    "sealed": (
        frozenset({"auditor"}),
        _c("GET", "/access/requests/{id}/sealed?why=audit", prep=new_request),
    ),
    "reveal": (
        frozenset({"auditor", "judge"}),
        _c("POST", "/access/requests/{id}/reveal", {"reason": "case closed"}, new_request),
    ),
    "flags": (frozenset({"auditor"}), _c("GET", "/access/flags")),
    "resolve": (
        frozenset({"auditor"}),
        _c("POST", "/access/flags/{id}/resolve", {"resolution": "checked"}, new_flag),
    ),
    "policy-set": (frozenset({"admin"}), _c("PUT", "/access/policy", {"max_cameras": 12})),
    "sweep": (frozenset({"admin", "auditor"}), _c("POST", "/access/sweep")),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppCity]:
    with app_city(Path(tmp_path_factory.mktemp("matrix"))) as a:
        yield a


def log_size(a: AppCity) -> int:
    led = a.app.state.ledger
    return int(led.read(lambda log: log.store.next_index()))


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("role", sorted(ROLE_USER))
def test_role_against_endpoint(world: AppCity, endpoint: str, role: str) -> None:
    allowed, call = ENDPOINTS[endpoint]
    if role in allowed:
        r = call(world, ROLE_USER[role])
        assert 200 <= r.status_code < 300, (role, endpoint, r.status_code, r.text[:300])
    else:
        r = call(world, ROLE_USER[role])
        assert r.status_code == 403, (role, endpoint, r.status_code, r.text[:300])
        assert "error" in r.json()


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_no_credentials_is_401(world: AppCity, endpoint: str) -> None:
    _, call = ENDPOINTS[endpoint]
    r = call(world, "")
    assert r.status_code == 401 and "error" in r.json()


def test_the_policy_is_public(world: AppCity) -> None:
    r = world.client.get("/access/policy")
    assert r.status_code == 200 and "investigation" in r.json()["policy"]["purposes"]


def test_refusals_write_nothing(world: AppCity) -> None:
    rid = new_request(world)
    size = log_size(world)
    for user, method, path, body in (
        ("oscar", "POST", f"/access/requests/{rid}/approve", {}),
        ("ivan", "POST", f"/access/requests/{rid}/approve", {}),
        ("olga", "GET", f"/access/requests/{rid}", None),  # another investigator's request
        ("olga", "POST", f"/access/requests/{rid}/release", {}),
        ("anna", "POST", f"/access/requests/{rid}/reveal", {"reason": "x"}),
        ("adam", "POST", f"/access/requests/{rid}/deny", {"reason": "x"}),
        ("anna", "PUT", "/access/policy", {}),
    ):
        r = world.client.request(method, path, json=body, headers=world.auth(user))
        assert r.status_code == 403, (user, path, r.text)
    assert log_size(world) == size
