"""The consumer runner every stream consumer of the backend shares, and its circuit breaker.

One durable pull consumer per component on ``OUTPOST_EVENTS``. Each fetched batch is
decoded, handed to the component inside one transaction of the component's database, and
the stream position is written in that same transaction; messages are acknowledged only
after the commit. So a crash anywhere means redelivery, and redelivery changes nothing. The
position in the component's database is the truth: after any failure the runner deletes its
consumer and re-creates it right after that position, so no unprocessed message is ever
skipped and order is kept.

Failures come in three kinds, told apart by ``outage_kind``:

- **Poison** (cannot succeed: not an event, no actor, an unknown type, ``Outcome.poison``):
  faulted at once. A ``FaultEvent`` goes to ``OUTPOST_FAULTS`` (``outpost.faults.<component>``)
  with the original bytes, the error and the delivery count; the message is terminated and
  the position moves past it, so one bad message never blocks the stream.
- **Outage** (the component's database or NATS is unreachable: a connection-level
  SQLAlchemy error, an ``OSError``, a NATS error): nothing is wrong with the messages. The
  breaker *opens* (state, since when, last error, shown in ``/v1/health``), consumption pauses
  with exponential backoff, nothing is faulted and no message's retry budget is spent. The
  first successful batch after that closes it again (or, with nothing to process, a
  successful re-subscription, which reads the position from the database).
- **Message failure** (any other exception from the component: a bug, an integrity error,
  a ``ValueError``...): retried with backoff. A failing batch is first *isolated*: the runner
  goes back to the position and retries one message at a time until it is past the failed
  batch, so the failure is pinned on one message. That message is retried (negative
  acknowledgement with a delay, then a re-subscription from the position) up to
  ``max_attempts`` times; then it alone is faulted (with its delivery count) and the runner
  moves on, in order.

Resubmission (``outpost faults resubmit``) publishes a faulted event to
``outpost.resubmit.<component>`` (stream ``OUTPOST_RESUBMIT``). Each runner consumes its own
component's subject there with a second durable consumer (``<component>_resubmit``) and a
second position row (``<component>:resubmit``), so a resubmission reaches only the component
that faulted it. It is decoded and applied exactly like a stream event, keeping its original
stream sequence in ``Event.seq``; if it fails again it becomes a new fault. The two lanes share
one lock, so the component never runs two transactions at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Component, Outcome, RawRecord
from backend.db import Lease, upsert
from backend.faults.events import (
    HEADER_FAULT_ID,
    HEADER_ORIGINAL_SEQ,
    HEADER_ORIGINAL_SUBJECT,
    FaultEvent,
)
from backend.nats.streams import (
    CHANGES_SUBJECT,
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    RESUBMIT_STREAM,
    ensure_resubmit_stream,
    fault_subject,
    resubmit_subject,
)
from protocol import Event, EventRejected, UnreadableEvent, Writer, decode_event

__all__ = ["ConsumerRunner", "FaultEvent", "RunnerStats", "outage_kind", "read_position"]

log = logging.getLogger(__name__)

# SQLSTATE classes of a server that is away, not of a statement that is wrong: connection
# exceptions, operator intervention (shutdown, starting up), insufficient resources, system.
_OUTAGE_SQLSTATES = ("08", "57P", "53", "58")


def outage_kind(exc: BaseException) -> str | None:
    """``"stream"`` or ``"database"`` when ``exc`` means NATS or the database is unreachable
    (an outage: wait, fault nothing), else None (something about the messages themselves)."""
    if isinstance(exc, (nats.errors.Error, nats.js.errors.Error)):
        return "stream"
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return "database"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "database"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, ConnectionError)):  # refused, reset, TimeoutError
            return "database"
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATES):
            return "database"
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


@dataclass
class RunnerStats:
    batches: int = 0
    events: int = 0
    faults: int = 0
    retries: int = 0
    last_error: str | None = None


@dataclass
class Breaker:
    """Open while the component's database or NATS is away; closed otherwise."""

    state: str = "closed"
    since: int | None = None
    """When it opened (ms), while open."""
    last_error: str | None = None
    openings: int = 0

    @property
    def is_open(self) -> bool:
        return self.state == "open"


@dataclass
class _Lane:
    """One stream the runner consumes for its component: the events, or its resubmissions."""

    name: str
    stream: str
    subject: str
    durable: str
    position_key: str
    batch: int
    subscription: JetStreamContext.PullSubscription | None = None
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


class ConsumerRunner:
    """Runs one component against the stream (and its resubmissions) until ``stop()``."""

    def __init__(
        self,
        nc: NatsClient,
        component: Component,
        *,
        batch: int = 256,
        fetch_timeout: float = 0.5,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        max_attempts: int = 5,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.component = component
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max(1, max_attempts)
        """Tries of one message before it is faulted (a message failure, not an outage)."""
        self.stats = RunnerStats()
        self.standby = False
        """Another process runs this component: this one waits to take over."""
        self.lease_retry_s = 2.0
        self.breaker = Breaker()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._position: int | None = None
        name = component.name
        self._events = _Lane(
            "events", EVENTS_STREAM, f"{EVENTS_SUBJECT_PREFIX}.>", name, name, batch
        )
        self._resubmits = _Lane(
            "resubmit",
            RESUBMIT_STREAM,
            resubmit_subject(name),
            f"{name}_resubmit",
            f"{name}:resubmit",
            1,  # one at a time: two resubmissions of one event may share an Event.seq
        )
        self._resubmit_stream_ready = False

    @property
    def durable(self) -> str:
        return self.component.name

    def stop(self) -> None:
        self._stop.set()

    async def position(self) -> int:
        """The last stream sequence this component has passed (from its own database)."""
        async with self.component.db.read() as conn:
            return await read_position(conn, self.component)

    # -- status -----------------------------------------------------------------------------

    async def status(self, last_seq: int | None = None) -> dict[str, Any]:
        """Breaker state, last error and consumer lag, for ``/v1/health`` and the metrics.

        ``lag_events``: events in the stream past the component's position; ``lag_ms``: the
        age of the oldest of them (the "iterator age": now minus the stream timestamp of the
        event at position + 1), 0 when caught up. Both None when NATS cannot say.
        ``last_seq``: the stream's last seq, when the caller has read it already.
        """
        position = self._position
        if position is None:
            with contextlib.suppress(Exception):
                position = await self.position()
        lag_events: int | None = None
        lag_ms: int | None = None
        if position is not None:
            try:
                last = last_seq
                if last is None:
                    last = (await self.js.stream_info(EVENTS_STREAM)).state.last_seq
                lag_events = max(0, last - position)
                lag_ms = 0
                if lag_events:
                    oldest = await self.js.get_msg(
                        EVENTS_STREAM, position + 1, f"{EVENTS_SUBJECT_PREFIX}.>", next=True
                    )
                    if oldest.time is not None:
                        age = time.time() - oldest.time.timestamp()
                        lag_ms = max(0, int(age * 1000))
            except Exception as exc:  # health must answer whatever NATS does
                log.debug("%s: lag unknown: %r", self.component.name, exc)
        breaker = self.breaker
        return {
            "breaker": breaker.state,
            "standby": self.standby,
            "breaker_since": breaker.since,
            "lag_events": lag_events,
            "lag_ms": lag_ms,
            "last_error": breaker.last_error if breaker.is_open else self.stats.last_error,
            "faults": self.stats.faults,
            "retries": self.stats.retries,
        }

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until stopped; survives NATS and database outages with backoff.

        Only one process runs a component at a time: a second one waits on standby (and
        takes over when the first ends) instead of consuming the same stream twice."""
        lease = await self._lease()
        if lease is None:
            return  # stopped while on standby
        tasks = [
            asyncio.create_task(self._run_lane(self._events)),
            asyncio.create_task(self._run_lane(self._resubmits)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await lease.release()

    async def _lease(self) -> Lease | None:
        told = False
        while not self._stop.is_set():
            try:
                lease = await self.component.db.try_lease(self.component.name)
            except Exception as exc:  # the database away: the lanes would wait too
                lease = None
                log.info("%s: cannot take the lease yet: %r", self.component.name, exc)
            if lease is not None:
                if told:
                    log.warning("%s: the other runner is gone: taking over", self.component.name)
                self.standby = False
                return lease
            if not told:
                log.warning(
                    "%s: another process runs this component: on standby", self.component.name
                )
                told = True
            self.standby = True
            await self._sleep(self.lease_retry_s)
        return None

    async def _run_lane(self, lane: _Lane) -> None:
        backoff = self.initial_backoff
        try:
            while not self._stop.is_set():
                messages: list[Msg] = []
                try:
                    if lane.subscription is None:
                        lane.subscription = await self._subscribe(lane)
                        # Half-open: the database and NATS answered; a batch, or finding
                        # nothing to do, closes the breaker.
                        lane.probing = self.breaker.is_open
                    whole = lane.isolate_until is None and lane.backlog
                    size = lane.batch if whole else 1
                    try:
                        messages = await lane.subscription.fetch(size, timeout=self.fetch_timeout)
                        if not messages:
                            raise TimeoutError
                        lane.backlog = messages[-1].metadata.num_pending > 0
                    except (nats.errors.TimeoutError, TimeoutError):
                        # nats-py raises either, depending on where the wait ran out
                        # Only the events lane judges: the resubmit lane is idle nearly always,
                        # and its quiet would close a breaker the events lane just opened.
                        if lane.probing and not lane.resubmits and await _nothing_waiting(lane):
                            lane.probing = False
                            self._close_breaker()
                        continue
                    async with self._lock:
                        await self._process(lane, messages)
                    self._close_breaker()
                    backoff = self.initial_backoff
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if await self._failure(lane, messages, exc, backoff):
                        backoff = self.initial_backoff  # faulted: go on at once
                        await self._drop_subscription(lane)
                        continue
                await self._drop_subscription(lane)  # resume after the last committed event
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            await self._drop_subscription(lane)

    async def _failure(
        self, lane: _Lane, messages: list[Msg], exc: Exception, backoff: float
    ) -> bool:
        """Open the breaker for an outage, else retry or fault; True when one was faulted."""
        kind = outage_kind(exc)
        if kind is not None:
            self._open_breaker(f"{kind} unavailable: {exc!r}")
            return False
        try:
            return await self._message_failure(lane, messages, exc, backoff)
        except asyncio.CancelledError:
            raise
        except Exception as again:  # faulting it needs the database and NATS too
            kind = outage_kind(again)
            if kind is None:
                log.error("%s: could not fault: %r", self.component.name, again, exc_info=again)
                self.stats.last_error = repr(again)
            else:
                self._open_breaker(f"{kind} unavailable: {again!r}")
            return False

    async def _message_failure(
        self, lane: _Lane, messages: list[Msg], exc: Exception, backoff: float
    ) -> bool:
        """Handle a failure that is about the messages; True when one was faulted."""
        error = f"{type(exc).__name__}: {exc}"
        self.stats.retries += 1
        self.stats.last_error = error
        if len(messages) > 1:
            lane.isolate_until = max(m.metadata.sequence.stream for m in messages)
            log.warning(
                "%s: a batch of %d failed (%s): retrying one message at a time",
                self.component.name,
                len(messages),
                error,
            )
            return False
        if not messages:  # before any message (e.g. while re-subscribing)
            log.warning("%s: %s", self.component.name, error, exc_info=exc)
            return False
        [message] = messages
        seq = message.metadata.sequence.stream
        attempts = lane.attempts[seq] = lane.attempts.get(seq, 0) + 1
        if attempts < self.max_attempts:
            log.warning(
                "%s: %s seq %d failed (attempt %d of %d): %s",
                self.component.name,
                lane.name,
                seq,
                attempts,
                self.max_attempts,
                error,
                exc_info=exc if attempts == 1 else None,
            )
            with contextlib.suppress(Exception):
                await message.nak(delay=backoff)
            return False
        async with self._lock:
            await self._fault_alone(lane, message, f"failed {attempts} times: {error}", attempts)
        lane.attempts.pop(seq, None)
        return True

    async def _fault_alone(self, lane: _Lane, message: Msg, error: str, attempts: int) -> None:
        """Fault one message that keeps failing and move the position past it."""
        seq = message.metadata.sequence.stream
        async with self.component.db.write() as conn:
            position = await read_position(conn, self.component, lane.position_key)
            if seq > position:
                await self._publish_fault(lane, message, error, attempts)
                await self._write_position(conn, lane, seq)
        if not lane.resubmits:
            self._position = max(seq, position)
        self._past(lane, seq)
        with contextlib.suppress(Exception):
            await message.term()

    def _open_breaker(self, error: str) -> None:
        breaker = self.breaker
        self.stats.retries += 1
        if not breaker.is_open:
            breaker.state, breaker.since = "open", int(time.time() * 1000)
            breaker.openings += 1
            log.warning("%s: breaker open, pausing: %s", self.component.name, error)
        elif error != breaker.last_error:
            log.warning("%s: still paused: %s", self.component.name, error)
        breaker.last_error = error
        self.stats.last_error = error

    def _close_breaker(self) -> None:
        breaker = self.breaker
        if breaker.is_open:
            log.warning(
                "%s: breaker closed after %.1fs",
                self.component.name,
                (time.time() * 1000 - (breaker.since or 0)) / 1000,
            )
            breaker.state, breaker.since = "closed", None

    async def _drop_subscription(self, lane: _Lane) -> None:
        # Fetched messages never count as processed for the client: without this, a drain
        # of the connection would wait for them for ever.
        if lane.subscription is not None:
            with contextlib.suppress(Exception):
                await lane.subscription.unsubscribe()
            lane.subscription = None

    async def _subscribe(self, lane: _Lane) -> JetStreamContext.PullSubscription:
        """A fresh durable consumer that starts right after the position in our database.

        The database is the truth: after a start, a crash or a failed batch, delivery
        resumes exactly after the last committed event, never from the consumer's own
        memory (which would hold the failed batch back until its ack wait while later
        events went ahead, leaving a gap behind the position).
        """
        if lane.resubmits and not self._resubmit_stream_ready:
            await ensure_resubmit_stream(self.nc.jsm())
            self._resubmit_stream_ready = True
        async with self.component.db.read() as conn:
            position = await read_position(conn, self.component, lane.position_key)
        last = (await self.js.stream_info(lane.stream)).state.last_seq
        if position > last and not lane.resubmits:
            # The stream has fewer events than this database has applied: it was lost or
            # restored from an older backup. Trusting the position would skip new events.
            log.error(
                "%s: position %d is beyond the stream's last seq %d: starting over",
                self.durable,
                position,
                last,
            )
            async with self._lock, self.component.db.write() as conn:
                await self.component.start_over(conn)
            position = 0
        if not lane.resubmits:
            self._position = position
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_consumer(lane.stream, lane.durable)
        config = ConsumerConfig(
            durable_name=lane.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=60,
            max_ack_pending=lane.batch * 4,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
            opt_start_seq=position + 1 if position else None,
        )
        return await self.js.pull_subscribe(
            lane.subject, durable=lane.durable, stream=lane.stream, config=config
        )

    # -- one batch --------------------------------------------------------------------------

    async def _process(self, lane: _Lane, messages: list[Msg]) -> None:
        component = self.component
        async with component.db.write() as conn:
            position = await read_position(conn, component, lane.position_key)
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
            faulted = set()
            for message in fresh:
                event_seq = _event_seq(message)
                if event_seq in poison:
                    faulted.add(message.metadata.sequence.stream)
                    await self._publish_fault(lane, message, poison[event_seq], None)
            last = max((m.metadata.sequence.stream for m in messages), default=position)
            if last > position:
                await self._write_position(conn, lane, last)
        if not lane.resubmits:
            self._position = max(last, position)
        for message in messages:
            seq = message.metadata.sequence.stream
            try:
                await (message.term() if seq in faulted else message.ack())
            except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
                # Committed already: a redelivery is skipped by the position, so a lost
                # acknowledgement costs nothing, and the pokes below must still go out.
                log.info("%s: acknowledgement not sent: %r", component.name, exc)
                break
        self._past(lane, last)
        self.stats.batches += 1
        self.stats.events += len(events)
        if component.serves_pull and (outcome.boards or outcome.usernames):
            await self._notify(outcome, self._position or 0)

    def _past(self, lane: _Lane, seq: int) -> None:
        """The lane has passed ``seq``: forget retries up to it, end isolation past it."""
        lane.attempts = {s: n for s, n in lane.attempts.items() if s > seq}
        if lane.isolate_until is not None and seq >= lane.isolate_until:
            lane.isolate_until = None

    async def _write_position(self, conn: AsyncConnection, lane: _Lane, seq: int) -> None:
        table = self.component.positions
        await upsert(conn, table, [{"component": lane.position_key, "seq": seq}], ["component"])

    async def _publish_fault(
        self, lane: _Lane, message: Msg, error: str, attempts: int | None
    ) -> None:
        metadata = message.metadata
        headers: Mapping[str, str] = message.headers or {}
        deliveries = max(attempts or 0, metadata.num_delivered or 1)
        name = self.component.name
        fault = FaultEvent(
            component=name,
            seq=_event_seq(message),
            subject=headers.get(HEADER_ORIGINAL_SUBJECT, message.subject),
            error=error,
            deliveries=deliveries,
            event_id=_readable_id(message.data),
            data=base64.b64encode(message.data).decode(),
            at=int(time.time() * 1000),
        )
        msg_id = f"{name}:{fault.seq}"
        if lane.resubmits:
            fault.resubmit_seq = metadata.sequence.stream
            fault.resubmitted_from = _int(headers.get(HEADER_FAULT_ID))
            msg_id = f"{name}:resubmit:{fault.resubmit_seq}"
        log.warning("%s: fault at seq %d: %s", name, fault.seq, error)
        await self.js.publish(
            fault_subject(name), msgspec.json.encode(fault), headers={"Nats-Msg-Id": msg_id}
        )
        self.stats.faults += 1

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

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _event_seq(message: Msg) -> int:
    """The event's ``OUTPOST_EVENTS`` sequence: its own, or for a resubmission the original's."""
    metadata = message.metadata
    if metadata.stream == RESUBMIT_STREAM:
        original = _int((message.headers or {}).get(HEADER_ORIGINAL_SEQ))
        return original if original is not None else 0
    return int(metadata.sequence.stream)


def _decode(messages: list[Msg]) -> tuple[list[Event], dict[int, str]]:
    events, poison = [], {}
    for message in messages:
        seq = _event_seq(message)
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


async def _nothing_waiting(lane: _Lane) -> bool:
    """A fetch that timed out proves nothing on a loaded machine (a new consumer may not
    have delivered yet): ask the consumer whether anything is waiting."""
    if lane.subscription is None:
        return False
    info = await lane.subscription.consumer_info()
    return not info.num_pending and not info.num_ack_pending


def _raw_records(
    messages: list[Msg], events: list[Event], poison: dict[int, str]
) -> list[RawRecord]:
    by_seq = {e.seq: e for e in events}
    records = []
    for message in messages:
        metadata = message.metadata
        seq = _event_seq(message)
        stored = metadata.timestamp
        records.append(
            RawRecord(
                seq=seq,
                subject=(message.headers or {}).get(HEADER_ORIGINAL_SUBJECT, message.subject),
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


async def read_position(conn: AsyncConnection, component: Component, key: str | None = None) -> int:
    """The last sequence ``component`` passed: in ``OUTPOST_EVENTS`` by default, or of
    another lane (``<component>:resubmit``) when ``key`` names it."""
    table = component.positions
    query = select(table.c.seq).where(table.c.component == (key or component.name))
    return int((await conn.execute(query)).scalar() or 0)
