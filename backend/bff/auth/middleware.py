"""Bearer authentication at the edge: who a request acts for, before any handler runs.

Every route needs a bearer token unless its handler says ``opt={"public": True}`` (sign-up,
sign-in, refresh, info, health, metrics, the documents): a new route is private until it is
declared public. A password token (a sign-in with a one-time password) passes only where
the handler says ``opt={"password_token": True}``. The user goes to ``request.user``
(handlers take it as ``principal``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from backend.bff.auth.tokens import Principal
from backend.errors import Unauthorized

__all__ = ["PASSWORD_TOKEN", "PUBLIC", "BearerAuthMiddleware"]

PUBLIC = "public"
"""The handler ``opt`` key of routes that need no bearer token."""
PASSWORD_TOKEN = "password_token"
"""The handler ``opt`` key of the one route a password token may call (changing it)."""


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, authenticate: Callable[[str], Awaitable[Principal]]) -> None:
        super().__init__(app, exclude=["^/schema"], exclude_from_auth_key=PUBLIC)
        self._authenticate = authenticate

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token: sign in first")
        principal = await self._authenticate(token.strip())
        if principal.password_only and not connection.route_handler.opt.get(PASSWORD_TOKEN):
            raise Unauthorized(
                "this token only changes a one-time password: POST /v1/auth/password"
            )
        return AuthenticationResult(user=principal, auth=token)
