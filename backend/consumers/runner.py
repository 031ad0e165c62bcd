"""The consumer runner every stream consumer of the backend shares.

One durable pull consumer per component on ``OUTPOST_EVENTS``. Each fetched batch is
decoded, handed to the component inside one transaction of the component's database, and
the stream position is written in that same transaction; messages are acknowledged only
after the commit. So a crash anywhere means redelivery, and redelivery changes nothing.

A message that can never be processed (not an event, an unknown type, an event the merge
rules refuse) is poison: it is copied to ``OUTPOST_FAULTS`` (``outpost.faults.<component>``)
with the error and the delivery count, then terminated, and the position moves past it, so
one bad message never blocks the stream. A failure that may pass (the database is away)
is retried with backoff and never faulted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Component, Outcome, RawRecord
from backend.db import upsert
from backend.nats.streams import (
    CHANGES_SUBJECT,
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    fault_subject,
)
from protocol import Event, EventRejected, UnreadableEvent, Writer, decode_event

log = logging.getLogger(__name__)


class FaultEvent(msgspec.Struct, kw_only=True):
    """What ``OUTPOST_FAULTS`` holds for one message a component could not process."""

    component: str
    seq: int
    subject: str
    error: str
    deliveries: int
    event_id: str | None
    data: str
    """The original message, base64: it may not even be UTF-8."""
    at: int


@dataclass
class RunnerStats:
    batches: int = 0
    events: int = 0
    faults: int = 0
    retries: int = 0
    last_error: str | None = None


class ConsumerRunner:
    """Runs one component against the stream until ``stop()``."""

    def __init__(
        self,
        nc: NatsClient,
        component: Component,
        *,
        batch: int = 256,
        fetch_timeout: float = 0.5,
        max_backoff: float = 5.0,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.component = component
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.max_backoff = max_backoff
        self.stats = RunnerStats()
        self._stop = asyncio.Event()
        self._position: int | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None

    @property
    def durable(self) -> str:
        return self.component.name

    def stop(self) -> None:
        self._stop.set()

    async def position(self) -> int:
        """The last stream sequence this component has passed (from its own database)."""
        async with self.component.db.read() as conn:
            return await read_position(conn, self.component)

    async def run(self) -> None:
        """Consume until stopped; survives NATS and database outages with backoff."""
        backoff = 0.1
        try:
            while not self._stop.is_set():
                try:
                    if self._subscription is None:
                        self._subscription = await self._subscribe()
                    try:
                        messages = await self._subscription.fetch(
                            self.batch, timeout=self.fetch_timeout
                        )
                    except nats.errors.TimeoutError:
                        continue
                    await self._process(messages)
                    backoff = 0.1
                except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                    # first: TimeoutError is an OSError, and this one is the stream's
                    self._note_error(f"stream unavailable: {exc!r}")
                except (SQLAlchemyError, OSError) as exc:
                    self._note_error(f"database unavailable: {exc!r}")
                else:
                    continue
                await self._drop_subscription()  # resume after the last committed event
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            await self._drop_subscription()

    async def _drop_subscription(self) -> None:
        # Fetched messages never count as processed for the client: without this, a drain
        # of the connection would wait for them for ever.
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        """A fresh durable consumer that starts right after the position in our database.

        The database is the truth: after a start, a crash or a failed batch, delivery
        resumes exactly after the last committed event, never from the consumer's own
        memory (which would hold the failed batch back until its ack wait while later
        events went ahead, leaving a gap behind the position).
        """
        position = await self.position()
        last = (await self.js.stream_info(EVENTS_STREAM)).state.last_seq
        if position > last:
            # The stream has fewer events than this database has applied: it was lost or
            # restored from an older backup. Trusting the position would skip new events.
            log.error(
                "%s: position %d is beyond the stream's last seq %d: starting over",
                self.durable,
                position,
                last,
            )
            async with self.component.db.write() as conn:
                await self.component.start_over(conn)
            position = 0
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_consumer(EVENTS_STREAM, self.durable)
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=60,
            max_ack_pending=self.batch * 4,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
            opt_start_seq=position + 1 if position else None,
        )
        return await self.js.pull_subscribe(
            f"{EVENTS_SUBJECT_PREFIX}.>", durable=self.durable, stream=EVENTS_STREAM, config=config
        )

    async def _process(self, messages: list[Msg]) -> None:
        component = self.component
        async with component.db.write() as conn:
            position = await read_position(conn, component)
            fresh = [m for m in messages if m.metadata.sequence.stream > position]
            events, poison = _decode(fresh)
            handle_raw = getattr(component, "handle_raw", None)  # a RawComponent
            if handle_raw is not None:
                records = _raw_records(fresh, events, poison)
                outcome = await handle_raw(conn, records) if records else Outcome()
                poison = dict(outcome.poison)  # it keeps what it cannot read, raw
            else:
                outcome = await component.handle(conn, events) if events else Outcome()
                poison.update(outcome.poison)
            for message in fresh:
                seq = message.metadata.sequence.stream
                if seq in poison:
                    await self._publish_fault(message, poison[seq])
            last = max((m.metadata.sequence.stream for m in messages), default=position)
            if last > position:
                await upsert(
                    conn,
                    component.positions,
                    [{"component": component.name, "seq": last}],
                    ["component"],
                )
        self._position = max(last, position)
        for message in messages:
            seq = message.metadata.sequence.stream
            await (message.term() if seq in poison and message in fresh else message.ack())
        self.stats.batches += 1
        self.stats.events += len(events)
        self.stats.faults += len(poison)
        if component.serves_pull and (outcome.boards or outcome.usernames):
            await self._notify(outcome, self._position)

    async def _publish_fault(self, message: Msg, error: str) -> None:
        metadata = message.metadata
        fault = FaultEvent(
            component=self.component.name,
            seq=metadata.sequence.stream,
            subject=message.subject,
            error=error,
            deliveries=metadata.num_delivered,
            event_id=_readable_id(message.data),
            data=base64.b64encode(message.data).decode(),
            at=int(time.time() * 1000),
        )
        log.warning("%s: fault at seq %d: %s", fault.component, fault.seq, error)
        await self.js.publish(
            fault_subject(self.component.name),
            msgspec.json.encode(fault),
            headers={"Nats-Msg-Id": f"{fault.component}:{fault.seq}"},
        )

    async def _notify(self, outcome: Outcome, watermark: int) -> None:
        notice = {
            "component": self.component.name,
            "boards": sorted(outcome.boards),
            "usernames": sorted(outcome.usernames),
            "watermark": watermark,
        }
        try:
            await self.nc.publish(CHANGES_SUBJECT, msgspec.json.encode(notice))
        except nats.errors.Error as exc:  # pokes are a hint; the periodic pull is the fallback
            log.info("change notice not sent: %s", exc)

    def _note_error(self, error: str) -> None:
        self.stats.retries += 1
        if error != self.stats.last_error:
            log.warning("%s: %s", self.component.name, error)
        self.stats.last_error = error

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _decode(messages: list[Msg]) -> tuple[list[Event], dict[int, str]]:
    events, poison = [], {}
    for message in messages:
        seq = message.metadata.sequence.stream
        try:
            event = decode_event(message.data, Writer.BACKEND)
        except (EventRejected, UnreadableEvent) as exc:
            poison[seq] = f"undecodable event: {exc}"
            continue
        if event.actor is None:
            poison[seq] = "event has no actor: it did not come through the BFF"
            continue
        events.append(msgspec.structs.replace(event, seq=seq))
    return events, poison


def _raw_records(
    messages: list[Msg], events: list[Event], poison: dict[int, str]
) -> list[RawRecord]:
    by_seq = {e.seq: e for e in events}
    records = []
    for message in messages:
        metadata = message.metadata
        seq = metadata.sequence.stream
        stored = metadata.timestamp
        records.append(
            RawRecord(
                seq=seq,
                subject=message.subject,
                data=message.data,
                time_ms=int(stored.timestamp() * 1000) if stored else int(time.time() * 1000),
                event=by_seq.get(seq),
                error=poison.get(seq),
            )
        )
    return records


def _readable_id(data: bytes) -> str | None:
    try:
        raw: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    event_id = raw.get("id") if isinstance(raw, dict) else None
    return event_id if isinstance(event_id, str) else None


async def read_position(conn: AsyncConnection, component: Component) -> int:
    table = component.positions
    query = select(table.c.seq).where(table.c.component == component.name)
    return int((await conn.execute(query)).scalar() or 0)
