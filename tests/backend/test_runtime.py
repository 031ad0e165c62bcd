"""How the backend's processes run (``backend.runtime``): on uvloop, with the collector set
for a server."""

from __future__ import annotations

import asyncio
import gc

from backend import runtime


def test_run_gives_a_coroutine_uvloops_loop_and_its_result() -> None:
    async def where() -> tuple[str, str]:
        await asyncio.sleep(0)
        return runtime.loop_name(), type(asyncio.get_running_loop()).__module__

    name, module = runtime.run(where())
    assert name == "uvloop"
    assert module.startswith("uvloop")


def test_the_standard_loop_is_named_as_such() -> None:
    async def where() -> str:
        return runtime.loop_name()

    assert asyncio.run(where()) == "asyncio"


def test_settle_puts_what_startup_made_out_of_sight_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        startup = [object() for _ in range(10)]  # noqa: F841 - held while the process runs
        runtime.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (runtime.YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_settled_cycles_made_later_are_still_collected() -> None:
    before = gc.get_threshold()
    try:
        runtime.settle()

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        import weakref

        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
