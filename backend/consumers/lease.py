"""One process per component: the runner holds its component's lease while it consumes.

Two runners of one component would take each other's durable consumer and write the same
batch twice, so a second process waits on *standby* (shown in ``/v1/health``) and takes
over when the first one ends. The lease itself is the component database's
(``Database.try_lease``); this module only waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from backend.consumers.component import Component
from backend.db import Lease

__all__ = ["ComponentLease"]

log = logging.getLogger(__name__)


class ComponentLease:
    """Waits for the lease of one component, telling once that it is on standby."""

    def __init__(self, component: Component, *, retry_s: float = 2.0) -> None:
        self.component = component
        self.retry_s = retry_s
        self.standby = False
        """Another process runs this component: this one waits to take over."""

    async def take(self, stop: asyncio.Event) -> Lease | None:
        """The lease, once no other process holds it; None when ``stop`` is set first."""
        name = self.component.name
        told = False
        while not stop.is_set():
            try:
                lease = await self.component.db.try_lease(name)
            except Exception as exc:  # the database away: the lanes would wait too
                lease = None
                log.info("%s: cannot take the lease yet: %r", name, exc)
            if lease is not None:
                if told:
                    log.warning("%s: the other runner is gone: taking over", name)
                self.standby = False
                return lease
            if not told:
                log.warning("%s: another process runs this component: on standby", name)
                told = True
            self.standby = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_s)
        return None
