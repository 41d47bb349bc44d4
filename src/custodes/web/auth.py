"""Who is asking: API tokens and web sessions, role checks, and the login pages.

A request names its user either with ``Authorization: Bearer TOKEN`` (from
``custodes users add``) or with the signed session cookie ``custodes_session``
that ``POST /login`` sets (HttpOnly, SameSite=Lax, eight hours).

* :func:`require` is a FastAPI dependency for the JSON API: 401 with
  ``{"error": ...}`` without valid credentials, 403 when the role is not one
  of those allowed.
* :func:`require_page` is the same for HTML pages: a logged-out person is sent
  to ``/login?next=...``, a person with the wrong role gets a 403 page.

:func:`install` opens the identity store as ``app.state.identities``, adds
the refusal handler and the ``/login`` and ``/logout`` routes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from custodes.access.identity import ROLES, SESSION_COOKIE, Identities, User

__all__ = [
    "TEMPLATES",
    "LoginThrottle",
    "Refused",
    "current_user",
    "identities",
    "install",
    "render",
    "require",
    "require_page",
    "router",
]

SESSION_TTL_S = 8 * 3600

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("custodes.web", "templates"),
    autoescape=jinja2.select_autoescape(default=True),
)


def _hours_minutes(seconds: float | None) -> str:
    from custodes.web.staff_data import hours_minutes

    return hours_minutes(seconds)


TEMPLATES.filters["hm"] = _hours_minutes  # lengths of time as "2 h 30 min"

router = APIRouter(tags=["auth"])


class Refused(Exception):
    """Raised by the role checks; turned into a JSON error, a redirect or a 403 page."""

    def __init__(self, status: int, message: str, *, page: bool, next_url: str = "/") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.page = page
        self.next_url = next_url


def identities(request: Request) -> Identities:
    ids: Identities = request.app.state.identities
    return ids


def current_user(request: Request) -> User | None:
    """The user the request's bearer token or session cookie names, or None."""
    if "custodes_user" in request.scope:
        cached: User | None = request.scope["custodes_user"]
        return cached
    ids = identities(request)
    user: User | None = None
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        user = ids.by_token(header[7:].strip())
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            user = ids.session_user(cookie)
    request.scope["custodes_user"] = user
    return user


def _check_roles(roles: tuple[str, ...]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"unknown roles {unknown}; roles are {ROLES}")


def _needs(roles: tuple[str, ...]) -> str:
    if len(roles) == 1:
        return f"the {roles[0]} role"
    return "one of the roles " + ", ".join(roles)


def _here(request: Request) -> str:
    path = request.url.path
    return path + ("?" + request.url.query if request.url.query else "")


def require(*roles: str) -> Callable[[Request], User]:
    """A dependency for JSON routes: the user, if they hold one of ``roles``."""
    _check_roles(roles)

    def dependency(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise Refused(
                401,
                "a valid user token (Authorization: Bearer TOKEN) or login session is required",
                page=False,
            )
        if user.role not in roles:
            raise Refused(403, f"this needs {_needs(roles)}, and you are {user.role}", page=False)
        return user

    return dependency


def require_page(*roles: str) -> Callable[[Request], User]:
    """A dependency for HTML pages: redirects to /login when logged out, 403 on a wrong role."""
    _check_roles(roles)

    def dependency(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise Refused(401, "Please log in.", page=True, next_url=_here(request))
        if user.role not in roles:
            raise Refused(403, f"This page needs {_needs(roles)}; you are {user.role}.", page=True)
        return user

    return dependency


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with ``user`` (the User or None), ``path`` and ``request``."""
    context.setdefault("user", current_user(request))
    context.setdefault("path", request.url.path)
    html = TEMPLATES.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


def _safe_next(value: str | None) -> str:
    """Only local paths: never redirect a login to another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/app"
    return value


class LoginThrottle:
    """Slows password guessing by client and account together, with growing delays.

    The first ``free`` failures of one client for one account cost nothing;
    each one after that doubles the wait before that client may try that
    account again (``base_s``, twice that, ..., at most ``max_s``).  One client
    trying many accounts is slowed the same way after ``client_free`` failures
    in all.  Nothing here refuses a client that has not failed: a correct
    password from another client always gets in, so nobody can lock a judge
    out.  A success clears that client's count for the account.  Kept in
    memory; a restart forgets it.
    """

    def __init__(
        self,
        free: int = 3,
        client_free: int = 30,
        base_s: float = 1.0,
        max_s: float = 900.0,
    ) -> None:
        self.free = free
        self.client_free = client_free
        self.base_s = base_s
        self.max_s = max_s
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _delay(self, count: int, free: int) -> float:
        if count < free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(count - free, 30)))

    def wait_s(self, client: str, name: str) -> float:
        """Seconds until ``client`` may try ``name`` again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            pair = self._failures.get((client, name.lower()), (0, now))
            spread = self._failures.get((client, ""), (0, now))
        return max(
            0.0,
            pair[1] + self._delay(pair[0], self.free) - now,
            spread[1] + self._delay(spread[0], self.client_free) - now,
        )

    def failed(self, client: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # forget old entries; memory stays bounded
                self._failures = {
                    k: v for k, v in self._failures.items() if now - v[1] < self.max_s
                }
            for key in ((client, name.lower()), (client, "")):
                count, _ = self._failures.get(key, (0, now))
                self._failures[key] = (count + 1, now)

    def succeeded(self, client: str, name: str) -> None:
        with self._lock:
            self._failures.pop((client, name.lower()), None)


# -- routes ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str = "/app") -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), error=None, name="")


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    name: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/app",
) -> Response:
    ids = identities(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    target = _safe_next(next)
    client = request.client.host if request.client else ""
    wait = throttle.wait_s(client, name)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        when = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
        return render(
            request,
            "login.html",
            status_code=429,
            next=target,
            error=f"Too many failed logins from here for this account; try again in {when}.",
            name=name,
            user=None,
        )
    user = await run_in_threadpool(ids.check_password, name, password) if name else None
    if user is None:
        throttle.failed(client, name)
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            error="That name and password do not match an active account.",
            name=name,
            user=None,
        )
    throttle.succeeded(client, name)
    cookie = await run_in_threadpool(ids.session_cookie, user, SESSION_TTL_S)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return resp


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    """End the session on the server (the cookie is dead even if kept), then drop it."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        identities(request).end_session(cookie)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


def install(app: FastAPI, data: Path | None = None) -> None:
    """Open ``DIR/access.db`` as ``app.state.identities``; add the handler and login routes."""
    if data is None:
        data = app.state.ledger.instance.path
    app.state.identities = Identities(data)
    app.state.login_throttle = LoginThrottle()

    @app.exception_handler(Refused)
    async def _refused(request: Request, err: Refused) -> Response:
        if not err.page:
            headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
            return JSONResponse({"error": err.message}, status_code=err.status, headers=headers)
        if err.status == 401:
            return RedirectResponse("/login?next=" + quote(err.next_url, safe="/"), 303)
        return render(
            request, "internal/forbidden.html", status_code=err.status, message=err.message
        )

    app.include_router(router)
