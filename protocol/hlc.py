"""The hybrid logical clock that stamps every event.

An hlc is the string ``"<wall ms, 13 digits>:<counter, 5 digits>:<node>"``; because the
numbers have fixed widths, comparing two stamps as strings orders them by wall time, then
counter, then node. The node is the device id (the backend's compensations add ``~saga``).

The clock guarantees that every stamp it makes is greater, in (wall, counter), than every
stamp it made or took in before, even when the wall clock goes backwards. That is what
lets a device's next edit of a field win over everything it has seen.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

from protocol import patterns
from protocol.errors import ClockError

__all__ = [
    "MAX_COUNTER",
    "SAGA_SUFFIX",
    "HybridLogicalClock",
    "Timestamp",
    "format_hlc",
    "parse_hlc",
    "saga_hlc",
    "system_ms",
]

MAX_COUNTER = 99_999
SAGA_SUFFIX = patterns.SAGA_SUFFIX
_HLC_RE = patterns.compile_whole(patterns.HLC)
_NODE_RE = patterns.compile_whole(rf"{patterns.DEVICE_ID}(?:{SAGA_SUFFIX})?")

WallClock = Callable[[], int]


def system_ms() -> int:
    """The machine's wall clock in integer milliseconds."""
    return time.time_ns() // 1_000_000


class Timestamp(NamedTuple):
    """A parsed hlc. Tuples order like the strings they format to."""

    wall: int
    counter: int
    node: str

    def __str__(self) -> str:
        return format_hlc(self.wall, self.counter, self.node)


def format_hlc(wall: int, counter: int, node: str) -> str:
    if not 10**12 <= wall < 10**13:
        raise ClockError(f"hlc wall time {wall} is not a 13-digit millisecond count")
    if not 0 <= counter <= MAX_COUNTER:
        raise ClockError(f"hlc counter {counter} is outside 0..{MAX_COUNTER}")
    if not isinstance(node, str) or not _NODE_RE.fullmatch(node):
        raise ClockError(
            f"hlc node {node!r} is not a device id (1..64 of A-Z a-z 0-9 _ . -, then ~saga"
            " on a compensation)"
        )
    return f"{wall:013d}:{counter:05d}:{node}"


def parse_hlc(value: str) -> Timestamp:
    """Parse ``"1764136800000:00000:d-7f3a"``; raise ClockError naming what is wrong.

    It accepts exactly what ``format_hlc`` writes: ASCII digits, a 13-digit wall that does
    not start with 0, a device id as the node, and nothing after it (no newline).

    The latest stamps parsed are kept: a push reads each event's stamp about five times
    (its checks, the devices it names, the clock skew), and a ``Timestamp`` is immutable."""
    if not isinstance(value, str):
        raise _not_an_hlc(value)
    return _parse(value)


@functools.lru_cache(maxsize=4096)
def _parse(value: str) -> Timestamp:
    match = _HLC_RE.fullmatch(value)
    if match is None:
        raise _not_an_hlc(value)
    return Timestamp(int(match.group(1)), int(match.group(2)), match.group(3))


def _not_an_hlc(value: object) -> ClockError:
    return ClockError(f"hlc {value!r} is not '<13-digit wall ms>:<5-digit counter>:<device id>'")


def saga_hlc(cause_hlc: str) -> str:
    """The stamp of a compensation: the cause's, with ``~saga`` on the node.

    It sorts right after the cause (same wall and counter, longer node) and before any
    later edit, so a compensation undoes its cause and nothing newer.
    """
    wall, counter, node = parse_hlc(cause_hlc)
    return format_hlc(wall, counter, node + SAGA_SUFFIX)


class HybridLogicalClock:
    """A hybrid logical clock for one node, with an injectable wall clock and offset.

    ``offset_ms`` corrects the wall clock (after a ``clock_skew`` rejection, or when the
    conflict tool simulates a device whose clock is a day ahead). ``last`` is the highest
    (wall, counter) the clock has made or taken in; persist it with ``state`` to keep the
    clock monotonic across restarts.
    """

    def __init__(
        self,
        node: str,
        wall_clock: WallClock = system_ms,
        *,
        offset_ms: int = 0,
        last: str | None = None,
    ) -> None:
        format_hlc(10**12, 0, node)  # validates the node
        self._node = node
        self._wall_clock = wall_clock
        self.offset_ms = offset_ms
        self._last: tuple[int, int] = (0, 0)
        if last is not None:
            stamp = parse_hlc(last)
            self._last = (stamp.wall, stamp.counter)

    @property
    def node(self) -> str:
        return self._node

    @property
    def last(self) -> str | None:
        """The highest stamp made or taken in, on this node, or None for a new clock."""
        wall, counter = self._last
        return format_hlc(wall, counter, self._node) if wall else None

    def physical_ms(self) -> int:
        """The corrected wall clock: what this node believes the time is."""
        return self._wall_clock() + self.offset_ms

    def now(self) -> str:
        """A new stamp, greater than every stamp this clock has made or taken in."""
        physical = self.physical_ms()
        wall, counter = self._last
        if physical > wall:
            wall, counter = physical, 0
        else:
            counter += 1
            if counter > MAX_COUNTER:
                wall, counter = wall + 1, 0
        self._last = (wall, counter)
        return format_hlc(wall, counter, self._node)

    def receive(self, remote: str) -> None:
        """Take in a stamp seen elsewhere (a pulled hlc): later stamps here will exceed it."""
        stamp = parse_hlc(remote)
        self._last = max(self._last, (stamp.wall, stamp.counter))

    def receive_time(self, server_time_ms: int) -> None:
        """Take in a server's clock reading (``server_time``)."""
        self._last = max(self._last, (server_time_ms, 0))

    def rebase(self, server_time_ms: int, floor: str | None) -> None:
        """Recover after ``clock_skew``: trust the server's time, forget rejected stamps.

        The wall clock is corrected by its offset to ``server_time_ms``, and the clock
        restarts from ``floor``, the highest hlc this device had accepted or has pulled;
        stamps the backend rejected do not count, so they no longer hold the clock ahead.
        """
        self.offset_ms = server_time_ms - self._wall_clock()
        self._last = (0, 0)
        if floor is not None:
            self.receive(floor)
