"""User administration: the admins' JSON API (``/admin/users``) and their page (``/app/users``).

Each change is logged (``user.added``, ``user.changed``, ``user.revoked``)
before it takes effect.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import ROLES, Scope, User
from custodes.access.users import (
    MIN_PASSWORD,
    add_user,
    change_user,
    check_scope,
    revoke_user,
    scope_names,
)
from custodes.errors import ConflictError, CustodesError, NotFoundError
from custodes.web.auth import render, require
from custodes.web.routes.internal_common import (
    ADMIN,
)
from custodes.web.routes.internal_common import act as _act
from custodes.web.routes.internal_common import failure as _failure
from custodes.web.routes.internal_common import ids_of as _ids
from custodes.web.routes.internal_common import ledger_of as _ledger
from custodes.web.routes.internal_common import run as _run
from custodes.web.routes.internal_common import same_origin as _same_origin

__all__ = ["router"]

router = APIRouter()
Admin = Annotated[User, Depends(require("admin"))]


class NewUser(BaseModel):
    name: str = Field(max_length=64, description="The account name (letters, digits, ._-@).")
    role: str = Field(description="operator, investigator, approver, judge, auditor or admin.")
    scope: str | None = Field(
        default=None,
        max_length=4000,
        description="district:ID,group:ID,...; empty or omitted for the whole network.",
    )
    password: str | None = Field(
        default=None, max_length=1024, description="For web login; omit for token-only use."
    )


class UserOut(BaseModel):
    name: str
    role: str
    scope: Any = Field(description='"all", or {"districts": [...], "groups": [...]}')
    pseudonym: str = Field(description="What the public log shows of this user.")
    active: bool


class AddedUser(UserOut):
    token: str = Field(description="The user's API token; shown only this once.")


class UserList(BaseModel):
    users: list[UserOut]


def _known_scope(request: Request, scope: Scope) -> None:
    """Refuse a scope naming a district or group the public log does not know."""
    if scope.whole_network:
        return
    public = request.app.state.public
    public.refresh()
    districts, groups = public.use(lambda state, _snap: scope_names(state))
    check_scope(scope, districts, groups)


@router.post("/admin/users", tags=["admin"], status_code=201, response_model=AddedUser)
async def admin_add_user(body: NewUser, request: Request, admin: Admin) -> dict[str, Any]:
    """Add a user (admin only); logs ``user.added`` first.  The token is returned once."""
    ids, svc = _ids(request), _ledger(request)
    scope = Scope.parse(body.scope)
    await run_in_threadpool(_known_scope, request, scope)

    def work() -> tuple[User, str]:
        return svc.write(lambda log: add_user(log, ids, body.name, body.role, scope, body.password))

    user, token = await run_in_threadpool(work)
    return {**user.to_json(), "token": token}


@router.post("/admin/users/{name}/revoke", tags=["admin"], response_model=UserOut)
async def admin_revoke_user(name: str, request: Request, admin: Admin) -> dict[str, Any]:
    """Revoke a user (admin only); logs ``user.revoked`` first."""
    ids, svc = _ids(request), _ledger(request)
    user = await run_in_threadpool(lambda: svc.write(lambda log: revoke_user(log, ids, name)))
    return user.to_json()


class UserChange(BaseModel):
    role: str | None = Field(default=None, description="The new role, or omitted to keep it.")
    scope: str | None = Field(
        default=None, max_length=4000, description="The new scope, or omitted to keep it."
    )


@router.post("/admin/users/{name}/change", tags=["admin"], response_model=UserOut)
async def admin_change_user(
    name: str, body: UserChange, request: Request, admin: Admin
) -> dict[str, Any]:
    """Change a user's role or scope (admin only); logs ``user.changed`` first."""
    ids, svc = _ids(request), _ledger(request)
    scope = Scope.parse(body.scope) if body.scope is not None else None
    if scope is not None:
        await run_in_threadpool(_known_scope, request, scope)
    user = await run_in_threadpool(
        lambda: svc.write(lambda log: change_user(log, ids, name, body.role, scope))
    )
    return user.to_json()


@router.get("/admin/users", tags=["admin"], response_model=UserList)
async def admin_list_users(request: Request, admin: Admin) -> dict[str, Any]:
    """Every account, active or revoked (admin only)."""
    users = await run_in_threadpool(_ids(request).users)
    return {"users": [u.to_json() for u in users]}


# -- admins: users -------------------------------------------------------------------------


@router.get("/app/users", response_class=HTMLResponse, include_in_schema=False)
async def users_page(
    request: Request, user: Annotated[User, Depends(ADMIN)], revoked: str = ""
) -> HTMLResponse:
    users = await _run(_ids(request).users)
    return render(
        request,
        "internal/users.html",
        users=users,
        roles=ROLES,
        error=None,
        added=None,
        min_password=MIN_PASSWORD,
        form={},
        revoked=revoked[:64],
    )


@router.post("/app/users", include_in_schema=False)
async def users_add(request: Request, user: Annotated[User, Depends(ADMIN)]) -> Response:
    """Add a user (logged first) and show their token once."""
    _same_origin(request)
    raw = await request.form()
    form = {k: str(v)[:1024] for k, v in raw.items() if isinstance(v, str)}
    ids, svc = _ids(request), _ledger(request)
    added: tuple[User, str] | None = None
    error = None
    try:
        scope = Scope.parse(form.get("scope", ""))
        await _run(lambda: _known_scope(request, scope))
        name, role = form.get("name", "").strip(), form.get("role", "")
        password = form.get("password") or None
        added = await _run(
            lambda: svc.write(lambda log: add_user(log, ids, name, role, scope, password))
        )
    except CustodesError as err:
        error = str(err)
    users = await _run(ids.users)
    return render(
        request,
        "internal/users.html",
        status_code=201 if added else 400,
        users=users,
        roles=ROLES,
        error=error,
        added=added,
        min_password=MIN_PASSWORD,
        form=form if not added else {},
    )


def _revocable(request: Request, name: str, me: User) -> User:
    target = _ids(request).get(name)
    if target is None:
        raise NotFoundError(f"there is no user named {name[:64]}")
    if not target.active:
        raise ConflictError(f"the user {name} is already revoked")
    if target.name == me.name:
        raise ConflictError("you cannot revoke yourself; ask another admin")
    return target


@router.get("/app/users/{name}/revoke", response_class=HTMLResponse, include_in_schema=False)
async def users_revoke_confirm(
    request: Request, name: str, user: Annotated[User, Depends(ADMIN)]
) -> HTMLResponse:
    """The confirmation step before a revocation: who, and what stops working."""
    try:
        target = await _run(lambda: _revocable(request, name, user))
    except CustodesError as err:
        return _failure(request, err, "/app/users")
    return render(request, "internal/revoke.html", target=target)


@router.post("/app/users/{name}/revoke", include_in_schema=False)
async def users_revoke(
    request: Request,
    name: str,
    user: Annotated[User, Depends(ADMIN)],
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Revoke once confirmed; without ``confirm=yes`` only the confirmation page is shown."""
    _same_origin(request)
    if confirm != "yes":
        return await users_revoke_confirm(request, name, user)
    ids, svc = _ids(request), _ledger(request)

    def revoke() -> User:
        _revocable(request, name, user)
        return svc.write(lambda log: revoke_user(log, ids, name))

    return await _act(request, revoke, "/app/users", f"/app/users?revoked={quote(name)}")
