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
  with the original bytes, the error and the delivery count; the position moves past it,
  so one bad message never blocks the stream.
- **Outage** (the component's database or NATS is unreachable: a connection-level
  SQLAlchemy error, an ``OSError``, a NATS error): nothing is wrong with the messages. The
  breaker *opens* (state, since when, last error, shown in ``/v1/health``), consumption pauses
  with exponential backoff, nothing is faulted and no message's retry budget is spent. The
  first successful batch after that closes it again (or, with nothing to process, a
  successful re-subscription, which reads the position from the database).
- **Message failure** (any other exception from the component: a bug, an integrity error,
  a ``ValueError``...): retried with backoff. A failing batch is first *isolated*: the runner
  goes back to the position and retries one message at a time until it is past the failed
  batch, so the failure is pinned on one message. That message is retried (after the
  backoff, a re-subscription from the position) up to
  ``max_attempts`` times; then it alone is faulted (with its delivery count) and the runner
  moves on, in order.

Each committed batch is acknowledged once, by its last message (``AckPolicy.ALL``): a
faulted message included, since its fault is published and the position is past it.

Where one process runs several components, their events lanes share one fetch
(``feed.py``): a runner at the fetch's place takes its batches from a ``Tap`` instead of
a durable consumer of its own, and acknowledges nothing (that consumer has no
acknowledgements). Any failure sends it back to its own durable consumer from its
position, as above; it attaches again once its position is the fetch's.

Resubmission (``outpost faults resubmit``) publishes a faulted event to
``outpost.resubmit.<component>`` (stream ``OUTPOST_RESUBMIT``). Each runner consumes its own
component's subject there with a second durable consumer (``<component>_resubmit``) and a
second position row (``<component>:resubmit``), so a resubmission reaches only the component
that faulted it. It is decoded and applied exactly like a stream event, keeping its original
stream sequence in ``Event.seq``; if it fails again it becomes a new fault. The two lanes share
one lock, so the component never runs two transactions at once.

The parts live beside this module, which only composes them: ``breaker.py`` (outage or
message failure, and the breaker), ``lease.py`` (one process per component),
``lanes.py`` (the two lanes, their subscriptions and positions), ``batches.py`` (decoding
a batch, handing it to the component, fault events) and ``health.py`` (the runner's
status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import hops
from backend.consumers import batches, health
from backend.consumers.breaker import Breaker, outage_kind
from backend.consumers.component import Component, Outcome, WrittenViews
from backend.consumers.feed import SharedFetch
from backend.consumers.health import RunnerStats
from backend.consumers.lanes import (
    Lane,
    events_lane,
    read_position,
    resubmit_lane,
    write_position,
)
from backend.consumers.lease import ComponentLease
from backend.consumers.passed import Passed
from backend.db import Lease
from backend.errors import DeliveryGap, LeaseLost
from backend.faults.events import FaultEvent
from backend.nats.publisher import JetStreamPublisher, Outgoing, Publisher
from backend.nats.streams import CHANGES_SUBJECT, ensure_resubmit_stream, fault_subject

__all__ = ["ConsumerRunner", "FaultEvent", "RunnerStats", "outage_kind", "read_position"]

log = logging.getLogger(__name__)


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
        publisher: Publisher | None = None,
        linger_s: float = 0.0,
        feed: SharedFetch | None = None,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        """For the lanes' subscriptions and the lag; writes go through ``publisher``."""
        self.publisher: Publisher = publisher or JetStreamPublisher(nc)
        """Where faults and change notices go."""
        self.component = component
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max(1, max_attempts)
        self.linger_s = 0.0 if component.serves_pull else max(0.0, linger_s)
        """After a lone event (caught up): wait this long, then take what came meanwhile
        with it (``Settings.consumer_linger_s``). Never for a component a pull reads."""
        """Tries of one message before it is faulted (a message failure, not an outage)."""
        self.feed = feed
        """The fetch this process's runners share, if it runs several (``feed.py``)."""
        self.stats = RunnerStats()
        self.breaker = Breaker()
        self.lease = ComponentLease(component)
        self._origin = ""
        self._offer: Callable[[bytes, WrittenViews | None], None] | None = None
        """This process's live hub, for a component a pull reads (``notify_here``)."""
        self._stop = asyncio.Event()
        self._lease: Lease | None = None
        self._lock = asyncio.Lock()
        self._position: int | None = None
        self.passed = Passed()
        """The position this runner has passed, its batch's notice given: what an
        interactive push waits on (``backend/consumers/passed.py``)."""
        self._events = events_lane(component, batch)
        self._resubmits = resubmit_lane(component)
        self._resubmit_stream_ready = False

    @property
    def durable(self) -> str:
        return self.component.name

    @property
    def standby(self) -> bool:
        """Another process runs this component: this one waits to take over."""
        return self.lease.standby

    def stop(self) -> None:
        self._stop.set()

    async def position(self) -> int:
        """The last stream sequence this component has passed (from its own database)."""
        async with self.component.db.read() as conn:
            return await read_position(conn, self.component)

    async def status(self, last_seq: int | None = None) -> dict[str, Any]:
        """Breaker state, last error and consumer lag (``health.py``), for ``/v1/health``
        and the metrics. ``last_seq``: the stream's last seq, when the caller has read it."""
        position = self._position
        if position is None:
            with contextlib.suppress(Exception):
                position = await self.position()
        lag_events, lag_ms = await health.lag(self.js, position, last_seq)
        return health.report(
            self.breaker,
            self.stats,
            standby=self.standby,
            position=position,
            shared=self._events.shared,
            lag_events=lag_events,
            lag_ms=lag_ms,
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until stopped; survives NATS and database outages with backoff.

        Only one process runs a component at a time: a second one waits on standby (and
        takes over when the first ends) instead of consuming the same stream twice. Each
        commit checks, in its transaction, that the lease is still held (``Lease.check``):
        one lost with a database restart sends this runner back to wait for it."""
        while not self._stop.is_set():
            lease = await self.lease.take(self._stop)
            if lease is None:
                return  # stopped while on standby
            self._lease = lease
            tasks = [
                asyncio.create_task(self._run_lane(self._events)),
                asyncio.create_task(self._run_lane(self._resubmits)),
            ]
            try:
                await asyncio.gather(*tasks)
            except LeaseLost as exc:
                log.warning("%s: %s", self.component.name, exc)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._lease = None
                with contextlib.suppress(Exception):  # its connection may be gone already
                    await lease.release()

    async def _fence(self, conn: AsyncConnection) -> None:
        """Inside a commit's transaction: LeaseLost unless this runner still holds the lease."""
        if self._lease is not None:
            await self._lease.check(conn)

    async def _run_lane(self, lane: Lane) -> None:
        backoff = self.initial_backoff
        try:
            while not self._stop.is_set():
                messages: list[Msg] = []
                try:
                    if lane.subscription is None:
                        await self._subscribe(lane)
                        # Half-open: the database and NATS answered; a batch, or finding
                        # nothing to do, closes the breaker.
                        lane.probing = self.breaker.is_open
                    assert lane.subscription is not None
                    try:
                        messages = await lane.subscription.fetch(
                            lane.fetch_size, timeout=self.fetch_timeout
                        )
                        if not messages:
                            raise TimeoutError
                        lane.backlog = messages[-1].metadata.num_pending > 0
                        if self._lingers(lane, messages):
                            messages = messages + await self._linger(
                                lane, lane.batch - len(messages)
                            )
                            lane.backlog = messages[-1].metadata.num_pending > 0
                        if hops.enabled() and self.component.serves_pull:
                            hops.mark(f"{self.component.name}.received", _ids(messages))
                    except (nats.errors.TimeoutError, TimeoutError):
                        # nats-py raises either, depending on where the wait ran out
                        # Only the events lane judges: the resubmit lane is idle nearly always,
                        # and its quiet would close a breaker the events lane just opened.
                        if lane.probing and not lane.resubmits and await lane.nothing_waiting():
                            lane.probing = False
                            self._close_breaker()
                        if self._may_share(lane):
                            await lane.unsubscribe()  # the next turn attaches
                        continue
                    async with self._lock:
                        await self._process(lane, messages)
                    self._close_breaker()
                    backoff = self.initial_backoff
                    if self._may_share(lane):
                        await lane.unsubscribe()
                    continue
                except (asyncio.CancelledError, LeaseLost):
                    raise
                except DeliveryGap as exc:
                    # Nothing committed: start again right after the position (after a
                    # moment: a gap that comes back at once must not spin).
                    log.warning("%s", exc)
                    await lane.unsubscribe()
                    await self._sleep(self.initial_backoff)
                    continue
                except Exception as exc:
                    if await self._failure(lane, messages, exc):
                        backoff = self.initial_backoff  # faulted: go on at once
                        await lane.unsubscribe()
                        continue
                await lane.unsubscribe()  # resume after the last committed event
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        finally:
            await lane.unsubscribe()

    def _may_share(self, lane: Lane) -> bool:
        """On its own durable consumer, and at a place where the shared fetch would take
        it: the lane unsubscribes, and its next subscription attaches (``feed.py``)."""
        return (
            self.feed is not None
            and lane is self._events
            and lane.subscription is not None
            and not lane.shared
            and self._in_step(lane)
            and self._position is not None
            and self.feed.takes(self._position)
        )

    @staticmethod
    def _in_step(lane: Lane) -> bool:
        """Not isolating or retrying a failure: that is done one message at a time, on the
        lane's own durable consumer, never on the shared fetch (which hands whole batches)."""
        return lane.isolate_until is None and not lane.attempts

    def _lingers(self, lane: Lane, messages: list[Msg]) -> bool:
        """Caught up on the events lane, with room in the batch, not isolating a failure."""
        return (
            self.linger_s > 0
            and not lane.backlog
            and not lane.resubmits
            and lane.isolate_until is None
            and len(messages) < lane.batch
        )

    async def _linger(self, lane: Lane, room: int) -> list[Msg]:
        """What arrived while this lane waited ``linger_s`` after a lone event (none if the
        wait is cut short by a stop): fetched at once, or nothing within a moment."""
        await self._sleep(self.linger_s)
        if self._stop.is_set() or lane.subscription is None:
            return []
        try:
            return list(await lane.subscription.fetch(room, timeout=0.01))
        except (nats.errors.Error, TimeoutError):
            return []  # the next fetch takes them: this one was only to gather a batch

    async def _failure(self, lane: Lane, messages: list[Msg], exc: Exception) -> bool:
        """Open the breaker for an outage, else retry or fault; True when one was faulted."""
        kind = outage_kind(exc)
        if kind is not None:
            self._open_breaker(f"{kind} unavailable: {exc!r}")
            return False
        try:
            return await self._message_failure(lane, messages, exc)
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

    async def _message_failure(self, lane: Lane, messages: list[Msg], exc: Exception) -> bool:
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
        attempts = lane.failed(seq)
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
            return False  # the lane subscribes again from the position after the backoff
        async with self._lock:
            await self._fault_alone(lane, message, f"failed {attempts} times: {error}", attempts)
        lane.attempts.pop(seq, None)
        return True

    async def _fault_alone(self, lane: Lane, message: Msg, error: str, attempts: int) -> None:
        """Fault one message that keeps failing and move the position past it."""
        seq = message.metadata.sequence.stream
        async with self.component.db.write() as conn:
            await self._fence(conn)
            position = await read_position(conn, self.component, lane.position_key)
            if seq > position:
                await self._publish_fault(message, error, attempts)
                await write_position(conn, self.component, lane, seq)
        if not lane.resubmits:
            self._position = max(seq, position)
        lane.past(seq)
        await _acknowledge(self.component.name, lane, message)
        self.passed.advance(self._position or 0)

    def _open_breaker(self, error: str) -> None:
        self.stats.retries += 1
        self.stats.last_error = error
        repeated = error == self.breaker.last_error
        if self.breaker.open(error):
            log.warning("%s: breaker open, pausing: %s", self.component.name, error)
        elif not repeated:
            log.warning("%s: still paused: %s", self.component.name, error)

    def _close_breaker(self) -> None:
        was_open_ms = self.breaker.close()
        if was_open_ms is not None:
            log.warning("%s: breaker closed after %.1fs", self.component.name, was_open_ms / 1000)

    async def _subscribe(self, lane: Lane) -> None:
        """Subscribe ``lane`` right after its position in the component's database."""
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
                await self._fence(conn)
                await self.component.start_over(conn)
            position = 0
        if not lane.resubmits:
            self._position = position
            self.passed.advance(position)
        await lane.subscribe(self.js, position, self.feed if self._in_step(lane) else None)

    # -- one batch --------------------------------------------------------------------------

    async def _process(self, lane: Lane, messages: list[Msg]) -> None:
        component = self.component
        async with component.db.write() as conn:
            await self._fence(conn)
            position = await read_position(conn, component, lane.position_key)
            seqs = [batches.stream_seq(m) for m in messages]  # once: read again below
            fresh = [m for m, seq in zip(messages, seqs, strict=True) if seq > position]
            if not lane.resubmits and position:
                _check_no_gap(component.name, position, [s for s in seqs if s > position])
            applied = await batches.apply(conn, component, fresh)
            for message in fresh if applied.poison else ():
                event_seq = batches.event_seq(message)
                if event_seq in applied.poison:
                    await self._publish_fault(message, applied.poison[event_seq], None)
            last = max(seqs, default=position)
            if last > position:
                await write_position(conn, component, lane, last)
        if hops.enabled() and component.serves_pull:
            hops.mark(f"{component.name}.committed", _ids(messages))
        if not lane.resubmits:
            self._position = max(last, position)
        await _acknowledge(component.name, lane, messages[-1] if messages else None)
        lane.past(last)
        self.stats.batches += 1
        self.stats.events += applied.events
        outcome = applied.outcome
        if component.serves_pull and (outcome.boards or outcome.usernames):
            await self._notify(outcome, self._position or 0)
        self.passed.advance(self._position or 0)

    async def _publish_fault(self, message: Msg, error: str, attempts: int | None) -> None:
        name = self.component.name
        fault, msg_id = batches.fault_for(name, message, error, attempts)
        log.warning("%s: fault at seq %d: %s", name, fault.seq, error)
        await self.publisher.publish(
            Outgoing(fault_subject(name), msgspec.json.encode(fault), msg_id)
        )
        self.stats.faults += 1

    def notify_here(self, origin: str, offer: Callable[[bytes, WrittenViews | None], None]) -> None:
        """Hand each change notice to ``offer`` (this process's live hub) at once, with the
        rows the batch wrote, and mark the one sent on NATS with ``origin``, which that hub
        skips: the poke goes out without the notice's round trip through nats-server, and
        a caught-up connection's page without a read of the views. Other processes still
        hear the notice there."""
        self._origin, self._offer = origin, offer

    async def _notify(self, outcome: Outcome, watermark: int) -> None:
        notice = {
            "component": self.component.name,
            "boards": sorted(outcome.boards),
            "usernames": sorted(outcome.usernames),
            "watermark": watermark,
            "origin": self._origin,
        }
        data = msgspec.json.encode(notice)
        if self._offer is not None:
            try:
                self._offer(data, outcome.written)
            except Exception:  # the batch is committed; pokes are a hint (the NATS copy too)
                log.exception("the live hub could not take a change notice")
        try:
            await self.publisher.notify(CHANGES_SUBJECT, data)
        except nats.errors.Error as exc:  # pokes are a hint; the periodic pull is the fallback
            log.info("change notice not sent: %s", exc)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


async def _acknowledge(name: str, lane: Lane, last: Msg | None) -> None:
    """Acknowledge a committed batch: its last message, for all of it (``AckPolicy.ALL``).
    A faulted message is acknowledged too: its fault is published and the position is past
    it. Not sent (NATS away) costs nothing: a redelivery is skipped by the position. Nothing
    is sent for a batch from the shared fetch, whose consumer takes no acknowledgements."""
    if last is None or lane.shared:
        return
    try:
        await last.ack()
    except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
        log.info("%s: acknowledgement not sent: %r", name, exc)


def _ids(messages: list[Msg]) -> list[str]:
    """The event ids of ``messages`` (their ``Nats-Msg-Id``), for hop marks."""
    return [(m.headers or {}).get("Nats-Msg-Id", "") for m in messages]


def _check_no_gap(name: str, position: int, fresh: list[int]) -> None:
    """The event stream's sequence numbers have no holes (nothing is ever deleted from it),
    so a batch's seqs past the position (``fresh``) must go on exactly after it. A hole
    means another consumer took the missing events from this durable consumer (one that
    lost its lease and has not noticed yet): committing past them would skip them for
    good."""
    seqs = sorted(fresh)
    expected = list(range(position + 1, position + 1 + len(seqs)))
    if seqs != expected:
        raise DeliveryGap(
            f"{name}: a batch of seqs {seqs[:5]}... does not follow the position {position}: "
            "some events went to another consumer; subscribing again from the position"
        )
