"""Password hashing under a concurrency cap, so that guessers cannot slow other users.

argon2 takes tens of milliseconds of CPU and 64 MiB per hash. Forty guessers hashing at
once took both cores and over a gigabyte, and another user's pull went from 15 ms to 5 s.
Each hash here runs on one thread (``parallelism=1``; stored hashes of other parameters
still verify, their parameters are in the hash).
Here at most ``concurrency`` hashes run at a time (in worker threads, off the event loop),
at most ``queue`` more wait, and any beyond that get 429 at once. ``in_flight`` and ``peak``
count the hashes actually running, for ``/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.errors import RateLimited

__all__ = ["PasswordHashing"]

T = TypeVar("T")


class PasswordHashing:
    def __init__(self, *, time_cost: int = 3, concurrency: int = 1, queue: int = 64) -> None:
        # One lane: argon2-cffi's default of 4 runs 4 threads per hash, so one sign-in
        # would take every core of a small machine however low the cap.
        self._hasher = PasswordHasher(time_cost=time_cost, parallelism=1)
        self._threads = anyio.CapacityLimiter(max(1, concurrency))
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
        if self._pending >= self._admitted:
            raise RateLimited("too many sign-ins at once: retry in 1 s", retry_after=1)
        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(self._counted, work, *args, limiter=self._threads)
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
