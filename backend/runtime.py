"""How the backend's processes run: on uvloop's event loop where it is installed, with the
garbage collector set for a long-running server.

The loop. Every hop of an action through the backend (the push, the projector's fetch and
commit, the live page written to each connection) passes through the event loop many times:
futures, tasks, timers and socket writes. uvloop (libuv's loop, written in Cython) does that
work in C; side by side on ``outpost bench --only propagation`` it took a few milliseconds
off an action's 20 to 25. It is a dependency of the backend wherever it ships wheels; where
it is missing (Windows) the standard loop runs the same code.

The collector. A backend with a thousand live connections holds half a million objects that
the collector tracks, and CPython's default (a collection every 700 allocations, a full one
whenever a quarter as many again have survived) made a full collection of all of them every
few seconds: 100 to 450 ms in which no connection was served (measured in ``outpost bench
--only fanout``: the slowest pushes were the ones a full collection fell into). ``settle``
runs once a process is set up: it collects, moves what startup made (modules, tables,
compiled queries) out of the collector's sight for good (``gc.freeze``), and collects the
youngest objects every ``YOUNG_THRESHOLD`` allocations instead of 700, so that objects of a
moment (a page, a timer) are gone before a collection sees them, rather than promoted to
the old generation whose every collection walks the whole heap. Cycles are still collected.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["YOUNG_THRESHOLD", "loop_name", "run", "settle"]

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - on platforms uvloop has no wheels for
    uvloop = None  # type: ignore[assignment]

YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop's loop when it is installed."""
    if uvloop is None:  # pragma: no cover
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def loop_name() -> str:
    """The running loop's kind, for the logs: ``uvloop`` or ``asyncio``."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def settle() -> None:
    """Once a process is set up: what startup made out of the collector's sight, and the
    young generation collected every ``YOUNG_THRESHOLD`` allocations."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
