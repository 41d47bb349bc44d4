"""The same log commands on a real PostgreSQL server, chosen by a URL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import run_cli
from tests.ledger.conftest import postgres_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store() -> Iterator[str]:
    """A store URL with a schema of its own, dropped afterwards."""
    base = postgres_url()
    schema = f"cli_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _lines(n: int, start: int = 0) -> bytes:
    return "".join(json.dumps({"pg": i}) + "\n" for i in range(start, start + n)).encode()


def test_postgres_log_appends_exports_and_verifies(pg_store: str, tmp_path: Path) -> None:
    data = tmp_path / "d"
    vkey = run_cli("init", "--store", pg_store, data=data).stdout.decode().split()[-1]
    assert not (data / "log.db").exists()
    out = run_cli("log", "append", "-", data=data, input=_lines(1000))
    assert out.stdout.decode().split() == [str(i) for i in range(1000)]
    bad = run_cli("log", "append", "-", data=data, input=_lines(2) + b"oops\n", check=False)
    assert bad.returncode == 1 and b"line 3" in bad.stderr
    run_cli("log", "append", "-", data=data, input=_lines(10, 1000))
    run_cli("log", "export", str(tmp_path / "tiles"), data=data)
    res = run_cli("verify", "--vkey", vkey, "--source", str(tmp_path / "tiles"), "--json")
    assert json.loads(res.stdout)["size"] == 1010


def test_a_second_instance_on_the_same_database_is_refused(pg_store: str, tmp_path: Path) -> None:
    run_cli("init", "--store", pg_store, data=tmp_path / "a")
    again = run_cli("init", "--store", pg_store, data=tmp_path / "b", check=False)
    assert again.returncode == 1
    assert b"already holds a log" in again.stderr
    assert not (tmp_path / "b").exists()  # nothing half-written


def test_a_postgres_store_restored_from_an_older_backup_is_refused(
    pg_store: str, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    run_cli("init", "--store", pg_store, data=data)
    run_cli("log", "append", "-", data=data, input=_lines(100))
    schema = sql.Identifier(pg_store.rsplit("schema=", 1)[1])
    backup = sql.Identifier(f"{pg_store.rsplit('schema=', 1)[1]}_backup")
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (pg_store.rsplit("schema=", 1)[1],),
            )
        ]
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(backup))
        for t in tables:  # a backup of every table, as pg_dump would take
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} AS SELECT * FROM {}.{}").format(
                    backup, sql.Identifier(t), schema, sql.Identifier(t)
                )
            )
    run_cli("log", "append", "-", data=data, input=_lines(200, 100))
    try:
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            for t in tables:  # ... restored over the live database
                conn.execute(sql.SQL("DELETE FROM {}.{}").format(schema, sql.Identifier(t)))
                conn.execute(
                    sql.SQL("INSERT INTO {}.{} SELECT * FROM {}.{}").format(
                        schema, sql.Identifier(t), backup, sql.Identifier(t)
                    )
                )
        out = run_cli("log", "checkpoint", data=data, check=False)
        assert out.returncode == 1 and b"older backup" in out.stderr
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(backup))


def test_a_url_with_no_host_reaches_libpq_as_written(tmp_path: Path) -> None:
    """``postgresql:///db`` (Unix socket, or host in the query) is not refused as malformed."""
    from urllib.parse import quote, urlsplit

    from custodes.errors import StoreUnavailableError, UsageError
    from custodes.ledger.open_store import _split_schema, open_store

    assert _split_schema("postgresql:///db?schema=s") == ("postgresql:///db", ["s"])
    assert _split_schema("postgresql:///db?host=/run/pg&schema=s&sslmode=disable") == (
        "postgresql:///db?host=/run/pg&sslmode=disable",
        ["s"],
    )
    # The local socket form reaches libpq (peer auth may refuse us), never "not well formed".
    for url in (
        "postgresql:///custodes_test?host=/var/run/postgresql&schema=nope",
        "postgresql:///custodes_test",
    ):
        try:
            open_store(url).close()
        except StoreUnavailableError as err:
            assert "could not connect" in str(err) or "connection" in str(err)
        except UsageError as err:
            raise AssertionError(f"{url} refused: {err}") from None
    # A real connection with an empty host in the URL: user, password and host in the query.
    base = urlsplit(postgres_url())
    schema = f"cli_{uuid.uuid4().hex[:10]}"
    url = (
        f"postgresql://{base.path}?host={base.hostname}&port={base.port or 5432}"
        f"&user={quote(base.username or '')}&password={quote(base.password or '')}"
        f"&schema={schema}"
    )
    try:
        data = tmp_path / "d"
        run_cli("init", "--store", url, data=data)
        out = run_cli("log", "append", "-", data=data, input=_lines(3))
        assert out.stdout.decode().split() == ["0", "1", "2"]
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
