"""Which session families have been revoked, as every BFF process sees them.

Checking a family on every authenticated request must cost nothing on the hot path, so
each process keeps the set of families revoked within the lifetime of an access token
(older ones have no access token left) and reloads it from the database at most every
``refresh_s``, when a request needs it. A family revoked by this process counts at once;
one revoked by another process counts here within ``refresh_s``. While the database
cannot be read the last set stands: nothing can be revoked without it either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from backend.bff.models import RefreshFamily
from backend.db import Database

__all__ = ["RevokedFamilies"]

log = logging.getLogger(__name__)


class RevokedFamilies:
    def __init__(
        self,
        db: Database,
        *,
        horizon_s: float,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._horizon_ms = round((horizon_s + 60) * 1000)  # a minute of clock slack
        self._refresh_s = refresh_s
        self._clock = clock
        self._families: set[str] = set()
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def contains(self, family: str) -> bool:
        if self._stale():
            await self._reload()
        return family in self._families

    def add(self, family: str) -> None:
        """A family this process has just revoked (and committed)."""
        self._families.add(family)

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._refresh_s

    async def _reload(self) -> None:
        async with self._lock:
            if not self._stale():
                return  # another request reloaded it while this one waited
            since = time.time_ns() // 1_000_000 - self._horizon_ms
            try:
                async with self._db.read() as conn:
                    rows = await conn.execute(
                        select(RefreshFamily.id).where(RefreshFamily.revoked_at >= since)
                    )
                    self._families = set(rows.scalars())
            except (DBAPIError, OSError) as exc:
                log.warning("revoked sessions not reloaded (the last set stands): %s", exc)
            self._loaded_at = self._clock()
