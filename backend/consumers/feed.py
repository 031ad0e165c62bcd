"""One fetch of ``OUTPOST_EVENTS`` for the runners of one process (``SharedFetch``).

Every event is read by every component. Where one process runs several of them (the
consumers set apart: the workload, the lake, the gateway and the orchestrator), each
fetching through a durable consumer of its own meant nats-server sent every event four
times, and each runner decoded the headers of four copies and acknowledged four times.
Here one pull consumer with no acknowledgements fetches for all of them, and each batch is
handed to every runner that is *attached* (a ``Tap``): one delivery, one read of each
message, and the same ``Msg`` objects for all.

Nothing about the truth changes: each runner still commits its own position in its own
database with its work, skips what its position has passed, and checks that a batch
follows its position with no hole. The fetch is only the normal path:

- **Attach.** A runner attaches when it (re)subscribes its events lane at exactly the
  seq the fetch has handed out last (``handed``), or at any position while no runner is
  attached (the fetch then starts again right after it). A runner at any other position
  subscribes its own durable consumer as before, and attaches as soon as its position
  reaches ``handed`` (after a batch, or idle at the tip).
- **Detach.** A runner whose batch fails (an outage or a message failure) unsubscribes,
  which detaches it: it goes back to its own durable from its position, isolates,
  retries and faults there, and attaches again once it has caught up. The others are not
  held up.
- **Flow.** Each tap holds at most ``depth`` batches' worth of messages; the fetch waits
  for room in the attached taps only, so the slowest attached runner sets the pace (they
  share one event loop anyway). One that keeps the fetch waiting longer than ``patience_s``
  (a hung database call, a long lock wait) is detached with a ``DeliveryGap``: it applies
  what it holds, then reads on its own from its position, and the others go on.
- **Failure of the fetch itself** (NATS away, its consumer deleted): every tap gets the
  error on its next fetch, as its own durable would have raised it, so each runner's
  breaker sees the outage; each attaches again when it subscribes after it.

A runner that holds a tap has no durable consumer of its own on the stream (it is deleted
when it attaches): its progress is its position (``/v1/health`` shows it), never an
acknowledgement floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from backend.consumers.batches import stream_seq
from backend.errors import DeliveryGap
from backend.nats.client import take_queued_at_once
from backend.nats.streams import EVENTS_STREAM, EVENTS_SUBJECT_PREFIX

__all__ = ["SharedFetch", "Tap"]

log = logging.getLogger(__name__)

_INACTIVE_S = 60.0
"""nats-server deletes the fetch's consumer after this long without a fetch (the process
died without deleting it)."""


class Tap:
    """One runner's share of a ``SharedFetch``: what ``Lane.subscription`` holds instead of a
    pull subscription, with the same ``fetch`` and ``unsubscribe``."""

    def __init__(self, feed: SharedFetch, name: str, room: int, patience_s: float = 5.0) -> None:
        self.name = name
        self._feed = feed
        self._room_for = max(1, room)
        """Messages it may hold; a batch is taken whole when it holds fewer."""
        self._patience_s = patience_s
        self._batches: deque[list[Msg]] = deque()
        self._held = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._error: BaseException | None = None
        self.closed = False

    # -- the runner's side --------------------------------------------------------------------

    async def fetch(self, batch: int = 1, timeout: float | None = 5.0) -> list[Msg]:
        """The next messages, at most ``batch`` (whole handed batches where they fit); the
        fetch's error if it failed; ``TimeoutError`` if nothing came within ``timeout``."""
        if not self._batches and self._error is None:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        if not self._batches:
            if self._error is not None:
                raise self._error
            raise TimeoutError
        taken = list(self._batches.popleft())  # its own: other taps hold the same batch
        if len(taken) > batch:
            self._batches.appendleft(taken[batch:])
            taken = taken[:batch]
        while self._batches and len(taken) + len(self._batches[0]) <= batch:
            taken = taken + self._batches.popleft()
        self._held -= len(taken)
        if self._held < self._room_for:
            self._room.set()
        return taken

    async def nothing_waiting(self) -> bool:
        """Nothing handed and not taken, and nothing in the stream the fetch has not taken."""
        return not self._batches and await self._feed.nothing_waiting()

    async def unsubscribe(self) -> None:
        """Detach: the fetch stops waiting for this runner, and what it held is dropped (the
        runner goes back to its position)."""
        self._feed.detach(self)

    # -- the fetch's side ---------------------------------------------------------------------

    async def put(self, messages: list[Msg]) -> None:
        """Hand a batch over, once there is room (at once, if it detached meanwhile). A
        runner that leaves no room for ``patience_s`` is detached: it fell behind."""
        while not self.closed and self._held >= self._room_for:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), self._patience_s)
            except TimeoutError:
                self._feed.detach(
                    self,
                    DeliveryGap(
                        f"{self.name} kept the shared fetch waiting {self._patience_s:g} s: "
                        "it reads on its own from its position until it is in step again"
                    ),
                )
        if not self.closed:
            self._batches.append(messages)
            self._held += len(messages)
            self._arrived.set()

    def close(self, error: BaseException | None = None) -> None:
        """Detached: wake whoever waits; a runner's next fetch raises ``error`` if given."""
        self.closed = True
        self._error = error
        if error is None:
            self._batches.clear()
            self._held = 0
        self._room.set()
        self._arrived.set()


class SharedFetch:
    """One pull consumer (``AckPolicy.NONE``) on ``OUTPOST_EVENTS`` whose batches go to
    every attached ``Tap``. ``start()`` before the first attach, ``stop()`` at the end."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        batch: int = 256,
        fetch_timeout: float = 0.5,
        depth: int = 4,
        patience_s: float = 5.0,
    ) -> None:
        self.js: JetStreamContext = nc.jetstream()
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.depth = max(1, depth)
        """Batches a tap may hold, counted in messages (``depth * batch``): at the tip the
        fetch takes one event at a time, and a runner that lingers takes them together."""
        self.patience_s = patience_s
        self.name = f"feed_{uuid.uuid4().hex[:12]}"
        """Its consumer's name: one per process, never shared with another process."""
        self.handed: int | None = None
        """The last seq handed to the taps (None before the first attach)."""
        self.batches = 0
        """Batches fetched and handed out so far."""
        self._taps: list[Tap] = []
        self._start: int | None = None
        """Set by an attach while none is attached: fetch again right after this seq."""
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backlog = True

    @property
    def attached(self) -> list[str]:
        return [tap.name for tap in self._taps]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        for tap in list(self._taps):
            self.detach(tap)
        if self._task is not None:
            await self._task
            self._task = None
        await self._drop_consumer()

    def attach(self, name: str, position: int) -> Tap | None:
        """A tap for a runner at ``position``, or None if the fetch is elsewhere (the runner
        then uses its own durable consumer)."""
        if not self.takes(position):
            return None
        if not self._taps:
            # Nobody waits on the fetch: it starts again right after this runner, on a new
            # consumer (the old one may be gone: idle for long, or dropped after a failure).
            self._start = position
            self.handed = position
        tap = Tap(self, name, self.depth * self.batch, self.patience_s)
        self._taps.append(tap)
        self._wake.set()
        return tap

    def takes(self, position: int) -> bool:
        """Whether ``attach`` at ``position`` gives a tap: the fetch is running, and it is
        there, or nobody is attached (it then moves there)."""
        if self._task is None or self._stopping.is_set():
            return False
        return not self._taps or position == self.handed

    def detach(self, tap: Tap, error: BaseException | None = None) -> None:
        """The fetch no longer hands ``tap`` anything; its runner's next fetch raises
        ``error`` once it has taken what it holds (with no error: it is dropped)."""
        if tap in self._taps:
            self._taps.remove(tap)
        if not tap.closed:
            tap.close(error)

    async def nothing_waiting(self) -> bool:
        if self._subscription is None or self._start is not None:
            return False
        info = await self._subscription.consumer_info()
        return not info.num_pending

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._taps:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if self._start is not None or self._subscription is None:
                    await self._subscribe()
                messages = await self._fetch()
                if not messages:
                    continue
                if self._start is not None:
                    continue  # moved while it waited: these are from the old place
                messages = self._hand(messages)
                for tap in list(self._taps) if messages else ():
                    await tap.put(messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("the shared fetch failed (%r): its runners subscribe again", exc)
                for tap in list(self._taps):
                    self.detach(tap, exc)
                self.handed = None  # the next attach says where to start (before any wait)
                await self._drop_consumer()

    def _hand(self, messages: list[Msg]) -> list[Msg]:
        """What of the batch is new, checked to go on from ``handed``, with ``handed`` moved
        past it at once (an attach between this and the puts joins after this batch).

        Messages at or before ``handed`` are dropped: every attached runner has them. A
        consumer with no acknowledgements keeps its place lazily, so after nats-server
        restarts it may deliver the last few again (``outpost conflicts --faults`` saw one
        to twenty). A hole after ``handed`` is a ``DeliveryGap`` for every runner."""
        handed = self.handed
        if handed and stream_seq(messages[0]) <= handed:  # rare: only what came again
            messages = [m for m in messages if stream_seq(m) > handed]
            if not messages:
                return messages
        first, last = stream_seq(messages[0]), stream_seq(messages[-1])
        # From 0, the stream's first seq may be past 1 (as ``_check_no_gap`` allows).
        expected = handed + 1 if handed else first
        if first != expected or last - first + 1 != len(messages):
            raise DeliveryGap(
                f"the shared fetch got seqs {first}..{last} ({len(messages)} messages) "
                f"after {handed}: its runners subscribe again from their positions"
            )
        self.handed = last
        self.batches += 1
        return messages

    async def _fetch(self) -> list[Msg]:
        assert self._subscription is not None
        size = self.batch if self._backlog else 1
        try:
            messages = await self._subscription.fetch(size, timeout=self.fetch_timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        if messages:
            self._backlog = bool(messages[-1].metadata.num_pending)
        return messages

    async def _subscribe(self) -> None:
        await self._drop_consumer()
        position = self._start if self._start is not None else (self.handed or 0)
        self._start = None
        self.handed = position
        config = ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=_INACTIVE_S,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
            opt_start_seq=position + 1 if position else None,
        )
        self._subscription = await self.js.pull_subscribe(
            f"{EVENTS_SUBJECT_PREFIX}.>", durable=self.name, stream=EVENTS_STREAM, config=config
        )
        take_queued_at_once(self._subscription)
        self._backlog = True

    async def _drop_consumer(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        with contextlib.suppress(Exception):  # it may never have been made, or NATS is away
            await self.js.delete_consumer(EVENTS_STREAM, self.name)
