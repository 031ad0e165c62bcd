"""The orchestrator's timers: JetStream message schedules on ``OUTPOST_SCHEDULES`` (SPEC 6c).

A reminder is planned by publishing a schedule definition on
``outpost.schedules.plan.<task id>`` with ``Nats-Schedule: @at <RFC 3339 UTC>`` and
``Nats-Schedule-Target: outpost.schedules.due.<task id>``; the server keeps one schedule
per subject, so planning again replaces it, and purging the subject cancels it. When the
time comes the server itself publishes the definition's body (the ``Plan``) on the target
subject and removes the definition (nats-server 2.12+, ``allow_msg_schedules``): no loop
of ours keeps time, and a schedule survives a restart of nats-server and of the backend.
The orchestrator alone consumes the due subjects, with its durable consumer
``orchestrator_timers``; a fired plan is acknowledged once it was handled, so a crash in
between delivers it again (and the writer's id record makes that write ``duplicate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from backend.nats.streams import (
    SCHEDULES_DUE_PREFIX,
    SCHEDULES_STREAM,
    schedule_due_subject,
    schedule_plan_subject,
)

log = logging.getLogger(__name__)

DURABLE = "orchestrator_timers"


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """One planned reminder: the body of its schedule and of the message it fires."""

    task: str
    board: str
    assignee: str
    due: str
    cause: str
    """The task's last due-date event."""
    fire_ms: int
    key: str
    """What makes this plan this one (task, cause, assignee, time): a fired plan whose key
    is no longer the task's is stale and dropped. The reminder's id leaves the time out."""


_decode_plan = msgspec.json.Decoder(Plan).decode


def at(fire_ms: int) -> str:
    """The ``Nats-Schedule`` value for a time (whole seconds, rounded up: never early)."""
    moment = datetime.datetime.fromtimestamp(math.ceil(fire_ms / 1000), datetime.UTC)
    return "@at " + moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Timers:
    def __init__(self, nc: NatsClient, *, ack_wait_s: float = 30.0) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._ack_wait_s = ack_wait_s
        self._stop = asyncio.Event()

    async def prepare(self) -> None:
        config = ConsumerConfig(
            durable_name=DURABLE,
            filter_subject=f"{SCHEDULES_DUE_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait_s,
            max_deliver=-1,
        )
        await self._js.add_consumer(SCHEDULES_STREAM, config)

    async def plan(self, plan: Plan) -> None:
        headers = {
            "Nats-Schedule": at(plan.fire_ms),
            "Nats-Schedule-Target": schedule_due_subject(plan.task),
        }
        await self._js.publish(
            schedule_plan_subject(plan.task),
            msgspec.json.encode(plan),
            stream=SCHEDULES_STREAM,
            headers=headers,
        )

    async def cancel(self, task: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._js.purge_stream(SCHEDULES_STREAM, subject=schedule_plan_subject(task))

    def stop(self) -> None:
        self._stop.set()

    async def run(self, fired: Callable[[Plan], Awaitable[None]]) -> None:
        """Hand every fired plan to ``fired`` and acknowledge it once handled; a failure
        is delivered again after a pause. Runs until ``stop``."""
        subscription = await self._js.pull_subscribe_bind(DURABLE, SCHEDULES_STREAM)
        try:
            while not self._stop.is_set():
                try:
                    messages = await subscription.fetch(16, timeout=0.5)
                except (NatsTimeoutError, TimeoutError):  # nats-py raises either when idle
                    continue
                except Exception as exc:  # NATS away: keep trying until it is back
                    log.warning("orchestrator timers: %r; trying again", exc)
                    await _pause(self._stop, 1.0)
                    continue
                for message in messages:
                    try:
                        plan = _decode_plan(message.data)
                    except msgspec.DecodeError:
                        log.warning("orchestrator timers: unreadable plan dropped")
                        await message.term()
                        continue
                    try:
                        await fired(plan)
                    except Exception as exc:
                        log.warning("orchestrator: reminder %s failed: %r; again", plan.key, exc)
                        with contextlib.suppress(Exception):
                            await message.nak(delay=2.0)
                        continue
                    with contextlib.suppress(Exception):
                        await message.ack()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
