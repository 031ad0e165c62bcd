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
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

import httpx
import msgspec

from client.device import Device
from client.errors import ServerUnreachable, SignInRequired
from client.store.settings import Setting
from client.sync.engine import Progress, SyncEngine
from client.sync.transport import connect, live_lines, sse_events

log = logging.getLogger(__name__)
T = TypeVar("T")
SignInAction = Literal["signup", "login"]

SIGN_IN_TIMEOUT_S = 10.0
"""How long a sign-in waits for the server before it counts as unreachable (the user can
cancel sooner, and continue offline at any time)."""
STOP_GRACE_S = 0.5
"""How long a stopping sync thread may take to end its cycle before its requests are
cancelled (a server that does not answer must not hold up the next one)."""


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: many devices do not come back in step."""
    return random.uniform(0, min(cap, base * 2**attempt))


class LiveSync:
    """Sync now, on live news, and periodically. The live stream carries the changes
    themselves (``event: changes``, pull pages from this device's cursor) once the device
    has a cursor; it says ``poke`` when the device must pull instead (a reset, a burst of
    several pages), and the device pulls and reconnects from its new cursor. ``changes=False``
    keeps to pokes and a pull after each."""

    def __init__(
        self,
        device: Device,
        http: httpx.AsyncClient,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_live: Callable[[bool], None] | None = None,
        on_poke: Callable[[str], None] | None = None,
        periodic_s: float = 30.0,
        changes: bool = True,
    ) -> None:
        self.engine = SyncEngine(device, http, on_progress)
        self._on_live = on_live or (lambda _: None)
        self._on_poke = on_poke or (lambda _: None)
        """Called with the event's name as each poke or page arrives (the bench times it)."""
        self.http = http
        self.periodic_s = periodic_s
        self.changes = changes
        self._wake = asyncio.Event()
        self._push_wanted = asyncio.Event()
        self._stop = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._stream_stale = asyncio.Event()
        self._stream_cursor: str | None = None
        """The cursor the live stream's next page follows on from (None: pokes only)."""
        self._need_pull = True
        self.live_connected = False
        self.cycles = 0

    def wake(self) -> None:
        """Sync as soon as possible (a local action, "sync now"). What is waiting to be sent
        goes at once, even while a cycle is busy downloading."""
        self._wake.set()
        self._push_wanted.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._push_wanted.set()

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

    @property
    def stream_brings_changes(self) -> bool:
        """The live stream is up and its pages follow on from this device's cursor: a cycle
        need not pull."""
        return (
            self.live_connected
            and self._stream_cursor is not None
            and self._stream_cursor == self.engine.device.store.setting(Setting.CURSOR)
        )

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
        pusher = asyncio.create_task(self._push_soon())
        failures = 0
        try:
            while not self._stop.is_set():
                self._wake.clear()
                delay = self.periodic_s
                pull = self._need_pull or not self.stream_brings_changes
                self._need_pull = False
                try:
                    await self.engine.sync(pull=pull)
                    self.cycles += 1
                    failures = 0
                    if not self.live_connected:
                        self._reconnect.set()  # the server is back: no need to wait out backoff
                    elif pull and self.changes:
                        self._stream_stale.set()  # the cursor moved: the stream follows it
                except ServerUnreachable:
                    failures += 1
                    delay = backoff(failures)
                    self._need_pull = True
                except SignInRequired:
                    delay = self.periodic_s  # nothing to do until someone signs in
                    self._need_pull = True
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    self._need_pull = True  # the periodic pull: a lost notice is caught here
        finally:
            for task in (live, pusher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _push_soon(self) -> None:
        """Uploads between cycles: a local action's event leaves at once instead of waiting
        for the download of the cycle that is running. A failure here is left to the next
        cycle, which retries and reports it."""
        while not self._stop.is_set():
            await self._push_wanted.wait()
            self._push_wanted.clear()
            if self._stop.is_set():
                return
            try:
                await self.engine.push_pending()
            except (ServerUnreachable, SignInRequired) as exc:
                log.debug("upload between cycles: %s", exc)
            except Exception:  # the cycle meets the same fault and raises it where it counts
                log.warning("upload between cycles failed", exc_info=True)

    def _pull_soon(self) -> None:
        self._need_pull = True
        self._wake.set()

    async def _live(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            token = self.engine.device.store.setting(Setting.TOKEN)
            if token is None:
                await asyncio.sleep(1)
                continue
            cursor = self.engine.device.store.setting(Setting.CURSOR) if self.changes else None
            stale = False
            try:
                async with live_lines(self.http, token, since=cursor) as lines:
                    attempt = 0
                    self._stream_cursor = cursor
                    self._stream_stale.clear()
                    self.live_connected = True
                    self._on_live(True)
                    if cursor is None:
                        self._pull_soon()  # pokes sent before we listened are lost: catch up
                    stale = await self._follow(lines)
            except httpx.HTTPError as exc:
                log.info("live stream: %s: %s", type(exc).__name__, exc)
            finally:
                if self.live_connected:
                    self._on_live(False)
                self.live_connected = False
                self._stream_cursor = None
            if stale:
                continue  # a pull moved the cursor: reconnect from it at once
            attempt += 1
            self._pull_soon()  # whatever was missed while away: pull it
            # Wait out the backoff, unless a sync shows the server is back; never less than
            # a second, so a live endpoint that keeps failing cannot spin.
            self._reconnect.clear()
            delay = backoff(attempt, base=0.5, cap=30)
            await asyncio.sleep(min(delay, 1.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconnect.wait(), timeout=max(0.0, delay - 1.0))

    async def _follow(self, lines: AsyncIterator[str]) -> bool:
        """Read the stream until it ends (False) or a pull moved the cursor past it (True);
        a stream that fails raises its ``httpx.HTTPError``."""
        reader = asyncio.create_task(self._read(lines))
        stale = asyncio.create_task(self._stream_stale.wait())
        try:
            await asyncio.wait({reader, stale}, return_when=asyncio.FIRST_COMPLETED)
            moved = stale.done()
        finally:
            stale.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stale
            with contextlib.suppress(asyncio.CancelledError):
                await reader  # the reader's own failure, if it failed, goes up from here
        return moved

    async def _read(self, lines: AsyncIterator[str]) -> None:
        async for event, data in sse_events(lines):
            if event not in ("poke", "changes"):
                continue
            self._on_poke(event)
            if event == "changes" and self._stream_cursor is not None:
                page = msgspec.json.decode(data)
                if await self.engine.apply_live_page(page, self._stream_cursor):
                    self._stream_cursor = page["cursor"]
                    continue
                if not page.get("reset") and self.engine.moved_past(self._stream_cursor):
                    # A pull took the cursor past this stream (its pages were on the way):
                    # follow from the new cursor, which brings whatever comes after it. A
                    # pull here would move the cursor again while the stream catches up,
                    # and each page still on the way would ask for yet another.
                    self._stream_stale.set()
                    continue
            self._pull_soon()


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
        """Stop and wait for the thread to end: a cycle between requests ends on its own
        within ``STOP_GRACE_S``; one waiting on a server that does not answer is cancelled
        (what it sent is sent again later: the server takes an event once)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.sync.stop)
            self._thread.join(min(timeout, STOP_GRACE_S))
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._cancel_all)
            self._thread.join(timeout)

    def _cancel_all(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            with contextlib.suppress(asyncio.CancelledError):  # a stop that could not wait
                self._loop.run_until_complete(self.sync.run())
            self._loop.run_until_complete(self._http.aclose())
        finally:
            self._loop.close()
