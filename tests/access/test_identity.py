"""Identities: hashed secrets at rest, keyed pseudonyms, sessions that expire and die on revoke."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custodes.access.identity import Identities, Scope
from custodes.access.service import Forbidden
from custodes.access.users import add_user, revoke_user
from custodes.errors import ConflictError, FormatError, NotFoundError, UsageError
from custodes.ledger.instance import Instance
from tests.access.gateway_kit import City, city  # noqa: F401  (the fixture)


@pytest.fixture
def ids(tmp_path: Path) -> Iterator[Identities]:
    store = Identities(tmp_path)
    yield store
    store.close()


def test_secrets_are_stored_hashed(ids: Identities, tmp_path: Path) -> None:
    user, token = ids.add("alice", "investigator", Scope(), password="correct horse battery")
    ids.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("access.db*"))
    assert token.encode() not in raw
    assert b"correct horse battery" not in raw
    with sqlite3.connect(tmp_path / "access.db") as conn:
        (pw_hash,) = conn.execute("SELECT password_hash FROM users").fetchone()
    assert pw_hash.startswith("$argon2id$")
    key = tmp_path / "keys" / "access.key"
    assert len(key.read_bytes()) == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "access.db").stat().st_mode) == 0o600


def test_token_and_password_name_the_user(ids: Identities) -> None:
    user, token = ids.add("alice", "approver", Scope.parse("district:north"), password="pw-1")
    assert ids.by_token(token) == user
    assert ids.by_token(token + "x") is None
    assert ids.by_token("garbage") is None
    assert ids.check_password("alice", "pw-1") == user
    assert ids.check_password("alice", "pw-2") is None
    assert ids.check_password("nobody", "pw-1") is None
    ids.set_password("alice", "pw-2")
    assert ids.check_password("alice", "pw-1") is None
    assert ids.check_password("alice", "pw-2") == user


def test_a_user_without_password_cannot_log_in(ids: Identities) -> None:
    ids.add("bot", "operator", Scope())
    assert ids.check_password("bot", "") is None


def test_revoked_user_is_refused_everywhere(ids: Identities) -> None:
    user, token = ids.add("bob", "investigator", Scope(), password="pw")
    cookie = ids.session_cookie(user)
    assert ids.session_user(cookie) == user
    revoked = ids.revoke("bob")
    assert not revoked.active
    assert ids.by_token(token) is None
    assert ids.check_password("bob", "pw") is None
    assert ids.session_user(cookie) is None
    with pytest.raises(ConflictError):
        ids.revoke("bob")
    with pytest.raises(NotFoundError):
        ids.revoke("nobody")
    # The name can be given out again: a new token and pseudonym; the old token stays dead.
    again, token2 = ids.add("bob", "auditor", Scope())
    assert again.pseudonym != user.pseudonym and again.role == "auditor"  # a new person
    assert ids.by_token(token) is None and ids.by_token(token2) == again
    assert ids.session_user(cookie) is None


def test_bad_names_roles_and_duplicates_are_refused(ids: Identities) -> None:
    ids.add("carol", "judge", Scope())
    with pytest.raises(ConflictError):
        ids.add("carol", "judge", Scope())
    with pytest.raises(UsageError):
        ids.add("dave", "superuser", Scope())
    for bad in ("", "-x", "a b", "x" * 65, "é"):
        with pytest.raises(UsageError):
            ids.add(bad, "judge", Scope())


def test_pseudonym_is_stable_and_keyed(tmp_path: Path) -> None:
    a = Identities(tmp_path / "a")
    a2 = Identities(tmp_path / "a")  # same key file, read again
    b = Identities(tmp_path / "b")  # a different key
    try:
        p = a.pseudonym("alice")
        assert p.startswith("u-") and len(p) == 18 and int(p[2:], 16) >= 0
        assert a.pseudonym("alice") == p == a2.pseudonym("alice")
        assert a.pseudonym("alicf") != p
        assert b.pseudonym("alice") != p
        user, _ = a.add("alice", "operator", Scope())
        assert user.pseudonym == p
        assert a.by_pseudonym(p) == user
    finally:
        a.close()
        a2.close()
        b.close()


def test_session_cookie_tampered_expired_or_foreign_is_refused(tmp_path: Path) -> None:
    ids = Identities(tmp_path / "a")
    other = Identities(tmp_path / "b")
    try:
        user, _ = ids.add("erin", "auditor", Scope())
        other.add("erin", "auditor", Scope())
        cookie = ids.session_cookie(user, ttl_s=60, now_ms=1_000_000)
        assert ids.session_user(cookie, now_ms=1_000_000 + 59_999) == user
        assert ids.session_user(cookie, now_ms=1_000_000 + 60_000) is None  # expired
        assert other.session_user(cookie, now_ms=1_000_000) is None  # another key
        body, sig = cookie.split(".")
        for bad in (
            body + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"),
            body[:-1] + ("A" if body[-1] != "A" else "B") + "." + sig,
            body,
            "",
            "a.b.c",
            cookie + "x" * 2000,
        ):
            assert ids.session_user(bad, now_ms=1_000_000) is None
        # Forging a longer expiry breaks the signature.
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["x"] += 10**9
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        assert ids.session_user(forged + "." + sig, now_ms=1_000_000) is None
        # A password change ends open sessions.
        ids.set_password("erin", "new password")
        assert ids.session_user(cookie, now_ms=1_000_000) is None
    finally:
        ids.close()
        other.close()


@pytest.mark.parametrize(
    ("scope", "district", "groups", "covered"),
    [
        ("", "north", (), True),
        ("", None, (), True),
        ("district:north", "north", (), True),
        ("district:north", "south", (), False),
        ("district:north", None, (), False),
        ("district:north", "south", ("metro",), False),
        ("group:metro", "south", ("metro",), True),
        ("group:metro", "south", ("buses", "metro"), True),
        ("group:metro", "south", ("buses",), False),
        ("group:metro", None, (), False),
        ("district:north,group:metro", "north", (), True),
        ("district:north,group:metro", "east", ("metro",), True),
        ("district:north,group:metro", "east", ("buses",), False),
    ],
)
def test_scope_covers(
    scope: str, district: str | None, groups: tuple[str, ...], covered: bool
) -> None:
    assert Scope.parse(scope).covers(district, groups) is covered


def test_scope_forms() -> None:
    s = Scope.parse(" group:metro, district:north ,district:east,district:north")
    assert s == Scope(districts=("east", "north"), groups=("metro",))
    assert s.to_entry() == {"districts": ["east", "north"], "groups": ["metro"]}
    assert Scope.parse("all").to_entry() == "all" == Scope().to_entry()
    assert Scope.from_entry(s.to_entry()) == s
    for bad in ("north", "zone:x", "district:", "district:a b", "district:x,,group:y"):
        with pytest.raises(FormatError):
            Scope.parse(bad)


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(st.lists(_ids, max_size=5), st.lists(_ids, max_size=5))
def test_scope_parse_round_trip(districts: list[str], groups: list[str]) -> None:
    scope = Scope(tuple(sorted(set(districts))), tuple(sorted(set(groups))))
    assert Scope.parse(str(scope)) == scope
    assert Scope.from_entry(scope.to_entry()) == scope
    text = ",".join([f"district:{d}" for d in districts] + [f"group:{g}" for g in groups])
    assert Scope.parse(text) == scope


def test_add_and_revoke_are_logged_first(instance: tuple[Path, str]) -> None:
    data, _ = instance
    inst = Instance.load(data)
    with inst.open_log() as log, Identities(data) as ids:
        user, token = add_user(log, ids, "frank", "judge", Scope.parse("group:metro"), now_ms=0)
        revoke_user(log, ids, "frank", now_ms=1000)
        add_user(log, ids, "root", "admin", Scope())
        with pytest.raises(ConflictError):  # refused before anything is logged
            add_user(log, ids, "root", "admin", Scope())
        with pytest.raises(UsageError):
            add_user(log, ids, "gina", "overlord", Scope())
        with pytest.raises(UsageError):
            add_user(log, ids, "gina", "judge", Scope(), password="")
        size = log.store.next_index()
        entries = [json.loads(e) for e in log.store.read_entries(0, size)]
    assert entries[0] == {
        "type": "user.added",
        "v": 1,
        "time": "1970-01-01T00:00:00Z",
        "user": user.pseudonym,
        "role": "judge",
        "scope": {"districts": [], "groups": ["metro"]},
    }
    assert entries[1]["type"] == "user.revoked" and entries[1]["user"] == user.pseudonym
    assert [e["type"] for e in entries] == ["user.added", "user.revoked", "user.added"]
    assert all("frank" not in json.dumps(e) and "root" not in json.dumps(e) for e in entries)


def test_a_re_added_name_is_a_new_person(ids: Identities) -> None:
    """Issue 10 item 12: a revoked name added again gets a new pseudonym, not the old one's."""
    first, _ = ids.add("anna", "approver", Scope(), password="first pass")
    ids.revoke("anna")
    coming = ids.pseudonym("anna")  # what user.added logs before the account is made
    assert coming != first.pseudonym
    again, _ = ids.add("anna", "approver", Scope(), password="second pass")
    assert again.pseudonym == coming == ids.pseudonym("anna")
    assert ids.by_pseudonym(first.pseudonym) is None  # old approvals name nobody now
    assert ids.by_pseudonym(again.pseudonym) == again
    ids.revoke("anna")
    third, _ = ids.add("anna", "approver", Scope())
    assert third.pseudonym not in (first.pseudonym, again.pseudonym)


def test_a_store_from_before_generations_keeps_its_pseudonyms(tmp_path: Path) -> None:
    store = Identities(tmp_path)
    user, _ = store.add("alice", "operator", Scope())
    store.close()
    with sqlite3.connect(tmp_path / "access.db") as conn:
        conn.execute("ALTER TABLE users DROP COLUMN generation")
    store = Identities(tmp_path)
    try:
        assert store.get("alice") == user and store.pseudonym("alice") == user.pseudonym
    finally:
        store.close()


def test_an_ended_session_stays_ended(ids: Identities) -> None:
    """Issue 10 item 9: logging out ends the session on the server, not only in the browser."""
    user, _ = ids.add("olga", "auditor", Scope(), password="audit pass")
    cookie = ids.session_cookie(user, 3600)
    other = ids.session_cookie(user, 3600)
    assert ids.session_user(cookie) == user
    assert ids.end_session(cookie)
    assert ids.session_user(cookie) is None
    assert ids.session_user(other) == user  # another browser's session goes on
    assert not ids.end_session("forged.cookie")
    # a cookie without a session id (from before sessions had ids) is refused
    body = (
        base64.urlsafe_b64encode(
            json.dumps({"u": "olga", "e": 0, "x": 2**62}, separators=(",", ":")).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    sig = base64.urlsafe_b64encode(ids._sign(body)).rstrip(b"=").decode()
    assert ids.session_user(body + "." + sig) is None


def test_a_revoked_approvers_approval_does_not_come_back(city: City, tmp_path: Path) -> None:  # noqa: F811
    """Approve, revoke the approver, add the same name again, release: refused."""
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    c.revoke("anna")
    again, _ = c.ledger.write(lambda log: add_user(log, c.ids, "anna", "approver", Scope()))
    assert again.pseudonym != c.users["anna"].pseudonym
    with pytest.raises(Forbidden, match="revoked"):
        c.access.release(c.users["ivan"], rid, tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").exists()
