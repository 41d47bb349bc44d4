"""Fail closed: when the log cannot be written, no footage leaves and the answer is 503.

Two ways to break the log: a store whose ``append`` raises (fault injection),
and a PostgreSQL server stopped under a running gateway (a private cluster in
a temporary folder, so that stopping it touches nobody else's).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.errors import StoreUnavailableError
from tests.access import gateway_kit
from tests.access.gateway_kit import City, app_city
from tests.conftest import free_port

city = gateway_kit.city
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def released(entries: list[dict[str, Any]]) -> int:
    return sum(e["type"] == "access.released" for e in entries)


@pytest.mark.parametrize(
    "fault", [StoreUnavailableError("the disk is gone"), sqlite3.OperationalError("disk I/O error")]
)
def test_append_failure_releases_nothing(city: City, tmp_path: Path, fault: Exception) -> None:
    c = city
    rid = gateway_kit_approved(c)
    store = c.ledger.log.store
    real = store.append

    def broken(entries: Any) -> tuple[int, int]:
        raise fault

    store.append = broken  # type: ignore[method-assign]
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()
    with pytest.raises(StoreUnavailableError):
        c.access.release(c.users["ivan"], rid, out)
    assert leftovers(out.parent) == []  # neither the clip nor its hidden temporary file
    store.append = real  # type: ignore[method-assign]
    assert released(c.entries()) == 0
    # Once the log is back, the same approval releases normally: the refusal spent nothing.
    c.access.release(c.users["ivan"], rid, out)
    assert out.exists() and released(c.entries()) == 1


def gateway_kit_approved(c: City) -> str:
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    return rid


def test_http_release_answers_503_and_not_one_byte(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        rid = a.approved()
        store = a.app.state.ledger.log.store
        real = store.append

        def broken(entries: Any) -> tuple[int, int]:
            raise sqlite3.OperationalError("database or disk is full")

        store.append = broken
        r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/json")
        assert "error" in r.json() and b"ftyp" not in r.content
        assert leftovers(a.data / "tmp") == []
        store.append = real
        r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
        deadline = time.monotonic() + 10  # the served file is removed once it has been sent
        while leftovers(a.data / "tmp") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftovers(a.data / "tmp") == []


# -- a private PostgreSQL cluster that this test may stop ----------------------------------


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def private_pg() -> Iterator[tuple[str, Any]]:
    if os.environ.get("CUSTODES_SKIP_PG") == "1":
        pytest.skip("PostgreSQL tests skipped: CUSTODES_SKIP_PG=1")
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: run the suite with 'make test'", pytrace=False)
    folder = Path(tempfile.mkdtemp(prefix="custodes-pg-", dir="/tmp"))
    folder.chmod(0o755)
    pgdata = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    run = {"cwd": "/", "check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        _as_owner([str(PG_BIN / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres"]),
        **run,
    )
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60"]
    subprocess.run(_as_owner([*ctl, "-o", opts, "-l", str(folder / "log"), "start"]), **run)

    def stop() -> None:
        subprocess.run(_as_owner([*ctl, "-m", "immediate", "stop"]), cwd="/", capture_output=True)

    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", stop
    finally:
        stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
def test_stopped_postgresql_gives_503_and_no_footage(
    private_pg: tuple[str, Any], tmp_path: Path
) -> None:
    url, stop = private_pg
    with app_city(tmp_path, store=url) as a:
        rid = a.approved()
        stop()
        r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert b"ftyp" not in r.content
        assert leftovers(a.data / "tmp") == []
        # Approving or requesting fails closed as well.
        r = a.client.post("/access/requests", json=a.body(), headers=a.auth("ivan"))
        assert r.status_code == 503, r.text
