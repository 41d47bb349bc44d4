"""schemathesis against the gateway's OpenAPI document: no input makes the server fail (5xx).

Each generated call is made as a user whose role may use the endpoint, so the
inputs reach the gateway's own checks rather than stopping at the role check.
The examples per operation are few, so that the whole test stays under a
minute on a small machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.access.gateway_kit import AppCity, app_city

AS = {
    ("POST", "/access/requests"): "ivan",
    ("GET", "/access/mine"): "ivan",
    ("POST", "/access/requests/{rid}/release"): "ivan",
    ("GET", "/access/queue"): "anna",
    ("POST", "/access/requests/{rid}/approve"): "anna",
    ("POST", "/access/requests/{rid}/deny"): "anna",
    ("PUT", "/access/policy"): "adam",
    ("POST", "/access/sweep"): "adam",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppCity]:
    with app_city(Path(tmp_path_factory.mktemp("openapi"))) as a:
        yield a


def test_no_server_error(world: AppCity) -> None:
    base = str(world.client.base_url)
    schema = schemathesis.openapi.from_url(base + "/openapi.json").include(path_regex="^/access/")
    seen = []
    for result in schema.get_all_operations():
        op = result.ok()
        seen.append((op.method.upper(), op.path))

        @given(case=op.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            who = AS.get((case.method.upper(), case.operation.path), "audrey")
            headers = {**(case.headers or {}), **world.auth(who)}
            response = case.call(base_url=base, headers=headers, timeout=60)
            assert response.status_code < 500, (case.method, case.path, response.text[:500])

        run()
    assert len(seen) >= 14
