"""Who may use the access gateway: people, their roles and scopes, tokens and sessions.

The private store is ``DIR/access.db`` (SQLite, WAL), next to the key file
``DIR/keys/access.key`` (32 random bytes, mode 0600).  Three subkeys are
derived from that key with HKDF-SHA256:

* ``pseudonym``: a person appears in the public log only as
  ``u-`` + 16 hex digits of HMAC-SHA256(subkey, account name and generation),
  stable for the account and useless without the key.  An account re-added
  under a revoked name is a new person: its generation is one more, so its
  pseudonym is new and nothing logged under the old one (approvals, requests)
  is its own;
* ``session``: web sessions are ``payload.signature`` cookies, HMAC-signed,
  with an expiry and a random session id, and refused once the account is
  revoked, its password changes, or the session is ended by logging out (the
  ended session ids are kept here until they expire);
* ``sealing``: the AES-256-GCM key that keeps sealed request details
  encrypted at rest on an instance without custody (:mod:`custodes.access.sealing`,
  version 1).  It sits beside ``access.db``, so it protects against a copy of the
  database alone, not of the data directory; under custody new details are sealed to
  the custodians instead and this key opens only the rows sealed before.

Passwords are stored as argon2id hashes and API tokens as their SHA-256, so a
copy of ``access.db`` holds neither.  Nothing here writes to the log: see
:mod:`custodes.access.users`, which logs ``user.added`` and ``user.revoked``
first and then changes this store.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custodes.access.sealing import Sealer
from custodes.errors import ConflictError, FormatError, NotFoundError, UsageError

__all__ = ["ROLES", "Identities", "Scope", "User"]

ROLES = ("operator", "investigator", "approver", "judge", "auditor", "admin")
KEY_FILE = Path("keys") / "access.key"
DB_FILE = "access.db"
SESSION_COOKIE = "custodes_session"
TOKEN_PREFIX = "cuu_"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SCOPE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_PASSWORD = 1024


# -- scopes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Where a role applies: some districts and camera groups, or (both empty) everywhere."""

    districts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def whole_network(self) -> bool:
        return not self.districts and not self.groups

    def covers(self, district: str | None, groups: Iterable[str] = ()) -> bool:
        """True if a camera in ``district`` and ``groups`` is inside this scope."""
        if self.whole_network:
            return True
        if district is not None and district in self.districts:
            return True
        return any(g in self.groups for g in groups)

    def to_entry(self) -> str | dict[str, list[str]]:
        """The form ``user.added`` logs: ``"all"``, or the sorted districts and groups."""
        if self.whole_network:
            return "all"
        return {"districts": sorted(self.districts), "groups": sorted(self.groups)}

    @classmethod
    def from_entry(cls, value: Any) -> Scope:
        """The inverse of :meth:`to_entry`."""
        if value == "all":
            return cls()
        if not isinstance(value, dict) or set(value) != {"districts", "groups"}:
            raise FormatError('a scope is "all" or an object with districts and groups')
        return cls._make(list(value["districts"]), list(value["groups"]))

    @classmethod
    def parse(cls, text: str | None) -> Scope:
        """Parse ``district:north,group:metro``; empty, None or ``all`` is the whole network."""
        text = (text or "").strip()
        if text in ("", "all"):
            return cls()
        districts: list[str] = []
        groups: list[str] = []
        for part in text.split(","):
            kind, sep, ident = part.strip().partition(":")
            if not sep or kind not in ("district", "group"):
                raise FormatError(
                    f"the scope item {part.strip()!r} must be district:ID or group:ID"
                )
            (districts if kind == "district" else groups).append(ident.strip())
        return cls._make(districts, groups)

    @classmethod
    def _make(cls, districts: list[Any], groups: list[Any]) -> Scope:
        for ident in (*districts, *groups):
            if not isinstance(ident, str) or not _SCOPE_ID.fullmatch(ident):
                raise FormatError(
                    f"the scope id {ident!r} must be 1-64 letters, digits, dots, dashes "
                    "or underscores"
                )
        return cls(tuple(sorted(set(districts))), tuple(sorted(set(groups))))

    def __str__(self) -> str:
        if self.whole_network:
            return "all"
        return ",".join(
            [f"district:{d}" for d in self.districts] + [f"group:{g}" for g in self.groups]
        )


# -- users -------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    role: str
    scope: Scope
    pseudonym: str
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "scope": self.scope.to_entry(),
            "pseudonym": self.pseudonym,
            "active": self.active,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    pseudonym     TEXT NOT NULL,
    active        INTEGER NOT NULL,
    password_hash TEXT,
    token_sha256  TEXT NOT NULL UNIQUE,
    epoch         INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL,
    revoked_ms    INTEGER
);
CREATE TABLE IF NOT EXISTS ended_sessions (
    sid        TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
"""


_SELECT = "SELECT name, role, scope, pseudonym, active FROM users"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _load_key(path: Path) -> bytes:
    """Read the 32-byte key, creating it (0600, atomically, once) when missing."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made the key meanwhile
        except OSError as err:
            if err.errno != errno.EEXIST:
                raise
        finally:
            tmp.unlink()
        key = path.read_bytes()
    if len(key) != 32:
        raise UsageError(f"{path} is not a 32-byte key; restore it from a backup")
    return key


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password or len(password) > _MAX_PASSWORD:
        raise UsageError(f"a password must be 1-{_MAX_PASSWORD} characters")


def _subkey(key: bytes, purpose: str) -> bytes:
    info = f"custodes {purpose} v1".encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(key)


class Identities:
    """The private identity store of one instance; safe to share between threads."""

    def __init__(self, data: Path) -> None:
        self.data = Path(data)
        key = _load_key(self.data / KEY_FILE)
        self._pseudonym_key = _subkey(key, "pseudonym")
        self._session_key = _subkey(key, "session")
        self._sealing_key = _subkey(key, "sealing")
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None  # made at the first login, not at start-up
        self._lock = threading.Lock()
        self.db_path = self.data / DB_FILE
        if not self.db_path.exists():  # private: hashes and sealed details (WAL files follow)
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._conn = sqlite3.connect(
            self.db_path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(users)")}
        if "generation" not in columns:  # stores made before accounts had generations
            self._conn.execute("ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")

    # -- accounts --------------------------------------------------------------------

    def pseudonym(self, name: str) -> str:
        """``u-`` + 16 hex digits: the keyed hash of the account the public log shows.

        For an active account, its pseudonym; otherwise the one the next account
        under ``name`` will get (a revoked name's next account is a new person).
        """
        row = self._one("SELECT active, generation FROM users WHERE name = ?", name)
        if row is None:
            return self._pseudonym_of(name, 0)
        return self._pseudonym_of(name, row[1] if row[0] else row[1] + 1)

    def _pseudonym_of(self, name: str, generation: int) -> str:
        message = b"user\x00" + name.encode()
        if generation:  # the first account under a name keeps the original form
            message += b"\x00" + str(generation).encode()
        digest = hmac.new(self._pseudonym_key, message, hashlib.sha256)
        return "u-" + digest.hexdigest()[:16]

    def check_new(self, name: str, role: str, password: str | None = None) -> None:
        """Refuse a bad name, role or password, or a name in use, before anything is logged."""
        if not _NAME.fullmatch(name):
            raise UsageError(
                f"the user name {name!r} must be 1-64 letters, digits, dots, dashes, "
                "underscores or @, starting with a letter or digit"
            )
        if role not in ROLES:
            raise UsageError(f"the role {role!r} is not one of {', '.join(ROLES)}")
        if password is not None:
            _check_password(password)
        existing = self.get(name)
        if existing is not None and existing.active:
            raise ConflictError(f"the user {name} already exists; revoke it first")

    def add(
        self, name: str, role: str, scope: Scope, password: str | None = None
    ) -> tuple[User, str]:
        """Create (or re-create a revoked) account; returns it and its API token.

        Only the token's SHA-256 and the password's argon2 hash are kept.
        """
        self.check_new(name, role, password)
        pw_hash = self._hash_password(password) if password is not None else None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        scope_json = json.dumps(scope.to_entry(), sort_keys=True)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute(
                    "SELECT active, epoch, generation FROM users WHERE name = ?", (name,)
                ).fetchone()
                if row is not None and row[0]:
                    raise ConflictError(f"the user {name} already exists; revoke it first")
                epoch = (row[1] + 1) if row is not None else 0
                generation = (row[2] + 1) if row is not None else 0
                pseudonym = self._pseudonym_of(name, generation)
                self._conn.execute("DELETE FROM users WHERE name = ?", (name,))
                self._conn.execute(
                    "INSERT INTO users (name, role, scope, pseudonym, active, password_hash,"
                    " token_sha256, epoch, generation, created_ms)"
                    " VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                    (
                        name,
                        role,
                        scope_json,
                        pseudonym,
                        pw_hash,
                        _token_hash(token),
                        epoch,
                        generation,
                        int(time.time() * 1000),
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return User(name, role, scope, pseudonym, True), token

    def revoke(self, name: str) -> User:
        """Deactivate an account: its token, password and sessions stop working at once."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE users SET active = 0, epoch = epoch + 1, revoked_ms = ?"
                " WHERE name = ? AND active = 1",
                (int(time.time() * 1000), name),
            )
        if cur.rowcount == 0:
            user = self.get(name)
            if user is None:
                raise NotFoundError(f"there is no user named {name}")
            raise ConflictError(f"the user {name} is already revoked")
        user = self.get(name)
        assert user is not None
        return user

    def change(self, name: str, role: str, scope: Scope) -> User:
        """Give an active account another role or scope; its pseudonym stays (it is the same
        person), and its sessions end so that the next request sees the change."""
        if role not in ROLES:
            raise UsageError(f"the role {role!r} is not one of {', '.join(ROLES)}")
        with self._lock:
            cur = self._conn.execute(
                "UPDATE users SET role = ?, scope = ?, epoch = epoch + 1"
                " WHERE name = ? AND active = 1",
                (role, json.dumps(scope.to_entry(), sort_keys=True), name),
            )
        if cur.rowcount == 0:
            if self.get(name) is None:
                raise NotFoundError(f"there is no user named {name}")
            raise ConflictError(f"the user {name} is revoked; add them again instead")
        user = self.get(name)
        assert user is not None
        return user

    def restore(self, pseudonym: str, role: str, scope: Scope, active: bool) -> None:
        """Put an account's role, scope and standing back as the log has them (rebuild)."""
        with self._lock:
            self._conn.execute(
                "UPDATE users SET role = ?, scope = ?, active = ?, epoch = epoch + 1"
                " WHERE pseudonym = ?",
                (role, json.dumps(scope.to_entry(), sort_keys=True), int(active), pseudonym),
            )

    def get(self, name: str) -> User | None:
        row = self._one(f"{_SELECT} WHERE name = ?", name)
        return self._user(row) if row is not None else None

    def by_pseudonym(self, pseudonym: str) -> User | None:
        row = self._one(f"{_SELECT} WHERE pseudonym = ?", pseudonym)
        return self._user(row) if row is not None else None

    def users(self) -> list[User]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, role, scope, pseudonym, active FROM users ORDER BY name"
            ).fetchall()
        return [self._user(r) for r in rows]

    def by_token(self, token: str) -> User | None:
        """The active user whose API token this is, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = self._one(
            "SELECT name, role, scope, pseudonym, active FROM users"
            " WHERE token_sha256 = ? AND active = 1",
            _token_hash(token),
        )
        return self._user(row) if row is not None else None

    # -- passwords -------------------------------------------------------------------

    def _hash_password(self, password: str) -> str:
        _check_password(password)
        return self._hasher.hash(password)

    def set_password(self, name: str, password: str) -> None:
        """Set or change a password; the account's open sessions end."""
        pw_hash = self._hash_password(password)
        with self._lock:
            cur = self._conn.execute(
                "UPDATE users SET password_hash = ?, epoch = epoch + 1"
                " WHERE name = ? AND active = 1",
                (pw_hash, name),
            )
        if cur.rowcount == 0:
            raise NotFoundError(f"there is no active user named {name}")

    def check_password(self, name: str, password: str) -> User | None:
        """The active user if the password is right; None otherwise (in about the same time)."""
        row = self._one("SELECT password_hash, active FROM users WHERE name = ?", name)
        stored = row[0] if row is not None and row[0] and row[1] else None
        if stored is None and self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        try:
            self._hasher.verify(stored or self._dummy_hash or "", password[:_MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        return self.get(name)

    # -- sessions --------------------------------------------------------------------

    def session_cookie(self, user: User, ttl_s: int = 28800, *, now_ms: int | None = None) -> str:
        """A signed cookie value that names the user until ``ttl_s`` seconds from now."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        epoch = self._one("SELECT epoch FROM users WHERE name = ?", user.name)
        if epoch is None:
            raise NotFoundError(f"there is no user named {user.name}")
        claims = {"u": user.name, "e": epoch[0], "x": now + ttl_s * 1000}
        claims["s"] = secrets.token_urlsafe(16)  # the session id that logging out ends
        payload = json.dumps(claims, separators=(",", ":")).encode()
        body = _b64(payload)
        return body + "." + _b64(self._sign(body))

    def _session_claims(self, cookie: str) -> tuple[str, int, int, str] | None:
        """The name, epoch, expiry and session id of an authentic cookie, or None."""
        if len(cookie) > 1024 or cookie.count(".") != 1:
            return None
        body, sig = cookie.split(".")
        try:
            if not hmac.compare_digest(_unb64(sig), self._sign(body)):
                return None
            claims = json.loads(_unb64(body))
            name, epoch, expires, sid = claims["u"], claims["e"], claims["x"], claims["s"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(expires, int) or not isinstance(sid, str):
            return None
        return name, epoch, expires, sid

    def end_session(self, cookie: str, *, now_ms: int | None = None) -> bool:
        """End the session a cookie names, for good; True if it was a live session."""
        claims = self._session_claims(cookie)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if claims is None or now >= claims[2]:
            return False
        with self._lock:
            self._conn.execute("DELETE FROM ended_sessions WHERE expires_ms <= ?", (now,))
            self._conn.execute(
                "INSERT OR IGNORE INTO ended_sessions (sid, expires_ms) VALUES (?, ?)",
                (claims[3], claims[2]),
            )
        return True

    def session_user(self, cookie: str, *, now_ms: int | None = None) -> User | None:
        """The user a session cookie names, if it is authentic, unexpired and still valid."""
        claims = self._session_claims(cookie)
        if claims is None:
            return None
        name, epoch, expires, sid = claims
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if now >= expires:
            return None
        if self._one("SELECT 1 FROM ended_sessions WHERE sid = ?", sid) is not None:
            return None
        row = self._one(
            "SELECT name, role, scope, pseudonym, active, epoch FROM users WHERE name = ?", name
        )
        if row is None or not row[4] or row[5] != epoch:
            return None
        return self._user(row[:5])

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._session_key, b"session\x00" + body.encode(), hashlib.sha256).digest()

    # -- the rest ----------------------------------------------------------------------

    def sealer(self) -> Sealer:
        return Sealer(self._sealing_key)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Identities:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, *args: Any) -> Any:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    @staticmethod
    def _user(row: Any) -> User:
        name, role, scope, pseudonym, active = row
        return User(name, role, Scope.from_entry(json.loads(scope)), pseudonym, bool(active))
