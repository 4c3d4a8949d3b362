"""Who is calling: the principal, how it is resolved, and the guards on every route.

The console authenticates with the server-side session cookie, the API with
``Authorization: Bearer <key>``; never the other way round, so API routes need no CSRF
token and console forms can't be driven by a stolen key. Resolving a principal needs the
tenants domain, which passes its loaders to the middleware in the app factory.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core.sessions import session_token

ROLES = ("owner", "admin", "merchandiser", "customer_service", "marketing", "store_associate", "read_only")
# What an API key may be, besides admin and read-only: a channel's order intake, a stock feed's
# sender. Such a key reaches only the routes that name its role (``key_roles`` in their opt).
KEY_ROLES = ("order_intake", "feed_intake")
FOR_ORDER_KEYS: dict[str, object] = {"key_roles": ("order_intake",)}  # a route's opt: order-intake keys may
FOR_FEED_KEYS: dict[str, object] = {"key_roles": ("feed_intake",)}
FOR_EVERY_KEY: dict[str, object] = {"key_roles": KEY_ROLES}
ADMINS = ("owner", "admin")
MERCHANDISERS = ("owner", "admin", "merchandiser")  # locations, catalog, stock and rules


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    role: str
    label: str  # email of the user or name of the key, for the audit log
    tenant_name: str
    timezone: str
    currency: str
    user_id: uuid.UUID | None = None
    user_name: str | None = None
    api_key_id: uuid.UUID | None = None
    session_token: str | None = None
    # The locations a store associate works at (None: every location, for every other role).
    locations: frozenset[str] | None = None
    # The one channel an order-intake key takes orders for.
    channel: str | None = None
    # The company's language and the locale its console formats money and times with ("fr_FR").
    language: str = "en"
    locale: str = "en_US"
    # Where the company stands with the platform's invoices (``tenants.models.Tenant.billing_standing``).
    standing: str = "good"

    @property
    def is_admin(self) -> bool:
        return self.role in ADMINS

    def works_at(self, location_code: str) -> bool:
        return self.locations is None or location_code in self.locations


SessionLoader = Callable[[str], Awaitable[Principal | None]]
KeyLoader = Callable[[str], Awaitable[Principal | None]]


class AuthMiddleware(ASGIMiddleware):
    """Puts the caller's principal (or None) in ``scope["state"]["principal"]``; never refuses.
    Refusal is the guards' job, so public pages can still tell who is signed in."""

    exclude_path_pattern = ("^/static/", "^/healthz$", "^/readyz$")

    def __init__(self, session_loader: SessionLoader, key_loader: KeyLoader) -> None:
        self.session_loader = session_loader
        self.key_loader = key_loader

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        principal: Principal | None = None
        if scope["type"] in ("http", "websocket"):
            connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
            if scope["path"].startswith("/api/"):
                header = connection.headers.get("authorization", "")
                scheme, _, credentials = header.partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    principal = await self.key_loader(credentials.strip())
                    if principal is None:
                        scope.setdefault("state", {})["auth_error"] = "This API key is not valid or was revoked."
            elif token := session_token(connection):
                principal = await self.session_loader(token)
        scope.setdefault("state", {})["principal"] = principal
        if principal is not None:
            structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
        await next_app(scope, receive, send)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    value = connection.scope.get("state", {}).get("principal")
    return value if isinstance(value, Principal) else None


def require_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = principal_of(connection)
    if principal is None:
        raise NotAuthorizedException(connection.scope.get("state", {}).get("auth_error", ""))
    return principal


def requires(*roles: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """Guard: signed in (or a valid key) and, when roles are given, one of them. Async although it
    never waits: Litestar runs a plain function guard in a worker thread, on every request."""
    allowed = frozenset(roles)
    unknown = allowed - set(ROLES) - set(KEY_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        principal = require_principal(connection)
        if principal.role in KEY_ROLES:
            # A narrow key reaches the routes made for it, whatever the controller allows.
            if principal.role not in handler.opt.get("key_roles", ()):
                raise PermissionDeniedException("This API key may not do this: see its role under Settings → API keys.")
            return
        if allowed and principal.role not in allowed:
            raise PermissionDeniedException("Forbidden")

    guard.__name__ = "requires_" + ("_".join(sorted(allowed)) or "signed_in")
    return guard


signed_in = requires()
admins_only = requires(*ADMINS)


def role_choices(assignable_by: str) -> Iterable[str]:
    """Roles a member with role ``assignable_by`` may give: only an owner makes owners."""
    return [r for r in ROLES if r != "owner" or assignable_by == "owner"]
