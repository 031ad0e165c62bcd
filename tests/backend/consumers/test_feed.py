"""The fetch that the runners of one process share (``backend/consumers/feed.py``).

The runners attach when they are at the fetch's place and then take their batches from
it; any failure sends one back to a durable consumer of its own, from its position, while
the others go on; it attaches again once it has caught up. Against a real nats-server,
with the recording components of ``test_runner.py``. The ``Tap`` itself (how it splits and
joins batches, and holds the fetch back) is checked without a server.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Outcome
from backend.consumers.feed import SharedFetch, Tap
from backend.consumers.runner import ConsumerRunner
from backend.errors import DeliveryGap
from backend.nats.streams import EVENTS_STREAM, event_subject
from protocol import Event
from tests.backend.consumers.test_runner import (
    BOARD,
    Recorder,
    Stage,
    event,
    fast,
    running,
    stage,
    wait_until_async,
)
from tests.support.nats import run, wait_until


def never(event: Event) -> None:
    """A component that never fails."""


class Ordered(Recorder):
    """Records the order in which it applies events too (its table reads back by seq)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.order: list[int] = []

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        outcome = await super().handle(conn, events)
        self.order += [e.seq for e in events]  # committed or not: a retry appends again
        return outcome


class Gated(Recorder):
    """Hangs on the event at ``gate_seq`` until ``gate`` is set (a database call that does
    not come back)."""

    gate_seq = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.gate = asyncio.Event()

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        if any(e.seq == self.gate_seq for e in events):
            await self.gate.wait()
        return await super().handle(conn, events)


async def consumers_on_stream(s: Stage) -> list[str]:
    return sorted([c.name for c in await s.nc.jsm().consumers_info(EVENTS_STREAM)])


async def status(runner: ConsumerRunner) -> dict[str, Any]:
    return await runner.status()


async def fetch_of(runner: ConsumerRunner) -> str:
    return str((await runner.status())["fetch"])


async def wait_fetch(runner: ConsumerRunner, expected: str, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (got := await fetch_of(runner)) != expected:
        if loop.time() > deadline:
            pytest.fail(f"{runner.component.name}: fetch {got}, expected {expected}")
        await asyncio.sleep(0.05)


# ---- with a real nats-server ----------------------------------------------------------------


@pytest.mark.integration
def test_one_fetch_feeds_every_runner_of_the_process_once(tmp_path: Path) -> None:
    """Three components at the same place attach; each applies all 700 events in order,
    from the one consumer nats-server has on the stream, and none has a durable."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack, batch=64)
            components = [
                await s.component(name, never, kind=Ordered) for name in ("one", "two", "three")
            ]
            runners = [fast(s.nc, c, batch=64, feed=feed) for c in components]
            for runner in runners:
                await stack.enter_async_context(running(runner))
            await wait_until(lambda: len(feed.attached) == 3, what="three attached")
            seqs = await at_once(s, 700)
            for component in components:
                await wait_until_async(component.seqs, seqs)
                assert isinstance(component, Ordered) and component.order == seqs
            assert await consumers_on_stream(s) == [feed.name]
            info = await s.nc.jetstream().consumer_info(EVENTS_STREAM, feed.name)
            assert info.delivered.stream_seq == seqs[-1]
            assert info.num_pending == 0
            # Batched, not one by one (how many depends on how the publishes arrive).
            assert feed.batches < 700, "batched, not one by one"
            for runner in runners:
                report = await status(runner)
                assert (report["fetch"], report["position"]) == ("shared", seqs[-1])
                assert report["lag_events"] == 0
                assert runner.breaker.state == "closed"
        assert feed.attached == [], "every runner detached when it stopped"

    run(body())


@pytest.mark.integration
def test_runners_that_linger_take_the_same_batches_without_touching_each_others(
    tmp_path: Path,
) -> None:
    """After a lone event a runner waits a moment and takes what came with it: the batch it
    was handed is shared with the other runner, which must get it as it was (a batch grown
    in place reached the other with events twice: a gap, and a detach)."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack)
            detached: list[str] = []
            detach = feed.detach

            def watched(tap: Tap, error: BaseException | None = None) -> None:
                detached.append(tap.name)
                detach(tap, error)

            feed.detach = watched  # type: ignore[method-assign]
            components = [await s.component(name, never, kind=Ordered) for name in ("a", "b")]
            runners = [fast(s.nc, c, feed=feed, linger_s=0.05) for c in components]
            for runner in runners:
                await stack.enter_async_context(running(runner))
            await wait_until(lambda: len(feed.attached) == 2, what="both attached")
            seqs: list[int] = []
            for _ in range(25):  # a few at a time, as devices push
                seqs += await s.publish(3)
                await asyncio.sleep(0.02)
            for component in components:
                await wait_until_async(component.seqs, seqs)
                assert isinstance(component, Ordered) and component.order == seqs
            assert detached == [], "nobody left the fetch"
            assert all(runner.stats.batches < 75 for runner in runners), "lingered"

    run(body())


@pytest.mark.integration
def test_a_failing_runner_retries_on_its_own_while_the_others_go_on_then_attaches_again(
    tmp_path: Path,
) -> None:
    """One component fails on one event three times: the other two apply everything
    meanwhile through the fetch; it isolates and retries on a durable consumer of its own
    from its position, applies the event on the fourth try without a fault, and attaches
    again once it has caught up (its durable is then deleted)."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack)
            left = {"failures": 3}
            bad: dict[str, int] = {}

            def flaky(event: Event) -> None:
                if event.seq == bad.get("seq") and left["failures"]:
                    left["failures"] -= 1
                    raise RuntimeError("a bug that passes")

            steady = [await s.component(name, never) for name in ("steady_a", "steady_b")]
            shaky = await s.component("shaky", flaky)
            runners = [fast(s.nc, c, batch=32, feed=feed, max_attempts=5) for c in steady]
            shaky_runner = fast(s.nc, shaky, batch=32, feed=feed, max_attempts=5)
            for runner in [*runners, shaky_runner]:
                await stack.enter_async_context(running(runner))
            await wait_until(lambda: len(feed.attached) == 3, what="three attached")
            first = await s.publish(100)
            bad["seq"] = first[-1] + 50
            seqs = first + await s.publish(200)
            for component in steady:
                await wait_until_async(component.seqs, seqs)
            await wait_until_async(shaky.seqs, seqs)
            assert left["failures"] == 0, "the event failed three times"
            assert shaky_runner.stats.retries >= 3
            assert await s.faults() == []
            # Caught up and idle at the tip: it is back on the shared fetch, with no durable.
            await wait_fetch(shaky_runner, "shared")
            assert sorted(feed.attached) == ["shaky", "steady_a", "steady_b"]
            assert await consumers_on_stream(s) == [feed.name]
            later = await s.publish(40)
            for component in [*steady, shaky]:
                await wait_until_async(component.seqs, seqs + later)

    run(body())


@pytest.mark.integration
def test_an_event_one_component_can_never_apply_is_faulted_by_that_one_alone(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack)
            bad = 41  # the stream is new: its seqs start at 1

            def strict(event: Event) -> None:
                if event.seq == bad:
                    raise ValueError("this one never works here")

            steady = await s.component("steady", never)
            picky = await s.component("picky", strict)
            picky_runner = fast(s.nc, picky, batch=32, feed=feed, max_attempts=3)
            for runner in (fast(s.nc, steady, batch=32, feed=feed), picky_runner):
                await stack.enter_async_context(running(runner))
            await wait_until(lambda: len(feed.attached) == 2, what="both attached")
            seqs = await s.publish(120)
            assert bad in seqs
            await wait_until_async(steady.seqs, seqs)
            await wait_until_async(picky.seqs, [seq for seq in seqs if seq != bad])
            [fault] = await s.faults()
            assert (fault["component"], fault["seq"], fault["deliveries"]) == ("picky", bad, 3)
            await wait_fetch(picky_runner, "shared")

    run(body())


@pytest.mark.integration
def test_a_runner_alone_isolates_an_event_it_can_never_apply_and_faults_it(
    tmp_path: Path,
) -> None:
    """With nobody else on the fetch, a failed batch is still retried one message at a time
    on the runner's own durable consumer (the fetch would hand the whole batch again), so
    the one event is faulted after its tries and the rest applied."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack)
            seqs = await s.publish(100)  # waiting before the runner starts: whole batches
            bad = seqs[50]

            def strict(event: Event) -> None:
                if event.seq == bad:
                    raise ValueError("never")

            alone = await s.component("alone", strict)
            runner = fast(s.nc, alone, batch=32, feed=feed, max_attempts=3)
            await stack.enter_async_context(running(runner))
            await wait_until_async(alone.seqs, [seq for seq in seqs if seq != bad])
            [fault] = await s.faults()
            assert (fault["seq"], fault["deliveries"]) == (bad, 3)
            await wait_fetch(runner, "shared")
            later = await s.publish(10)
            await wait_until_async(alone.seqs, [seq for seq in seqs + later if seq != bad])

    run(body())


@pytest.mark.integration
def test_a_runner_that_hangs_is_detached_and_the_others_go_on(tmp_path: Path) -> None:
    """One component's database call does not come back: after the fetch's patience it is
    detached, the other applies everything; once it comes back it catches up on its own
    durable consumer and attaches again."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = SharedFetch(s.nc, batch=16, fetch_timeout=0.2, depth=1, patience_s=0.5)
            feed.start()
            stack.push_async_callback(feed.stop)
            steady = await s.component("steady", never)
            hung = await s.component("hung", never, kind=Gated)
            assert isinstance(hung, Gated)
            hung.gate_seq = 5
            hung_runner = fast(s.nc, hung, batch=16, feed=feed)
            for runner in (fast(s.nc, steady, batch=16, feed=feed), hung_runner):
                await stack.enter_async_context(running(runner))
            await wait_until(lambda: len(feed.attached) == 2, what="both attached")
            seqs = await at_once(s, 200)
            await wait_until_async(steady.seqs, seqs)  # 200 events: far past the room of 16
            assert "hung" not in feed.attached, "it kept the fetch waiting: detached"
            hung.gate.set()
            await wait_until_async(hung.seqs, seqs)
            await wait_fetch(hung_runner, "shared")
            assert await s.faults() == []

    run(body())


@pytest.mark.integration
def test_an_outage_of_one_components_database_opens_only_its_breaker(tmp_path: Path) -> None:
    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack)
            down = {"now": False}

            def outage(event: Event) -> None:
                if down["now"]:
                    raise OperationalError("INSERT", {}, ConnectionRefusedError("refused"))

            steady = await s.component("steady", never)
            views = await s.component("views", outage)
            steady_runner = fast(s.nc, steady, batch=32, feed=feed)
            views_runner = fast(s.nc, views, batch=32, feed=feed, max_attempts=2)
            for runner in (steady_runner, views_runner):
                await stack.enter_async_context(running(runner))
            await wait_until(lambda: len(feed.attached) == 2, what="both attached")
            before = await s.publish(10)
            await wait_until_async(views.seqs, before)
            down["now"] = True
            during = await s.publish(60)
            await wait_until(lambda: views_runner.breaker.state == "open", what="breaker open")
            await wait_until_async(steady.seqs, before + during)  # not held up
            assert steady_runner.breaker.state == "closed"
            assert (await status(views_runner))["lag_events"] == 60
            down["now"] = False
            await wait_until_async(views.seqs, before + during)
            await wait_until(lambda: views_runner.breaker.state == "closed", what="closed")
            assert await s.faults() == [], "an outage faults nothing"
            await wait_fetch(views_runner, "shared")

    run(body())


@pytest.mark.integration
def test_a_runner_that_starts_behind_catches_up_on_its_own_and_then_attaches(
    tmp_path: Path,
) -> None:
    """The fetch is at the tip with one runner attached; a component that starts from seq 0
    reads the stream through its own durable consumer, then attaches."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack, batch=64)
            ahead = await s.component("ahead", never)
            await stack.enter_async_context(running(fast(s.nc, ahead, batch=64, feed=feed)))
            seqs = await s.publish(400)
            await wait_until_async(ahead.seqs, seqs)
            late = await s.component("late", never)
            late_runner = fast(s.nc, late, batch=64, feed=feed)
            await stack.enter_async_context(running(late_runner))
            await wait_until_async(late.seqs, seqs)
            await wait_fetch(late_runner, "shared")
            assert feed.handed == seqs[-1]
            more = await s.publish(100)
            await wait_until_async(ahead.seqs, seqs + more)
            await wait_until_async(late.seqs, seqs + more)
            assert await consumers_on_stream(s) == [feed.name]

    run(body())


@pytest.mark.integration
def test_a_nats_server_restart_loses_nothing_and_the_fetch_goes_on(tmp_path: Path) -> None:
    """While nats-server is away, fetches time out as a durable's would; when it is back, the
    fetch goes on from its place and every runner gets every event."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed, components, runners, seqs = await two_in_step(s, stack)
            await s.server.stop()
            await asyncio.sleep(1.0)  # fetches time out meanwhile
            await s.server.start()
            seqs += await publish_when_back(s, 30)
            for component in components:
                await wait_until_async(component.seqs, seqs, timeout_s=30)
            for runner in runners:
                await wait_fetch(runner, "shared")
            assert sorted(feed.attached) == ["left", "right"]
            assert await s.faults() == []

    run(body())


@pytest.mark.integration
def test_when_the_fetch_fails_every_runner_sees_it_and_all_attach_again(tmp_path: Path) -> None:
    """The fetch's consumer is deleted under it (an operator, nats-server's clean-up): its
    failure reaches each runner's breaker, as its own durable's would; each subscribes
    again from its position, the fetch starts again there, and nothing is lost."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed, components, runners, seqs = await two_in_step(s, stack)
            await s.nc.jsm().delete_consumer(EVENTS_STREAM, feed.name)
            for runner in runners:
                await wait_until(
                    lambda r=runner: r.breaker.openings >= 1, what="the outage seen", timeout_s=20
                )
            seqs += await s.publish(30)
            for component in components:
                await wait_until_async(component.seqs, seqs, timeout_s=30)
            for runner in runners:
                await wait_until(lambda r=runner: r.breaker.state == "closed", what="closed")
                await wait_fetch(runner, "shared")
            assert await consumers_on_stream(s) == [feed.name]
            assert await s.faults() == []

    run(body())


@pytest.mark.integration
def test_a_fetch_idle_long_enough_to_lose_its_consumer_starts_again_at_the_next_attach(
    tmp_path: Path,
) -> None:
    """nats-server deletes the consumer of a fetch nobody used for a while: the next runner
    to attach starts it again at its own place, with no outage."""

    async def body() -> None:
        async with stage(tmp_path) as s, AsyncExitStack() as stack:
            feed = await started(s, stack)
            first = await s.component("first", never)
            async with running(fast(s.nc, first, feed=feed)):
                seqs = await s.publish(20)
                await wait_until_async(first.seqs, seqs)
            assert feed.attached == []
            await s.nc.jsm().delete_consumer(EVENTS_STREAM, feed.name)  # as its idle limit
            runner = fast(s.nc, first, feed=feed)
            await stack.enter_async_context(running(runner))
            await wait_until(lambda: feed.attached == ["first"], what="attached")
            seqs += await s.publish(20)
            await wait_until_async(first.seqs, seqs)
            assert runner.breaker.openings == 0

    run(body())


async def two_in_step(
    s: Stage, stack: AsyncExitStack
) -> tuple[SharedFetch, list[Recorder], list[ConsumerRunner], list[int]]:
    """Two runners attached to a fetch, both past 50 events (stopped with ``stack``)."""
    feed = await started(s, stack)
    components = [await s.component(name, never) for name in ("left", "right")]
    runners = [fast(s.nc, c, batch=32, feed=feed) for c in components]
    for runner in runners:
        await stack.enter_async_context(running(runner))
    await wait_until(lambda: len(feed.attached) == 2, what="both attached")
    seqs = await s.publish(50)
    for component in components:
        await wait_until_async(component.seqs, seqs)
    return feed, components, runners, seqs


async def started(s: Stage, stack: AsyncExitStack, batch: int = 32) -> SharedFetch:
    """A shared fetch, stopped when ``stack`` closes (after the runners in it)."""
    feed = SharedFetch(s.nc, batch=batch, fetch_timeout=0.2)
    feed.start()
    stack.push_async_callback(feed.stop)
    return feed


async def at_once(s: Stage, count: int) -> list[int]:
    """Publish ``count`` events without waiting for each acknowledgement: they are in the
    stream before the fetch can take them one by one."""
    bodies = [event(s.clock, s.device, "task") for _ in range(count)]
    js = s.nc.jetstream()
    acks = await asyncio.gather(*(js.publish(event_subject(BOARD), body) for body in bodies))
    return sorted(ack.seq for ack in acks)


async def publish_when_back(s: Stage, count: int) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        try:
            return await s.publish(count)
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


# ---- the tap alone ---------------------------------------------------------------------------


class Message:
    """Stands for a ``Msg``: the tap never looks inside one."""

    def __init__(self, seq: int) -> None:
        self.seq = seq


def batch_of(*seqs: int) -> list[Msg]:
    return [Message(seq) for seq in seqs]  # type: ignore[misc]


def seqs_of(messages: list[Msg]) -> list[int]:
    return [m.seq for m in messages]  # type: ignore[attr-defined]


class NoFeed(SharedFetch):
    def __init__(self) -> None:  # no client: only detach is used
        self._taps = []


def test_a_tap_joins_whole_batches_up_to_the_size_asked_and_splits_one_too_big() -> None:
    async def body() -> None:
        tap = Tap(NoFeed(), "t", room=12)
        for batch in (batch_of(1, 2, 3), batch_of(4, 5, 6), batch_of(7, 8, 9)):
            await tap.put(batch)
        assert seqs_of(await tap.fetch(5)) == [1, 2, 3]  # 3 + 3 > 5: the next waits
        assert seqs_of(await tap.fetch(2)) == [4, 5]
        assert seqs_of(await tap.fetch(10)) == [6, 7, 8, 9]
        with pytest.raises(TimeoutError):
            await tap.fetch(10, timeout=0.01)

    run(body())


def test_a_full_tap_holds_the_fetch_back_until_its_runner_takes_a_batch() -> None:
    async def body() -> None:
        tap = Tap(NoFeed(), "t", room=2)  # messages
        await tap.put(batch_of(1))
        await tap.put(batch_of(2))
        third = asyncio.create_task(tap.put(batch_of(3)))
        await asyncio.sleep(0.05)
        assert not third.done(), "a third batch waits for room"
        assert seqs_of(await tap.fetch(1)) == [1]
        await asyncio.wait_for(third, 1)
        assert seqs_of(await tap.fetch(10)) == [2, 3]

    run(body())


def test_a_closed_tap_gives_what_it_holds_then_the_fetchs_error() -> None:
    async def body() -> None:
        tap = Tap(NoFeed(), "t", room=4)
        await tap.put(batch_of(1, 2))
        tap.close(DeliveryGap("the shared fetch got seqs 9..9"))
        assert seqs_of(await tap.fetch(10)) == [1, 2]
        with pytest.raises(DeliveryGap):
            await tap.fetch(10)
        await tap.put(batch_of(3))  # the fetch's last batch after the close: dropped
        with pytest.raises(DeliveryGap):
            await tap.fetch(10)

    run(body())


def test_a_detached_tap_drops_what_it_held_and_frees_the_fetch() -> None:
    async def body() -> None:
        tap = Tap(NoFeed(), "t", room=1)
        await tap.put(batch_of(1))
        waiting = asyncio.create_task(tap.put(batch_of(2)))
        await asyncio.sleep(0.01)
        await tap.unsubscribe()
        await asyncio.wait_for(waiting, 1)  # the fetch is not held by a runner gone
        with pytest.raises(TimeoutError):
            await tap.fetch(10, timeout=0.01)

    run(body())


def test_a_runner_that_keeps_the_fetch_waiting_is_detached_and_keeps_what_it_holds() -> None:
    async def body() -> None:
        feed = NoFeed()
        tap = Tap(feed, "slow", room=2, patience_s=0.05)
        feed._taps.append(tap)
        await tap.put(batch_of(1, 2))
        await asyncio.wait_for(tap.put(batch_of(3)), 1)  # gives up on it after 0.05 s
        assert tap.closed and feed.attached == []
        assert seqs_of(await tap.fetch(10)) == [1, 2]  # applied, then it reads on its own
        with pytest.raises(DeliveryGap, match="slow kept the shared fetch waiting"):
            await tap.fetch(10)

    run(body())


class Stored:
    """Stands for a ``Msg`` as the fetch reads it: its acknowledgement subject names its
    stream seq (``batches.stream_seq``)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.reply = f"$JS.ACK.{EVENTS_STREAM}.feed.1.{seq}.{seq}.1700000000000000000.0"


def stored(*seqs: int) -> list[Msg]:
    return [Stored(seq) for seq in seqs]  # type: ignore[misc]


def test_the_fetch_drops_what_it_has_handed_already_and_refuses_a_hole() -> None:
    """After nats-server restarts, a consumer with no acknowledgements may deliver its last
    few messages again: every runner has them, so they are dropped, not a gap."""
    feed = NoFeed()
    feed.handed, feed.batches = 10, 0
    assert seqs_of(feed._hand(stored(9, 10, 11, 12))) == [11, 12]
    assert feed.handed == 12
    assert feed._hand(stored(11, 12)) == []
    assert (feed.handed, feed.batches) == (12, 1)
    with pytest.raises(DeliveryGap, match=r"got seqs 14\.\.14"):
        feed._hand(stored(14))
