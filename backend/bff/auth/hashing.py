"""Password hashing under a concurrency cap, so that guessers cannot slow other users.

argon2 takes tens of milliseconds of CPU and 64 MiB per hash. Forty guessers hashing at
once took both cores and over a gigabyte, and another user's pull went from 15 ms to 5 s.
Each hash here runs on one thread (``parallelism=1``; stored hashes of other parameters
still verify, their parameters are in the hash).
Here at most ``concurrency`` hashes run at a time (in worker threads, off the event loop),
at most ``queue`` more wait, and any beyond that get 429 at once, unless it ranks above the
last one waiting, who then gets the 429 in its place (so guessers filling the queue never
turn the owner away). ``in_flight`` and ``peak``
count the hashes actually running, for ``/metrics``. Waiting checks are served by
``check_order`` (set by the sign-in throttle: the failures of the request's (username,
address) so far), fewest first, so the owner's sign-in from an address that never failed
goes ahead of forty guessers' queue; equal orders are served first come, first served.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.errors import RateLimited

__all__ = ["PasswordHashing", "check_order"]

T = TypeVar("T")

check_order: ContextVar[int] = ContextVar("check_order", default=0)
"""Where a password check of this request stands in the queue: lower goes first."""


class _OrderedSlots:
    """At most ``slots`` holders at once; waiters are let in lowest order first."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, order: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (order, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # let in, then cancelled: pass the slot on
            raise

    def evict_worse(self, order: int, refusal: Exception) -> bool:
        """Make room for a waiter of ``order``: the last in line (highest order, latest
        arrival), if it ranks below ``order``, leaves the queue with ``refusal``."""
        live = [entry for entry in self._waiting if not entry[2].done()]
        if not live:
            return False
        worst = max(live, key=lambda entry: (entry[0], entry[1]))
        if worst[0] <= order:
            return False
        self._waiting.remove(worst)
        heapq.heapify(self._waiting)
        worst[2].set_exception(refusal)
        return True

    def release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


def _full() -> RateLimited:
    return RateLimited("too many sign-ins at once: retry in 1 s", retry_after=1)


class PasswordHashing:
    def __init__(self, *, time_cost: int = 3, concurrency: int = 1, queue: int = 64) -> None:
        # One lane: argon2-cffi's default of 4 runs 4 threads per hash, so one sign-in
        # would take every core of a small machine however low the cap.
        self._hasher = PasswordHasher(time_cost=time_cost, parallelism=1)
        self._slots = _OrderedSlots(max(1, concurrency))
        self._admitted = max(1, concurrency) + max(0, queue)
        self._pending = 0
        self._lock = threading.Lock()
        self.in_flight = 0
        """Hashes running now."""
        self.peak = 0
        """The most hashes that ever ran at once in this process."""

    def hash_now(self, password: str) -> str:
        """Hash on the calling thread, uncapped: for setup, never for a request."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored: str, password: str) -> bool:
        return await self._run(self._verify, stored, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, work: Callable[[str, str], T] | Callable[[str], T], *args: str) -> T:
        order = check_order.get()
        # Full: a check that ranks higher (the owner from a known address) takes the place
        # of the last guesser in line, who gets the 429 instead (and counts in ``_pending``
        # until its task wakes to it).
        if self._pending >= self._admitted and not self._slots.evict_worse(order, _full()):
            raise _full()
        self._pending += 1
        try:
            await self._slots.acquire(order)
            try:
                return await anyio.to_thread.run_sync(self._counted, work, *args)
            finally:
                self._slots.release()
        finally:
            self._pending -= 1

    def _counted(self, work: Callable[..., T], *args: str) -> T:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            return work(*args)
        finally:
            with self._lock:
                self.in_flight -= 1
