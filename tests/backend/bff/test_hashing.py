"""The password-hashing queue: at most the cap at once, fewest failures first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from backend.bff.auth.hashing import PasswordHashing, _OrderedSlots, check_order
from backend.errors import RateLimited


def test_waiters_are_let_in_fewest_failures_first_then_first_come() -> None:
    async def body() -> list[str]:
        slots = _OrderedSlots(1)
        await slots.acquire(0)  # a check is running
        served: list[str] = []

        async def wait(name: str, order: int) -> None:
            await slots.acquire(order)
            served.append(name)
            slots.release()

        waiting = [
            asyncio.create_task(wait(name, order))
            for name, order in [("guesser a", 5), ("guesser b", 3), ("owner", 0), ("guesser c", 3)]
        ]
        await asyncio.sleep(0)  # every waiter is queued
        slots.release()
        await asyncio.gather(*waiting)
        return served

    assert asyncio.run(body()) == ["owner", "guesser b", "guesser c", "guesser a"]


def test_a_cancelled_waiter_gives_up_its_place_and_the_slot_is_never_lost() -> None:
    async def body() -> bool:
        slots = _OrderedSlots(1)
        await slots.acquire(0)
        gone = asyncio.create_task(slots.acquire(1))
        await asyncio.sleep(0)
        gone.cancel()
        slots.release()
        await asyncio.wait_for(slots.acquire(2), 1)  # the slot came back to be taken
        return gone.cancelled()

    assert asyncio.run(body())


def test_a_check_reads_its_order_from_the_request_context() -> None:
    hashing = PasswordHashing(time_cost=1, concurrency=1)
    stored = hashing.hash_now("correct horse")

    async def body() -> tuple[bool, bool]:
        check_order.set(7)
        good = await hashing.verify(stored, "correct horse")
        bad = await hashing.verify(stored, "wrong horse")
        return good, bad

    assert asyncio.run(body()) == (True, False)
    assert hashing.peak == 1


def test_a_full_queue_turns_away_the_last_in_line_never_the_owner() -> None:
    """A queue of 2 behind a running hash: each newcomer that ranks above the last one
    waiting takes its place (that one gets the 429); one that ranks below gets the 429."""
    hashing = PasswordHashing(time_cost=1, concurrency=1, queue=2)
    stored = hashing.hash_now("correct horse")

    async def body() -> dict[str, str]:
        outcomes: dict[str, str] = {}

        async def check(name: str, order: int) -> None:
            check_order.set(order)
            try:
                await hashing.verify(stored, "wrong horse")
                outcomes[name] = "checked"
            except RateLimited:
                outcomes[name] = "429"

        async with running_hash(hashing):
            tasks = []
            for name, order in [("g1", 3), ("g2", 5), ("g3", 4), ("owner", 0), ("g4", 9)]:
                tasks.append(asyncio.create_task(check(name, order)))
                await asyncio.sleep(0)  # each one queued (or refused) before the next
        await asyncio.gather(*tasks)
        return outcomes

    assert asyncio.run(body()) == {
        "g2": "429",  # the last in line when g3 came
        "g3": "429",  # the last in line when the owner came
        "g4": "429",  # ranks below everyone waiting
        "owner": "checked",
        "g1": "checked",
    }


@contextlib.asynccontextmanager
async def running_hash(hashing: PasswordHashing) -> AsyncIterator[None]:
    """The slot taken, as by a hash in progress, until the block ends."""
    await hashing._slots.acquire(0)
    hashing._pending += 1
    try:
        yield
    finally:
        hashing._pending -= 1
        hashing._slots.release()
