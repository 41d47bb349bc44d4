"""``POST /fleet/cameras/import`` refuses a file in which no camera survives, as the CLI does,
so that ``retire_missing`` can never empty the registry from a file of skipped elements."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import run_cli
from tests.fleet.conftest import Server


def _post(url: str, body: bytes, token: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_file_of_skipped_elements_imports_and_retires_nothing(fleet: tuple[Path, str]) -> None:
    data, _recorder = fleet
    out = run_cli("agents", "add", "duty-operator", "--role", "operator", data=data)
    operator = out.stdout.decode().splitlines()[-1]
    before = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    srv = Server(data)
    srv.start()
    try:
        skipped = {"elements": [{"type": "node", "id": 1, "lat": 55.7, "lon": 37.6,
                                 "tags": {"amenity": "bench"}}]}  # fmt: skip
        for body in (
            json.dumps(skipped).encode(),
            b'{"type": "FeatureCollection", "features": []}',
        ):
            status, got = _post(
                srv.url + "/fleet/cameras/import?retire_missing=true", body, operator
            )
            assert status == 422, got
            assert str(got["error"]).startswith("nothing was imported")
        after = json.loads(run_cli("cameras", "list", "--json", "--server", srv.url).stdout)
    finally:
        srv.stop()
    assert {c["id"] for c in after} == {c["id"] for c in before} and before
    assert all(c["status"] != "retired" for c in after)
