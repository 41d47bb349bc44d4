"""Fixtures that give each test fresh log stores of every engine.

``store_factory`` is parametrised over ``sqlite`` and ``postgres``.  Each
PostgreSQL store lives in a schema of its own (``t_<random>``), dropped when
the test ends, so tests never see each other's data.

PostgreSQL cases read the server's URL from ``CUSTODES_TEST_PG_URL`` (``make
test`` starts the server with ``scripts/postgres.sh`` and sets it).  Without
it they fail, saying so, because a suite that silently skips its production
engine proves nothing; set ``CUSTODES_SKIP_PG=1`` to skip them on purpose.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from custodes.ledger.postgres_store import PostgresStore
from custodes.ledger.sqlite_store import SqliteStore
from custodes.ledger.store import LogStore

PG_URL_ENV = "CUSTODES_TEST_PG_URL"
SKIP_PG_ENV = "CUSTODES_SKIP_PG"


def postgres_url() -> str:
    """The test server's URL, or fail (or skip, when asked) saying what to do."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    if os.environ.get(SKIP_PG_ENV) == "1":
        pytest.skip(f"PostgreSQL tests skipped: {SKIP_PG_ENV}=1")
    pytest.fail(
        f"{PG_URL_ENV} is not set: run the suite with 'make test', which starts PostgreSQL"
        f" (scripts/postgres.sh) and sets it, or set {SKIP_PG_ENV}=1 to skip these tests",
        pytrace=False,
    )


class StoreFactory:
    """Makes fresh stores of one engine and more handles onto them; cleans up after."""

    kind: str

    def __init__(self) -> None:
        self._handles: list[LogStore] = []

    def new(self) -> LogStore:
        """A fresh, empty store."""
        raise NotImplementedError

    def again(self, store: LogStore) -> LogStore:
        """Another handle (its own connection) onto the same log, as a restarted process."""
        raise NotImplementedError

    def url(self, store: LogStore) -> str:
        """The string that :func:`custodes.ledger.open_store.open_store` takes for it."""
        raise NotImplementedError

    def discard(self, store: LogStore) -> None:
        """Close ``store`` and remove its data now (for tests that make many)."""
        store.close()

    def _track(self, store: LogStore) -> LogStore:
        self._handles.append(store)
        return store

    def close(self) -> None:
        for store in self._handles:
            store.close()


class SqliteFactory(StoreFactory):
    kind = "sqlite"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._dir = directory
        self._count = 0

    def new(self) -> LogStore:
        self._count += 1
        return self._track(SqliteStore.open(self._dir / f"log{self._count}.db", create=True))

    def again(self, store: LogStore) -> LogStore:
        assert isinstance(store, SqliteStore)
        return self._track(SqliteStore.open(store.path))

    def url(self, store: LogStore) -> str:
        assert isinstance(store, SqliteStore)
        return f"sqlite://{store.path.absolute()}"

    def discard(self, store: LogStore) -> None:
        assert isinstance(store, SqliteStore)
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)


class PostgresFactory(StoreFactory):
    kind = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.base_url = url
        self._schemas: list[str] = []

    def new(self) -> LogStore:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        self._schemas.append(schema)
        return self._track(PostgresStore.open(self.base_url, create=True, schema=schema))

    def again(self, store: LogStore) -> LogStore:
        assert isinstance(store, PostgresStore)
        return self._track(PostgresStore.open(self.base_url, schema=store.schema))

    def url(self, store: LogStore) -> str:
        assert isinstance(store, PostgresStore)
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}schema={store.schema}"

    def discard(self, store: LogStore) -> None:
        assert isinstance(store, PostgresStore)
        store.close()
        drop_schemas(self.base_url, [store.schema])
        self._schemas.remove(store.schema)

    def close(self) -> None:
        super().close()
        drop_schemas(self.base_url, self._schemas)


def drop_schemas(url: str, schemas: list[str]) -> None:
    if not schemas:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Fresh stores of each engine in turn."""
    factory: StoreFactory
    if request.param == "sqlite":
        factory = SqliteFactory(tmp_path)
    else:
        factory = PostgresFactory(postgres_url())
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> LogStore:
    """One fresh store of each engine."""
    return store_factory.new()


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL URL, for engine-specific tests (mark them ``postgres``)."""
    return postgres_url()


@pytest.fixture
def pg_factory(pg_url: str) -> Iterator[PostgresFactory]:
    """Fresh PostgreSQL stores only."""
    factory = PostgresFactory(pg_url)
    try:
        yield factory
    finally:
        factory.close()
