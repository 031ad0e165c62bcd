"""A lane's retry bookkeeping: attempts per message, isolation of a failed batch."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from backend.consumers.lanes import Lane
from backend.nats import ensure_streams, event_subject
from tests.support.nats import connected, run, running_nats


def lane() -> Lane:
    return Lane("events", "OUTPOST_EVENTS", "outpost.events.>", "c", "c", batch=64)


def test_a_failed_batch_is_retried_one_message_at_a_time_until_past_it() -> None:
    it = lane()
    assert it.fetch_size == 64
    it.isolate_until = 10
    assert it.fetch_size == 1
    it.past(9)
    assert it.fetch_size == 1, "still inside the failed batch"
    it.past(10)
    assert it.isolate_until is None and it.fetch_size == 64


def test_an_idle_lane_fetches_one_message() -> None:
    it = lane()
    it.backlog = False
    assert it.fetch_size == 1


def test_attempts_count_per_message_and_are_forgotten_once_passed() -> None:
    it = lane()
    assert it.failed(5) == 1
    assert it.failed(5) == 2
    assert it.failed(7) == 1
    it.past(5)
    assert it.attempts == {7: 1}


@pytest.mark.integration
def test_a_fetch_takes_what_has_arrived_in_order_without_a_task_per_message(
    nats_store: Path,
) -> None:
    """A lane's subscription reads a batch that is already there without making a task for
    each message (nats-py's ``next_msg`` makes one: 17 µs a message, for every consumer),
    in stream order; with nothing there, a fetch still waits and times out as nats-py's."""

    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            board = str(uuid.uuid4())
            for i in range(200):
                await js.publish(event_subject(board), str(i).encode())
            subscription = await lane().subscribe(js, 0)
            created = 0
            loop = asyncio.get_running_loop()

            def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
                nonlocal created
                created += 1
                return asyncio.Task(coro, loop=loop, **kwargs)

            messages: list[Any] = []
            loop.set_task_factory(counting)
            try:
                while len(messages) < 200:
                    messages += await subscription.fetch(64, timeout=5)
            finally:
                loop.set_task_factory(None)
            assert [m.data for m in messages] == [str(i).encode() for i in range(200)]
            # A wait for the queue to fill takes two tasks (nats-py's); before, every
            # message took two, queued or not: 400 for 200.
            assert created < 100, f"{created} tasks for 200 messages"
            for message in messages:
                await message.ack()
            with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
                await subscription.fetch(1, timeout=0.5)

    run(body())
