"""Health: is NATS connected, and how far behind the stream is the projector."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client as NatsClient
from sqlalchemy.exc import DBAPIError

from backend.bff.sync.pull import PullService
from backend.consumers.runner import ConsumerRunner
from backend.nats.streams import EVENTS_STREAM


class HealthProbe:
    def __init__(
        self, nc: NatsClient, pull: PullService, runners: Mapping[str, ConsumerRunner]
    ) -> None:
        self._nc = nc
        self._pull = pull
        self._runners = runners

    async def report(self) -> dict[str, Any]:
        connected = self._nc.is_connected
        try:
            watermark, _ = await self._pull.status()
            database = "ok"
        except (DBAPIError, OSError):
            watermark, database = 0, "unavailable"
        last_seq = watermark
        if connected:
            with contextlib.suppress(Exception):
                info = await self._nc.jetstream().stream_info(EVENTS_STREAM)
                last_seq = info.state.last_seq
        return {
            "status": "ok" if connected and database == "ok" else "degraded",
            "nats": "connected" if connected else "disconnected",
            "database": database,
            "projector_lag": max(0, last_seq - watermark),
        }
