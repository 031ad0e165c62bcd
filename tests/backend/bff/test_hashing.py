"""The password-hashing queue: at most the cap at once, fewest failures first."""

from __future__ import annotations

import asyncio

from backend.bff.auth.hashing import PasswordHashing, _OrderedSlots, check_order


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
