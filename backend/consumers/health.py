"""How a runner is doing, for ``/v1/health`` and the metrics: its breaker, its place, its
lag, its errors. ``position`` is the last seq of ``OUTPOST_EVENTS`` the component has
passed (committed or faulted); ``fetch`` says whether its events come from the process's
shared fetch (``shared``) or a durable consumer of its own (``own``). ``lag_events`` is the
number of events in the stream past the position; ``lag_ms`` the age of the oldest of them
(the "iterator age": now minus the stream time of the event at position + 1), 0 when
caught up. Both None when NATS cannot say.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from nats.js.client import JetStreamContext

from backend.consumers.breaker import Breaker
from backend.nats.streams import EVENTS_STREAM, EVENTS_SUBJECT_PREFIX

__all__ = ["RunnerStats", "lag", "report"]

log = logging.getLogger(__name__)


@dataclass
class RunnerStats:
    batches: int = 0
    events: int = 0
    faults: int = 0
    retries: int = 0
    last_error: str | None = None


async def lag(
    js: JetStreamContext, position: int | None, last_seq: int | None = None
) -> tuple[int | None, int | None]:
    """(lag_events, lag_ms) of a component at ``position`` (None: unknown), given the
    stream's last seq when the caller has read it already."""
    if position is None:
        return None, None
    try:
        last = last_seq
        if last is None:
            last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        lag_events = max(0, last - position)
        lag_ms = 0
        if lag_events:
            oldest = await js.get_msg(
                EVENTS_STREAM, position + 1, f"{EVENTS_SUBJECT_PREFIX}.>", next=True
            )
            if oldest.time is not None:
                lag_ms = max(0, int((time.time() - oldest.time.timestamp()) * 1000))
        return lag_events, lag_ms
    except Exception as exc:  # health must answer whatever NATS does
        log.debug("lag unknown: %r", exc)
        return None, None


def report(
    breaker: Breaker,
    stats: RunnerStats,
    *,
    standby: bool,
    position: int | None,
    shared: bool,
    lag_events: int | None,
    lag_ms: int | None,
) -> dict[str, Any]:
    """The runner's entry in ``/v1/health``."""
    return {
        "breaker": breaker.state,
        "standby": standby,
        "breaker_since": breaker.since,
        "position": position,
        "fetch": "shared" if shared else "own",
        "lag_events": lag_events,
        "lag_ms": lag_ms,
        "last_error": breaker.last_error if breaker.is_open else stats.last_error,
        "faults": stats.faults,
        "retries": stats.retries,
    }
