"""The admin gate of ``/metrics`` and the detailed health (SPEC section 6).

A request passes when it comes from this host (a loopback client address; not through a
proxy we do not trust) or carries ``Authorization: Bearer <OUTPOST_ADMIN_TOKEN>``.
``/metrics`` refuses anyone else (401 without a token, 403 with a wrong one); the health
answers them only its status.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from backend.bff.limits.address import ClientAddresses
from backend.errors import BackendError, Unauthorized

__all__ = ["ADMIN", "AdminGate", "Forbidden"]

ADMIN = "admin"
"""The handler ``opt`` key of routes only an operator may call."""


class Forbidden(BackendError):
    status_code = 403


class AdminGate:
    def __init__(self, addresses: ClientAddresses, admin_token: str | None) -> None:
        self._addresses = addresses
        self._token = admin_token.strip() if admin_token and admin_token.strip() else None
        """None when unset or blank: an empty ``OUTPOST_ADMIN_TOKEN=`` must open nothing
        (an empty bearer would match it)."""

    def allows(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        return self._addresses.is_loopback(connection.scope) or self._has_token(connection)

    async def guard(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        """Guard of the routes only an operator may call (``opt={ADMIN: True}``).

        A coroutine, though it awaits nothing: Litestar runs a plain function guard on a
        worker thread, and every request passes this guard, so each would hop to a thread
        and back (a loop wake-up, up to milliseconds on a busy machine)."""
        if not handler.opt.get(ADMIN) or self._addresses.is_loopback(connection.scope):
            return
        if "authorization" not in connection.headers:
            raise Unauthorized("this address needs the admin token (OUTPOST_ADMIN_TOKEN)")
        if not self._has_token(connection):
            raise Forbidden("wrong admin token")

    def _has_token(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        return (
            self._token is not None
            and scheme.lower() == "bearer"
            and bool(token.strip())
            and hmac.compare_digest(token.strip().encode(), self._token.encode())
        )
