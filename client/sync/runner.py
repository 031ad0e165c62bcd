"""A long-lived device: sync now, on every live poke, and periodically as a fallback.

``LiveSync.run()`` is the loop (``outpost client run`` runs it in the foreground);
``SyncThread`` runs it in a background thread with its own event loop, so a UI thread
never waits on the network. The live stream reconnects with exponential backoff and
jitter; so do sync cycles after the server was unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

import httpx

from client.device import Device
from client.errors import ServerUnreachable, SignInRequired
from client.store.settings import Setting
from client.sync.engine import Progress, SyncEngine
from client.sync.transport import connect, live_lines

log = logging.getLogger(__name__)
T = TypeVar("T")
SignInAction = Literal["signup", "login"]

SIGN_IN_TIMEOUT_S = 10.0
"""How long a sign-in waits for the server before it counts as unreachable (the user can
cancel sooner, and continue offline at any time)."""


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: many devices do not come back in step."""
    return random.uniform(0, min(cap, base * 2**attempt))


class LiveSync:
    def __init__(
        self,
        device: Device,
        http: httpx.AsyncClient,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_live: Callable[[bool], None] | None = None,
        periodic_s: float = 30.0,
    ) -> None:
        self.engine = SyncEngine(device, http, on_progress)
        self._on_live = on_live or (lambda _: None)
        self.http = http
        self.periodic_s = periodic_s
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._reconnect = asyncio.Event()
        self.live_connected = False
        self.cycles = 0

    def wake(self) -> None:
        """Sync as soon as possible (a local action, a poke, "sync now")."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def sign_in(
        self,
        action: SignInAction,
        username: str,
        password: str,
        timeout_s: float = SIGN_IN_TIMEOUT_S,
    ) -> None:
        """Sign up or in with this device's server; then sync at once. A server that does
        not answer within ``timeout_s`` is unreachable (a sign-in is a person waiting)."""
        account = self.engine.signup if action == "signup" else self.engine.login
        try:
            await asyncio.wait_for(account(username, password), timeout_s)
        except TimeoutError as exc:
            raise ServerUnreachable(f"the server did not answer within {timeout_s:g} s") from exc
        self.wake()

    async def change_password(
        self, username: str, password: str, new_password: str, timeout_s: float = SIGN_IN_TIMEOUT_S
    ) -> None:
        """Change the account's password (also a one-time one), then sign in with the new
        one; every other session of the account ends."""
        device = self.engine.device
        try:
            await asyncio.wait_for(
                device.change_password(self.http, password, new_password, username), timeout_s
            )
            await asyncio.wait_for(self.engine.login(username, new_password), timeout_s)
        except TimeoutError as exc:
            raise ServerUnreachable(f"the server did not answer within {timeout_s:g} s") from exc
        self.wake()

    async def log_out(self) -> bool:
        """End this device's session (``Device.log_out``); unsynced changes are kept."""
        return await self.engine.device.log_out(self.http)

    async def run(self) -> None:
        live = asyncio.create_task(self._live())
        failures = 0
        try:
            while not self._stop.is_set():
                self._wake.clear()
                delay = self.periodic_s
                try:
                    await self.engine.sync()
                    self.cycles += 1
                    failures = 0
                    if not self.live_connected:
                        self._reconnect.set()  # the server is back: no need to wait out backoff
                except ServerUnreachable:
                    failures += 1
                    delay = backoff(failures)
                except SignInRequired:
                    delay = self.periodic_s  # nothing to do until someone signs in
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
        finally:
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live

    async def _live(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            token = self.engine.device.store.setting(Setting.TOKEN)
            if token is None:
                await asyncio.sleep(1)
                continue
            try:
                async with live_lines(self.http, token) as lines:
                    attempt = 0
                    self.live_connected = True
                    self._on_live(True)
                    self.wake()  # pokes sent before we listened are lost: catch up once
                    async for line in lines:
                        if line.startswith("event: poke"):
                            self.wake()
            except httpx.HTTPError as exc:
                log.info("live stream: %s: %s", type(exc).__name__, exc)
            finally:
                if self.live_connected:
                    self._on_live(False)
                self.live_connected = False
            attempt += 1
            self.wake()  # whatever was missed while away: pull it
            # Wait out the backoff, unless a sync shows the server is back; never less than
            # a second, so a live endpoint that keeps failing cannot spin.
            self._reconnect.clear()
            delay = backoff(attempt, base=0.5, cap=30)
            await asyncio.sleep(min(delay, 1.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconnect.wait(), timeout=max(0.0, delay - 1.0))


class SyncThread:
    """``LiveSync`` on a background thread; every method returns at once."""

    def __init__(
        self,
        device: Device,
        server: str,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        periodic_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: httpx's seam under the thread's client (tests); None is real HTTP."""
        self._loop = asyncio.new_event_loop()
        self._http = connect(server, transport=transport)
        self.sync = LiveSync(device, self._http, on_progress=on_progress, periodic_s=periodic_s)
        self._thread = threading.Thread(target=self._main, name="outpost-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sync_now(self) -> None:
        self._loop.call_soon_threadsafe(self.sync.wake)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run work on the sync thread; the future tells the outcome (its callbacks run on
        the sync thread: a UI hands them to its own thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def sign_in(
        self,
        action: SignInAction,
        username: str,
        password: str,
        timeout_s: float = SIGN_IN_TIMEOUT_S,
    ) -> Future[None]:
        """Sign up or in on the sync thread, the one that talks to the server; cancelling
        the future cancels the sign-in there."""
        return self.submit(self.sync.sign_in(action, username, password, timeout_s))

    def change_password(self, username: str, password: str, new_password: str) -> Future[None]:
        return self.submit(self.sync.change_password(username, password, new_password))

    def log_out(self) -> Future[bool]:
        return self.submit(self.sync.log_out())

    def stop(self, timeout: float = 10) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.sync.stop)
            self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.sync.run())
            self._loop.run_until_complete(self._http.aclose())
        finally:
            self._loop.close()
