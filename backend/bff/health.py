"""Health: is NATS connected, is the views database there, how far behind is each consumer.

``consumers`` has one entry per stream consumer this process runs: its circuit breaker
(``closed``, or ``open`` while its database or NATS is away), its lag in events and in
milliseconds (the age of the oldest event it has not processed: the "iterator age"), and
its last error. An open breaker makes the status ``degraded``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client as NatsClient
from sqlalchemy.exc import DBAPIError

from backend.bff.sync.pull import PullService
from backend.consumers.runner import ConsumerRunner
from backend.nats.streams import EVENTS_STREAM

_STATUS_TIMEOUT_S = 1.0
"""Health answers in about a second whatever NATS does: beyond that, lags are unknown."""


class HealthProbe:
    def __init__(
        self,
        nc: NatsClient,
        pull: PullService,
        runners: Mapping[str, ConsumerRunner],
        webhooks: Callable[[], Awaitable[dict[str, int]]] | None = None,
    ) -> None:
        self._nc = nc
        self._pull = pull
        self._runners = runners
        self._webhooks = webhooks
        """The gateway's delivery queue by status (``GatewayService.queue``), if any."""

    async def report(self) -> dict[str, Any]:
        connected = self._nc.is_connected
        try:
            watermark, _ = await self._pull.status()
            database = "ok"
        except (DBAPIError, OSError):
            watermark, database = 0, "unavailable"
        stream_last: int | None = None  # read once, for the projector lag and every consumer
        if connected:
            with contextlib.suppress(Exception):
                info = await asyncio.wait_for(
                    self._nc.jetstream().stream_info(EVENTS_STREAM), _STATUS_TIMEOUT_S
                )
                stream_last = info.state.last_seq
        last_seq = watermark if stream_last is None else stream_last
        statuses = await asyncio.gather(
            *(_consumer(runner, connected, stream_last) for runner in self._runners.values())
        )
        consumers = dict(zip(self._runners, statuses, strict=True))
        breakers_closed = all(c["breaker"] == "closed" for c in consumers.values())
        healthy = connected and database == "ok" and breakers_closed
        report: dict[str, Any] = {
            "status": "ok" if healthy else "degraded",
            "nats": "connected" if connected else "disconnected",
            "database": database,
            "projector_lag": max(0, last_seq - watermark),
            "consumers": consumers,
        }
        if self._webhooks is not None:
            try:
                report["webhooks"] = await asyncio.wait_for(self._webhooks(), _STATUS_TIMEOUT_S)
            except (DBAPIError, OSError, TimeoutError):
                report["webhooks"] = None
        return report


async def _consumer(
    runner: ConsumerRunner, connected: bool, stream_last: int | None
) -> dict[str, Any]:
    try:
        if not connected or stream_last is None:
            raise TimeoutError  # NATS cannot say how far behind anyone is
        status = await asyncio.wait_for(runner.status(stream_last), _STATUS_TIMEOUT_S)
    except TimeoutError:
        breaker = runner.breaker
        status = {
            "breaker": breaker.state,
            "lag_events": None,
            "lag_ms": None,
            "last_error": breaker.last_error,
            "faults": runner.stats.faults,
        }
    return {
        "breaker": status["breaker"],
        "standby": runner.standby,
        "lag_events": status["lag_events"],
        "lag_ms": status["lag_ms"],
        "last_error": status["last_error"],
        "faults": status["faults"],
    }
