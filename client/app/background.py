"""The device's sync thread, as the app sees it: started for a server, restarted when the
user signs in somewhere else, stopped on exit; its progress handed to the UI thread.

The engine reports progress on the sync thread and keeps changing the same ``Progress``
object, so a copy crosses to the UI thread through ``on_ui``, the one adapter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future

from client.device import Device
from client.errors import ServerUnreachable
from client.sync.engine import Progress
from client.sync.runner import SignInAction, SyncThread

from .ui_thread import on_ui


class BackgroundSync:
    def __init__(
        self,
        device: Device,
        on_progress: Callable[[Progress], None],
        *,
        periodic_s: float = 30.0,
    ) -> None:
        self._device = device
        self._on_progress = on_progress
        self._periodic_s = periodic_s
        self._thread: SyncThread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.server: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def connect(self, server: str) -> None:
        """Sync with ``server`` from now on; returns at once (an old thread stops aside)."""
        with self._lock:
            if self._closed or (self._thread is not None and server == self.server):
                return
            old = self._thread
            new = SyncThread(
                self._device, server, on_progress=self._report, periodic_s=self._periodic_s
            )
            self._thread, self.server = new, server
        threading.Thread(
            target=self._swap, args=(old, new), name="outpost-sync-swap", daemon=True
        ).start()

    def sign_in(
        self, server: str, action: SignInAction, username: str, password: str
    ) -> Future[None]:
        """Sign up or in with ``server`` on the sync thread (started for it if need be);
        the future's callbacks run on the sync thread."""
        self.connect(server)
        with self._lock:
            thread = self._thread
        if thread is None:
            closing: Future[None] = Future()
            closing.set_exception(ServerUnreachable("the app is closing: sign in next time"))
            return closing
        return thread.sign_in(action, username, password)

    def change_password(
        self, server: str, username: str, password: str, new_password: str
    ) -> Future[None]:
        """Change the password on the sync thread (started for ``server`` if need be), then
        sign in with the new one."""
        self.connect(server)
        with self._lock:
            thread = self._thread
        if thread is None:
            closing: Future[None] = Future()
            closing.set_exception(ServerUnreachable("the app is closing: try next time"))
            return closing
        return thread.change_password(username, password, new_password)

    def log_out(self) -> Future[bool]:
        """End the session on the sync thread; True when the server ended it."""
        with self._lock:
            thread = self._thread
        if thread is None:
            done: Future[bool] = Future()
            done.set_result(False)
            return done
        return thread.log_out()

    def check_user(self, username: str, timeout_s: float = 10.0) -> Future[bool]:
        """The member check before a share (``SyncEngine.user_exists``) on the sync thread;
        ServerUnreachable when there is no server to ask, or it does not answer in time."""
        with self._lock:
            thread = self._thread
        if thread is None:
            offline: Future[bool] = Future()
            offline.set_exception(ServerUnreachable("no server to ask"))
            return offline

        async def ask() -> bool:
            try:
                return await asyncio.wait_for(thread.sync.engine.user_exists(username), timeout_s)
            except TimeoutError as exc:
                raise ServerUnreachable("the server did not answer in time") from exc

        return thread.submit(ask())

    def sync_now(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._thread.sync_now()

    def stop(self, timeout: float = 5) -> None:
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(timeout)

    def _swap(self, old: SyncThread | None, new: SyncThread) -> None:
        """Never two engines on one store: the new thread starts once the old one ended."""
        if old is not None:
            old.stop()
        with self._lock:
            if self._thread is new and not self._closed:
                new.start()

    def _report(self, progress: Progress) -> None:
        """On the sync thread: copy, and hand to the UI thread."""
        snapshot = dataclasses.replace(progress)
        on_ui(lambda: self._on_progress(snapshot))
