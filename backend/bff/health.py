"""Health: is NATS connected, is the views database there, how far behind is each consumer.

``consumers`` has one entry per stream consumer this process runs, and per consumer its
child process runs (``outpost backend consume``, asked over NATS on its ``health_subject``):
its circuit breaker (``closed``, or ``open`` while its database or NATS is away), its lag in
events and in milliseconds (the age of the oldest event it has not processed: the
"iterator age"), and its last error. An open breaker makes the status ``degraded``, and so
does a child that does not answer (its consumers show the breaker ``unknown``), except in
the moment after it was started (``starting``). A running child that is late with one
answer is reported as it last answered, for up to 10 s (``REPORT_KEPT_S`` in
``backend/consumers/child.py``): it runs in the idle class, and a machine whose cores are
all busy can hold it off the CPU for a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from sqlalchemy.exc import DBAPIError

from backend.bff.sync.pull import PullService
from backend.consumers.child import ApartConsumers
from backend.consumers.runner import ConsumerRunner
from backend.nats.streams import EVENTS_STREAM

_STATUS_TIMEOUT_S = 1.0
"""Health answers in about a second whatever NATS does: beyond that, lags are unknown."""


class ConsumerStatus(msgspec.Struct):
    """One consumer's entry in ``/v1/health``'s ``consumers``; a consumers' process answers
    its health subject with one per consumer it runs (``consumer_reports``)."""

    breaker: str
    """``closed``, ``open``; ``starting`` or ``unknown`` while its process does not answer."""
    standby: bool | None
    """True while another process holds its lease and consumes for it; None if unknown."""
    lag_events: int | None
    """Events on the stream past its position; None when NATS cannot say."""
    lag_ms: int | None
    """The age of the oldest of those events (the iterator age), 0 when caught up."""
    last_error: str | None
    faults: int | None
    """Messages it sent to the fault stream since its process started."""
    position: int | None = None
    """The last seq of the events stream it has passed (committed, or faulted); None if
    unknown. Its progress, whichever way it fetches."""
    fetch: Literal["shared", "own"] | None = None
    """Whether its events come from its process's shared fetch, or a durable consumer of
    its own (``backend/consumers/feed.py``); None if unknown."""


class HealthProbe:
    def __init__(
        self,
        nc: NatsClient,
        pull: PullService,
        runners: Mapping[str, ConsumerRunner],
        webhooks: Callable[[], Awaitable[dict[str, int]]] | None = None,
        *,
        apart: ApartConsumers | None = None,
    ) -> None:
        self._nc = nc
        self._pull = pull
        self._runners = runners
        self._apart = apart
        """The consumers the child process runs, asked on its health subject."""
        self._webhooks = webhooks
        """The gateway's delivery queue by status (``GatewayService.queue``), if any."""

    async def report(self) -> dict[str, Any]:
        connected = self._nc.is_connected
        try:
            watermark, _ = await self._pull.status()
            database = "ok"
        except (DBAPIError, OSError):
            watermark, database = 0, "unavailable"
        stream_last = await stream_last_seq(self._nc)  # once: the projector lag, every consumer
        last_seq = watermark if stream_last is None else stream_last
        consumers, apart = await asyncio.gather(
            consumer_reports(self._runners, connected, stream_last),
            self._apart_reports(stream_last),
        )
        consumers.update(apart)
        breakers_closed = all(c["breaker"] in ("closed", "starting") for c in consumers.values())
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

    async def _apart_reports(self, stream_last: int | None) -> dict[str, Any]:
        """The child's consumers, as it reports them; while it does not answer, ``starting``
        for a moment after it was (re)started, else ``unknown`` (which degrades the status)."""
        apart = self._apart
        if apart is None or not apart.names:
            return {}
        # The stream's last seq goes with the question (the child need not ask NATS again);
        # the child bounds each consumer's answer by _STATUS_TIMEOUT_S, and this waits a
        # little longer for the reply to come back.
        question = b"" if stream_last is None else str(stream_last).encode()
        try:
            reply = await self._nc.request(
                apart.health_subject, question, timeout=_STATUS_TIMEOUT_S + 0.5
            )
            reports: dict[str, Any] = msgspec.json.decode(reply.data)
            apart.answered(reports)
        except (nats.errors.Error, TimeoutError, msgspec.DecodeError):
            reports = apart.last_reports()
        breaker, why = apart.silence()
        silent = msgspec.structs.asdict(ConsumerStatus(breaker, None, None, None, why, None))
        return {name: reports.get(name, silent) for name in apart.names}


async def consumer_reports(
    runners: Mapping[str, ConsumerRunner], connected: bool, stream_last: int | None
) -> dict[str, Any]:
    """Each runner's health, by component name."""
    statuses = await asyncio.gather(
        *(_consumer(runner, connected, stream_last) for runner in runners.values())
    )
    return dict(zip(runners, statuses, strict=True))


async def stream_last_seq(nc: NatsClient) -> int | None:
    """The events stream's last sequence, or None if NATS does not say within a second."""
    if not nc.is_connected:
        return None
    with contextlib.suppress(Exception):
        info = await asyncio.wait_for(nc.jetstream().stream_info(EVENTS_STREAM), _STATUS_TIMEOUT_S)
        return int(info.state.last_seq)
    return None


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
            "position": None,
            "fetch": None,
        }
    return msgspec.structs.asdict(
        ConsumerStatus(
            breaker=status["breaker"],
            standby=runner.standby,
            lag_events=status["lag_events"],
            lag_ms=status["lag_ms"],
            last_error=status["last_error"],
            faults=status["faults"],
            position=status["position"],
            fetch=status["fetch"],
        )
    )
