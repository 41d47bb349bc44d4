"""Adding and revoking users: the log entry is durably sequenced first, then the store changes.

If the log cannot be written nothing changes (fail closed).  If the process
dies between the two steps the log says more than the store (a user logged as
added who has no token yet); adding the same name again logs it again, which
is honest about what happened.
"""

from __future__ import annotations

from custodes.access import entries as E
from custodes.access.identity import ROLES, Identities, Scope, User
from custodes.errors import ConflictError, NotFoundError, UsageError
from custodes.fleet.model import now_ms as _now_ms
from custodes.ledger.log import Log
from custodes.records.canonical import canonicalize

__all__ = ["add_user", "change_user", "revoke_user"]


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
