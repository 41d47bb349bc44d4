"""The guard in front of every route: trusted hosts, CSRF, auth before the body, size limits.

One ASGI middleware, :class:`Guard`, checks each HTTP request in this order
before any route runs or any body is read:

1. **Host.** The ``Host`` header must name one of the configured hosts
   (:attr:`Policy.hosts`); otherwise 400.  This keeps DNS-rebinding pages and
   misdirected requests away from the staff origin.
2. **CSRF.** An unsafe method (POST, PUT, PATCH, DELETE) that carries the
   session cookie, and every login, must come from this origin: its
   ``Origin`` must be this site's own, or, with no ``Origin``, its
   ``Sec-Fetch-Site`` must be ``same-origin``.  ``Origin: null`` is refused.
   A request with ``Authorization: Bearer`` is exempt (a browser never adds
   one by itself), and a login with neither header (a script, not a browser)
   passes.  Refused with 403.
3. **Authentication before the body.** An unsafe request that has a body, to
   any route but ``/login`` and ``/logout``, must carry valid credentials (a
   user's or agent's bearer token, or a live session cookie) or it is refused
   with 401 without reading a byte of the body.
4. **Size.** A body larger than the route's limit is refused with 413: at
   once when ``Content-Length`` says so, and while it streams otherwise.

Every response, refusals included, carries a Content-Security-Policy that
allows only this origin (no external hosts but a configured map tile server,
for images), ``X-Content-Type-Options:
nosniff``, ``X-Frame-Options: DENY`` and ``Referrer-Policy: same-origin``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool

from custodes.access.identity import SESSION_COOKIE

__all__ = ["CSP", "Guard", "Policy", "default_hosts"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_WRITES = frozenset({"/login", "/logout", "/custody/entries"})  # signed entries
UPLOAD_PATHS = frozenset({"/fleet/archive"})
LOGIN_LIMIT = 64 << 10

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:{tiles}; font-src 'self'; connect-src 'self'; media-src 'self' blob:; "
    "object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def default_hosts(public_url: str) -> tuple[str, ...]:
    """The loopback names and the public URL's host."""
    hosts = ["127.0.0.1", "localhost", "::1"]
    public = urlsplit(public_url).hostname
    if public and public not in hosts:
        hosts.append(public)
    return tuple(hosts)


@dataclass(frozen=True)
class Policy:
    """What :class:`Guard` allows: host names, the public origin and body limits in bytes."""

    hosts: tuple[str, ...]
    public_url: str = "http://127.0.0.1:8000"
    max_body: int = 32 << 20
    max_upload: int = 4 << 30
    tile_url: str | None = None
    origins: frozenset[str] = field(init=False)
    csp: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origins", frozenset({_origin_of(self.public_url)}))
        # The one external host a page may use: the map's tile server, when one is configured.
        tiles = ""
        if self.tile_url and urlsplit(self.tile_url).scheme in ("http", "https"):
            tiles = " " + _origin_of(self.tile_url.replace("{s}", "*"))
        object.__setattr__(self, "csp", CSP.format(tiles=tiles))

    def limit(self, path: str) -> int:
        if path in UPLOAD_PATHS:
            return self.max_upload
        if path in PUBLIC_WRITES:
            return LOGIN_LIMIT
        return self.max_body


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def _host_name(host: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


class Guard:
    """The ASGI middleware; ``credentials`` tells whether a request's credentials are valid."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: Policy,
        credentials: Callable[[str | None, str | None, Scope], bool],
    ) -> None:
        self.app = app
        self.policy = policy
        self.credentials = credentials
        self._headers = ((b"content-security-policy", policy.csp.encode()), *_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            k = key.decode("latin-1").lower()
            v = value.decode("latin-1")
            headers[k] = f"{headers[k]}; {v}" if k == "cookie" and k in headers else v
        refusal = await self._check(scope, headers)
        if refusal is not None:
            await self._refuse(send_guarded, *refusal)
            return
        limit = self.policy.limit(scope.get("path", ""))
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await self._refuse(send_guarded, 413, self._too_large(limit))
            return
        await self._stream(scope, receive, send_guarded, limit)

    async def _check(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str]] | None:
        host = _host_name(headers.get("host", ""))
        if host not in self.policy.hosts:
            return 400, "this server does not answer for that host name", {}
        method = scope.get("method", "GET")
        if method not in UNSAFE:
            return None
        path: str = scope.get("path", "")
        auth = headers.get("authorization")
        bearer = auth is not None and auth[:7].lower() == "bearer "
        cookie = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
        if not bearer and (cookie is not None or path == "/login"):
            refused = self._cross_site(headers, scope)
            if refused is not None:
                return 403, refused, {}
        has_body = headers.get("content-length", "0") not in ("", "0") or (
            "transfer-encoding" in headers
        )
        if has_body and path not in PUBLIC_WRITES:
            ok = await run_in_threadpool(
                self.credentials, auth if bearer else None, None if bearer else cookie, scope
            )
            if not ok:
                if path.startswith("/app") and not bearer:
                    return 303, "Please log in.", {"location": "/login?next=" + quote(path)}
                what = (
                    "a valid agent token is required (Authorization: Bearer TOKEN)"
                    if path.startswith("/fleet/")
                    else "a valid user token (Authorization: Bearer TOKEN) or login session"
                    " is required"
                )
                return 401, what, {"www-authenticate": "Bearer"}
        return None

    def _cross_site(self, headers: dict[str, str], scope: Scope) -> str | None:
        """Why an unsafe cookie-bearing (or login) request looks cross-site, or None."""
        origin = headers.get("origin")
        fetch_site = headers.get("sec-fetch-site")
        if origin is not None:
            scheme = scope.get("scheme", "http")
            own = f"{scheme}://{headers.get('host', '')}".lower()
            if origin.lower() in (own, *self.policy.origins):
                return None
            return "this form or request came from another site (its Origin is not this site)"
        if fetch_site is not None:
            if fetch_site.lower() == "same-origin":
                return None
            return "this form or request came from another site (Sec-Fetch-Site)"
        if (
            scope.get("path") == "/login"
            and _cookie(headers.get("cookie", ""), SESSION_COOKIE) is None
        ):
            return None  # not a browser: no cookie to ride on, nothing to forge
        return "a request that uses the login session must say where it came from (Origin)"

    def _too_large(self, limit: int) -> str:
        return f"the request body is larger than {_size(limit)}"

    async def _stream(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        too_large = False
        started = False

        async def counted() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                started = True
                await self._refuse(send, 413, self._too_large(limit))
                return
            if too_large:
                return  # the app's own answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await self._refuse(send, 413, self._too_large(limit))

    @staticmethod
    async def _refuse(
        send: Send, status: int, message: str, extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.encode(), v.encode("latin-1")) for k, v in (extra or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
