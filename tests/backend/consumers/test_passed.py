"""``Passed``: how far a consumer has passed, and waiting for it to pass a seq."""

from __future__ import annotations

import asyncio

from backend.consumers.passed import Passed


def test_a_waiter_wakes_when_the_consumer_passes_its_seq_and_not_before() -> None:
    async def scenario() -> list[str]:
        passed = Passed()
        woke: list[str] = []

        async def wait(name: str, seq: int) -> None:
            if await passed.wait_past(seq, 5.0):
                woke.append(name)

        waiting = [asyncio.create_task(wait("at 3", 3)), asyncio.create_task(wait("at 5", 5))]
        await asyncio.sleep(0)
        passed.advance(2)
        await asyncio.sleep(0)
        assert woke == []
        passed.advance(4)
        await asyncio.sleep(0)
        assert woke == ["at 3"]
        passed.advance(1)  # a position never goes back for those waiting
        passed.advance(9)
        await asyncio.gather(*waiting)
        assert await passed.wait_past(7, 0.0), "already past: no wait at all"
        return woke

    assert asyncio.run(scenario()) == ["at 3", "at 5"]


def test_a_wait_ends_false_after_its_timeout_and_leaves_nothing_behind() -> None:
    async def scenario() -> tuple[bool, int]:
        passed = Passed()
        ended = await passed.wait_past(1, 0.01)
        return ended, len(passed._waiters)

    assert asyncio.run(scenario()) == (False, 0)
