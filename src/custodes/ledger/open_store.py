"""Open a log store from the one string a person configures.

=====================================================  ==========================
``postgresql://user:pass@host:port/db`` (or            :class:`PostgresStore`,
``postgres://``), optionally ``?schema=name``          schema ``custodes`` unless
                                                       named
``sqlite:///abs/path/log.db``                          :class:`SqliteStore`
``/abs/path/log.db``, ``log.db`` or a :class:`Path`    :class:`SqliteStore`
=====================================================  ==========================

Anything else with a ``scheme://`` is refused with a sentence that lists
these forms, rather than being taken for a file name.  PostgreSQL support is
imported only when a PostgreSQL URL is given, so the embedded default needs
no database driver installed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from custodes.errors import UsageError
from custodes.ledger.sqlite_store import SqliteStore
from custodes.ledger.store import LogStore

__all__ = ["open_store"]

_FORMS = "postgresql://user:password@host:port/database, sqlite:///absolute/path, or a file path"


def open_store(url_or_path: str | Path, *, create: bool = False) -> LogStore:
    """Open (with ``create``, make) the store that ``url_or_path`` names.

    Raises :class:`~custodes.errors.UsageError` for a URL of any other kind,
    and whatever the engine's ``open`` raises (``NotInitialisedError``,
    ``StoreUnavailableError``).
    """
    if isinstance(url_or_path, Path):
        return SqliteStore.open(url_or_path, create=create)
    text = url_or_path
    scheme, sep, _ = text.partition("://")
    if not sep:
        if not text:
            raise UsageError(f"no store given; give {_FORMS}")
        return SqliteStore.open(Path(text), create=create)
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return _open_postgres(text, create=create)
    if scheme == "sqlite":
        return SqliteStore.open(_sqlite_path(text), create=create)
    raise UsageError(f"unknown store kind {scheme!r}; give {_FORMS}")


def _sqlite_path(url: str) -> Path:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc or parts.query or parts.fragment or not path.startswith("/"):
        raise UsageError(f"the SQLite URL {url!r} must be sqlite:///absolute/path and nothing more")
    return Path(path)


def _open_postgres(url: str, *, create: bool) -> LogStore:
    """Split off our ``schema`` parameter (libpq would refuse it) and open."""
    try:
        from custodes.ledger.postgres_store import PostgresStore
    except ImportError:
        raise UsageError(
            "a PostgreSQL store needs psycopg; install custodes with the 'server' extra"
        ) from None
    libpq_url, schemas = _split_schema(url)
    if len(schemas) > 1:
        raise UsageError("the PostgreSQL URL names more than one schema")
    if schemas:
        return PostgresStore.open(libpq_url, create=create, schema=schemas[0])
    return PostgresStore.open(libpq_url, create=create)


def _split_schema(url: str) -> tuple[str, list[str]]:
    """Take our ``schema`` parameters out of ``url``, leaving the rest as written.

    The URL is not rebuilt (``urlunsplit`` would drop the empty host of a
    Unix-socket URL such as ``postgresql:///db``): only the ``schema=...``
    pairs are cut from the query, and libpq gets every other byte untouched.
    """
    head, sep, tail = url.partition("?")
    if not sep:
        return url, []
    query, hash_, fragment = tail.partition("#")
    kept: list[str] = []
    schemas: list[str] = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key.replace("+", " ")) == "schema":
            schemas.append(unquote(value.replace("+", " ")))
        else:
            kept.append(pair)
    rest = "&".join(kept)
    return head + ("?" + rest if rest else "") + hash_ + fragment, schemas
