"""Per-user rate limit at the edge: a token bucket per user, in each BFF process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from backend.bff.auth.tokens import Principal
from backend.errors import RateLimited


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token for ``key``, or raise RateLimited saying when to come back."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self._rate)
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"too many requests: retry in {wait} s", retry_after=wait)
        self._buckets[key] = (tokens - 1, now)


class PerUserRateLimit:
    """Guard of every route a signed-in user calls (the bearer middleware has already said
    who the user is): one token of the caller's bucket, or 429 with Retry-After."""

    def __init__(self, limiter: Callable[[], RateLimiter]) -> None:
        self._limiter = limiter

    def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal: Principal | None = connection.scope.get("user")
        if principal is not None:  # public routes (and the schema) have no user
            self._limiter().check(principal.user_id)
