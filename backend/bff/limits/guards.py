"""The request limits that need no request body, as Litestar guards.

- ``PerUserRateLimit``: every request of a signed-in user takes one token of that user's
  bucket (``OUTPOST_RATE_LIMIT_PER_S``, ``OUTPOST_RATE_LIMIT_BURST``), over every BFF
  process together;
- ``SignUpLimit``: sign-ups per client address (``OUTPOST_SIGNUP_LIMIT`` at once, then
  one per ``OUTPOST_SIGNUP_WINDOW_S / OUTPOST_SIGNUP_LIMIT``);
- ``UserCheckLimit``: member checks (``GET /v1/users/{username}``) per signed-in user
  (``OUTPOST_USER_CHECK_LIMIT`` at once, then one per ``OUTPOST_USER_CHECK_WINDOW_S /
  OUTPOST_USER_CHECK_LIMIT``), so the route cannot be used to list the usernames.

Both answer 429 with ``Retry-After``. Each reads its store when a request comes, so an app
built only for its OpenAPI document needs none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from sqlalchemy.exc import DBAPIError

from backend.bff.auth.tokens import Principal
from backend.bff.limits.address import ClientAddresses
from backend.bff.limits.store import LimitStore
from backend.config import Settings
from backend.errors import RateLimited

__all__ = [
    "LIMIT",
    "SIGNIN",
    "SIGNUP",
    "USER_CHECK",
    "PerUserRateLimit",
    "SignUpLimit",
    "UserCheckLimit",
]

log = logging.getLogger(__name__)

LIMIT = "limit"
"""The handler ``opt`` key that names the throttle of a public route."""
SIGNUP = "signup"
SIGNIN = "signin"
USER_CHECK = "user_check"

_WARN_EVERY_S = 30.0
_LEASE_S = 1.0
_MAX_LEASES = 10_000


@dataclass
class _Lease:
    requests: int
    until: float


class PerUserRateLimit:
    """Every request a signed-in user makes.

    The bucket is shared by every process, but a process asks for a few requests at once
    (``OUTPOST_RATE_LIMIT_LEASE``) and serves them from memory for up to a second, so most
    requests cost no database round trip; what one process holds no other can spend, so
    the limit holds exactly across processes. While the limits database cannot be reached
    requests go on unlimited (a warning says so): the limit protects the service, and must
    not take it down with it."""

    def __init__(self, store: Callable[[], LimitStore], settings: Settings) -> None:
        self._store = store
        self._rate = settings.rate_limit_per_s
        self._burst = settings.rate_limit_burst
        self._lease = max(1, min(settings.rate_limit_lease, settings.rate_limit_burst // 20))
        self._leases: dict[str, _Lease] = {}
        self._warned_at = float("-inf")

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        principal: Principal | None = connection.scope.get("user")
        if principal is None:  # public routes (and the schema) have no user
            return
        now = time.monotonic()
        lease = self._leases.get(principal.user_id)
        if lease is not None and lease.requests > 0 and lease.until > now:
            lease.requests -= 1
            return
        try:
            grant = await self._store().take(
                f"user {principal.user_id}", self._rate, self._burst, want=self._lease
            )
        except (DBAPIError, OSError) as exc:
            if now - self._warned_at > _WARN_EVERY_S:
                self._warned_at = now
                log.warning("rate limit not applied: the limits database is away: %s", exc)
            return
        if not grant.granted:
            wait = grant.retry_after_s
            raise RateLimited(f"too many requests: retry in {wait} s", retry_after=wait)
        if len(self._leases) > _MAX_LEASES:
            self._leases = {k: v for k, v in self._leases.items() if v.until > now}
        self._leases[principal.user_id] = _Lease(grant.granted - 1, now + _LEASE_S)


class SignUpLimit:
    def __init__(
        self, store: Callable[[], LimitStore], addresses: ClientAddresses, settings: Settings
    ) -> None:
        self._store = store
        self._addresses = addresses
        self._burst = max(1, settings.signup_limit)
        self._rate = self._burst / settings.signup_window_s

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if handler.opt.get(LIMIT) != SIGNUP:
            return
        address = self._addresses.of(connection.scope)
        grant = await self._store().take(f"signup {address}", self._rate, self._burst)
        if not grant.granted:
            wait = grant.retry_after_s
            raise RateLimited(
                f"too many sign-ups from this address: retry in {wait} s", retry_after=wait
            )


class UserCheckLimit:
    """Member checks per signed-in user, over every BFF process together (no lease: each
    check takes its token from the shared bucket)."""

    def __init__(self, store: Callable[[], LimitStore], settings: Settings) -> None:
        self._store = store
        self._burst = max(1, settings.user_check_limit)
        self._rate = self._burst / settings.user_check_window_s

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if handler.opt.get(LIMIT) != USER_CHECK:
            return
        principal: Principal | None = connection.scope.get("user")
        if principal is None:
            return  # the bearer middleware has answered 401 already
        key = f"user check {principal.user_id}"
        grant = await self._store().take(key, self._rate, self._burst)
        if not grant.granted:
            wait = grant.retry_after_s
            raise RateLimited(f"too many member checks: retry in {wait} s", retry_after=wait)
