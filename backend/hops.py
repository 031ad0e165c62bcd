"""Hop marks: when an event passed each stage of the backend, for the latency budget.

``outpost bench --only propagation`` breaks one action's time into hops (device write, push
request, decision commit, stream acknowledgement, the projector's wait and commit, the change
notice, the poke, the pull, the apply). The hops inside the backend are timed here: with
``OUTPOST_HOP_TRACE`` naming a file, each stage appends a line ``<hop>\\t<ns>\\t<keys>`` (keys:
event ids, ``id@seq`` once stored, or a watermark), with ``time.monotonic_ns()``, which on
Linux is the one clock every process of the machine shares. Without it (the default) a mark
is one test of a global and nothing else; with it, a mark costs a string join and a write
per batch, not per event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TextIO

TRACE_ENV = "OUTPOST_HOP_TRACE"

_sink: TextIO | None = None
_highest: dict[str, int] = {}


def _open() -> TextIO | None:
    path = os.environ.get(TRACE_ENV)
    if not path:
        return None
    return open(path, "a", buffering=1, encoding="utf-8")


_sink = _open()


def enabled() -> bool:
    return _sink is not None


def now() -> int:
    return time.monotonic_ns()


def mark(hop: str, keys: Iterable[object], at: int | None = None) -> None:
    """Record that ``keys`` passed ``hop`` at ``at`` (default: now)."""
    if _sink is None:
        return
    stamp = now() if at is None else at
    _sink.write(f"{hop}\t{stamp}\t{','.join(map(str, keys))}\n")


def mark_rising(hop: str, value: int) -> None:
    """``mark(hop, [value])`` when ``value`` is above every value marked for ``hop`` before:
    a page shared by a thousand live connections is marked by the first, not written a
    thousand times (the budget takes the first stamp of a watermark)."""
    if _sink is None or value <= _highest.get(hop, -1):
        return
    _highest[hop] = value
    mark(hop, [value])
