"""Adding and revoking users: the log entry is durably sequenced first, then the store changes.

If the log cannot be written nothing changes (fail closed).  If the process
dies between the two steps the log says more than the store (a user logged as
added who has no token yet); adding the same name again logs it again, which
is honest about what happened.

Two rules are the gateway's, not the store's, and are checked here before
anything is logged: a web login password has at least
:data:`MIN_PASSWORD` characters, and a scope names only districts and camera
groups that exist (:func:`check_scope`, with the names from
:func:`scope_names`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from custodes.access import entries as E
from custodes.access.identity import ROLES, Identities, Scope, User
from custodes.errors import ConflictError, NotFoundError, UsageError
from custodes.fleet.model import now_ms as _now_ms
from custodes.ledger.log import Log
from custodes.records.canonical import canonicalize

__all__ = [
    "MIN_PASSWORD",
    "add_user",
    "change_user",
    "check_password_length",
    "check_scope",
    "revoke_user",
    "scope_names",
    "set_password",
]

MIN_PASSWORD = 10
"""The fewest characters a web login password may have."""


def check_password_length(password: str) -> None:
    """Refuse a password shorter than :data:`MIN_PASSWORD` characters, in one sentence."""
    if len(password) < MIN_PASSWORD:
        raise UsageError(
            f"a password must be at least {MIN_PASSWORD} characters long"
            f" (this one has {len(password)})"
        )


def scope_names(state: Any) -> tuple[set[str], set[str]]:
    """The district and group ids a scope may name, from a replayed public state.

    Districts: those the log defines (``district.defined``) and those active
    cameras' records name; groups: the zones active cameras' records name.
    """
    districts = {str(d) for d in state.districts}
    groups: set[str] = set()
    for record in state.cameras.values():
        if record.get("status") != "active":
            continue
        if isinstance(record.get("district"), str):
            districts.add(record["district"])
        if isinstance(record.get("zone"), str):
            groups.add(record["zone"])
    return districts, groups


def _listing(names: set[str]) -> str:
    shown = sorted(names)
    if not shown:
        return "there are none yet"
    more = f" and {len(shown) - 12} more" if len(shown) > 12 else ""
    return "known: " + ", ".join(shown[:12]) + more


def check_scope(scope: Scope, districts: Iterable[str], groups: Iterable[str]) -> None:
    """Refuse a scope that names a district or group the city does not have."""
    known_d, known_g = set(districts), set(groups)
    for d in scope.districts:
        if d not in known_d:
            raise UsageError(f"there is no district {d!r} ({_listing(known_d)})")
    for g in scope.groups:
        if g not in known_g:
            raise UsageError(f"there is no camera group {g!r} ({_listing(known_g)})")


def set_password(ids: Identities, name: str, password: str) -> None:
    """Set a user's web login password, at least :data:`MIN_PASSWORD` characters long."""
    check_password_length(password)
    ids.set_password(name, password)


def add_user(
    log: Log,
    ids: Identities,
    name: str,
    role: str,
    scope: Scope,
    password: str | None = None,
    now_ms: int | None = None,
) -> tuple[User, str]:
    """Log ``user.added`` for the new account, then create it; returns it and its token."""
    ids.check_new(name, role, password)
    if password is not None:
        check_password_length(password)
    now = _now_ms() if now_ms is None else now_ms
    entry = E.user_added(ids.pseudonym(name), role, scope.to_entry(), now)
    log.append([canonicalize(entry)])
    return ids.add(name, role, scope, password)


def change_user(
    log: Log,
    ids: Identities,
    name: str,
    role: str | None = None,
    scope: Scope | None = None,
    now_ms: int | None = None,
) -> User:
    """Log ``user.changed`` (the account's new role and scope), then change the store."""
    user = ids.get(name)
    if user is None:
        raise NotFoundError(f"there is no user named {name}")
    if not user.active:
        raise ConflictError(f"the user {name} is revoked; add them again instead")
    new_role = role or user.role
    new_scope = scope if scope is not None else user.scope
    if new_role not in ROLES:
        raise UsageError(f"the role {new_role!r} is not one of {', '.join(ROLES)}")
    if new_role == user.role and new_scope == user.scope:
        raise ConflictError(f"the user {name} already has that role and scope")
    now = _now_ms() if now_ms is None else now_ms
    log.append([canonicalize(E.user_changed(user.pseudonym, new_role, new_scope.to_entry(), now))])
    return ids.change(name, new_role, new_scope)


def revoke_user(log: Log, ids: Identities, name: str, now_ms: int | None = None) -> User:
    """Log ``user.revoked``, then revoke the account (token, password and sessions)."""
    user = ids.get(name)
    if user is None:
        raise NotFoundError(f"there is no user named {name}")
    if not user.active:
        raise ConflictError(f"the user {name} is already revoked")
    now = _now_ms() if now_ms is None else now_ms
    log.append([canonicalize(E.user_revoked(user.pseudonym, user.role, now))])
    return ids.revoke(name)
