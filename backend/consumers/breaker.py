"""The runner's circuit breaker, and what counts as an outage rather than a bad message.

An **outage** (the component's database or NATS is unreachable) says nothing about the
messages: the breaker *opens*, consumption pauses with backoff, nothing is faulted and no
message's retry budget is spent. The first successful batch after that (or, with nothing
to process, a successful re-subscription) *closes* it again. Anything else is a message
failure, which the runner retries and in the end faults (``runner.py``).

``Breaker`` is a plain state machine with no I/O: the runner logs what its transitions
return, so it can be tested on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

__all__ = ["Breaker", "outage_kind"]

# SQLSTATE classes of a server that is away, not of a statement that is wrong: connection
# exceptions, operator intervention (shutdown, starting up), insufficient resources, system.
_OUTAGE_SQLSTATES = ("08", "57P", "53", "58")


def outage_kind(exc: BaseException) -> str | None:
    """``"stream"`` or ``"database"`` when ``exc`` means NATS or the database is unreachable
    (an outage: wait, fault nothing), else None (something about the messages themselves)."""
    if isinstance(exc, (nats.errors.Error, nats.js.errors.Error)):
        return "stream"
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return "database"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "database"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, ConnectionError)):  # refused, reset, TimeoutError
            return "database"
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATES):
            return "database"
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Breaker:
    """Open while the component's database or NATS is away; closed otherwise."""

    state: str = "closed"
    since: int | None = None
    """When it opened (ms), while open."""
    last_error: str | None = None
    openings: int = 0
    clock: Callable[[], int] = field(default=_now_ms, repr=False, compare=False)
    """Milliseconds now; a test passes its own."""

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def open(self, error: str) -> bool:
        """An outage happened (``error`` says which); True when this opened the breaker,
        False when it was open already."""
        opened = not self.is_open
        if opened:
            self.state, self.since = "open", self.clock()
            self.openings += 1
        self.last_error = error
        return opened

    def close(self) -> int | None:
        """Work succeeded: close. Returns how long it was open (ms), None if it was not."""
        if not self.is_open:
            return None
        was_open_ms = self.clock() - (self.since or 0)
        self.state, self.since = "closed", None
        return was_open_ms
