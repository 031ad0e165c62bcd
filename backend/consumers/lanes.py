"""The lanes a runner consumes, each a durable pull consumer resumed from the database.

A component has two lanes: its events on ``OUTPOST_EVENTS``, and its resubmissions on
``outpost.resubmit.<component>`` (stream ``OUTPOST_RESUBMIT``, consumer
``<component>_resubmit``, position row ``<component>:resubmit``), so a resubmission
reaches only the component that faulted it. Each lane keeps its position in the
component's own database, written in the same transaction as the component's work: that
position is the truth, and every subscription starts right after it.

Where the process runs several components, the events lane is fed by the process's
``SharedFetch`` (``feed.py``) whenever the component is at the fetch's place: its
``subscription`` is then a ``Tap`` and it has no durable consumer of its own.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import direct
from backend.consumers.component import Component
from backend.consumers.feed import SharedFetch, Tap
from backend.db import upsert
from backend.nats.client import take_queued_at_once
from backend.nats.streams import (
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    RESUBMIT_STREAM,
    resubmit_subject,
)

__all__ = ["Lane", "events_lane", "read_position", "resubmit_lane", "write_position"]


@dataclass
class Lane:
    """One stream the runner consumes for its component: the events, or its resubmissions."""

    name: str
    stream: str
    subject: str
    durable: str
    position_key: str
    batch: int
    subscription: JetStreamContext.PullSubscription | Tap | None = None
    """Its own durable consumer, or its share of the process's ``SharedFetch``."""
    isolate_until: int | None = None
    """After a failed batch: go one message at a time until past this sequence."""
    attempts: dict[int, int] = field(default_factory=dict)
    """Sequence -> failed attempts so far (message failures only, never outages)."""
    probing: bool = False
    """Re-subscribed while the breaker was open: nothing to fetch closes it."""
    backlog: bool = True
    """More messages were waiting after the last fetch. When there are none, the next
    fetch asks for one: nats-py returns a waiting fetch of N only once N arrived or its
    timeout passed, which would hold a lone event back for up to the whole timeout."""

    @property
    def resubmits(self) -> bool:
        return self.stream == RESUBMIT_STREAM

    @property
    def shared(self) -> bool:
        """Fed by the process's ``SharedFetch``: nothing to acknowledge, no durable."""
        return isinstance(self.subscription, Tap)

    @property
    def fetch_size(self) -> int:
        """A whole batch, or one message while isolating a failure or when idle (on its own
        durable: a tap never isolates, and hands what the shared fetch has taken)."""
        if self.shared:
            return self.batch
        return self.batch if self.isolate_until is None and self.backlog else 1

    def past(self, seq: int) -> None:
        """The lane has passed ``seq``: forget retries up to it, end isolation past it."""
        self.attempts = {s: n for s, n in self.attempts.items() if s > seq}
        if self.isolate_until is not None and seq >= self.isolate_until:
            self.isolate_until = None

    def failed(self, seq: int) -> int:
        """Count one more failed attempt of the message at ``seq``; the attempts so far."""
        attempts = self.attempts[seq] = self.attempts.get(seq, 0) + 1
        return attempts

    async def subscribe(
        self, js: JetStreamContext, position: int, feed: SharedFetch | None = None
    ) -> JetStreamContext.PullSubscription | Tap:
        """A tap of ``feed`` if it is at ``position`` (this lane's durable consumer is then
        deleted), else a fresh durable consumer that starts right after ``position``.

        The database is the truth: after a start, a crash or a failed batch, delivery
        resumes exactly after the last committed event, never from the consumer's own
        memory (which would hold the failed batch back until its ack wait while later
        events went ahead, leaving a gap behind the position).
        """
        tap = feed.attach(self.durable, position) if feed and not self.resubmits else None
        if tap is not None:
            self.subscription = tap  # before any wait: a failure below detaches it
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(self.stream, self.durable)
        if tap is not None:
            return tap
        config = ConsumerConfig(
            durable_name=self.durable,
            # One acknowledgement per batch, for every message up to it: each message's own
            # cost the consumer and nats-server a round of work per event and consumer, and
            # nothing here needs a message acknowledged apart (the position is the truth;
            # after any failure the consumer is made again right after it).
            ack_policy=AckPolicy.ALL,
            ack_wait=60,
            max_ack_pending=self.batch * 4,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
            opt_start_seq=position + 1 if position else None,
        )
        self.subscription = await js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )
        take_queued_at_once(self.subscription)
        return self.subscription

    async def unsubscribe(self) -> None:
        # Fetched messages never count as processed for the client: without this, a drain
        # of the connection would wait for them for ever.
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()
            self.subscription = None

    async def nothing_waiting(self) -> bool:
        """A fetch that timed out proves nothing on a loaded machine (a new consumer may not
        have delivered yet): ask the consumer whether anything is waiting."""
        if self.subscription is None:
            return False
        if isinstance(self.subscription, Tap):
            return await self.subscription.nothing_waiting()
        info = await self.subscription.consumer_info()
        return not info.num_pending and not info.num_ack_pending


def events_lane(component: Component, batch: int) -> Lane:
    name = component.name
    return Lane("events", EVENTS_STREAM, f"{EVENTS_SUBJECT_PREFIX}.>", name, name, batch)


def resubmit_lane(component: Component) -> Lane:
    name = component.name
    return Lane(
        "resubmit",
        RESUBMIT_STREAM,
        resubmit_subject(name),
        f"{name}_resubmit",
        f"{name}:resubmit",
        1,  # one at a time: two resubmissions of one event may share an Event.seq
    )


async def read_position(conn: AsyncConnection, component: Component, key: str | None = None) -> int:
    """The last sequence ``component`` passed: in ``OUTPOST_EVENTS`` by default, or of
    another lane (``<component>:resubmit``) when ``key`` names it."""
    query = _position_query(component.positions)
    found = await direct.fetch(conn, query, {"key": key or component.name})
    return int(found[0][0] or 0) if found else 0


@functools.lru_cache(maxsize=32)
def _position_query(table: Table) -> Select[Any]:
    """Built once per table, not per batch (``backend.db`` says why)."""
    return select(table.c.seq).where(table.c.component == bindparam("key"))


async def write_position(conn: AsyncConnection, component: Component, lane: Lane, seq: int) -> None:
    table = component.positions
    await upsert(conn, table, [{"component": lane.position_key, "seq": seq}], ["component"])
