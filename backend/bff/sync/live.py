"""Live pokes: change notices from NATS become Server-Sent Events for the users they concern.

Every projector publishes a notice on ``outpost.changes`` after each commit; every BFF
process subscribes, so a push handled by one process pokes a live client of another. Each
connection keeps the boards its user can see (refreshed when a notice names the user, so
pokes stop for a board the user has lost) and coalesces notices into one poke.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from litestar.response import ServerSentEventMessage
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy import select

from backend.db import Database
from backend.nats.streams import CHANGES_SUBJECT
from backend.projector.models import Membership

log = logging.getLogger(__name__)


class ChangeNotice(msgspec.Struct):
    component: str
    boards: list[str]
    usernames: list[str]
    watermark: int


class Listener:
    """One live connection: the user's boards, and a flag that coalesces pokes.

    While the boards are being read again (a notice named the user: a membership changed),
    notices about other boards wait for the new set, so that a board just shared is not
    missed and a board just lost does not poke.
    """

    def __init__(self, username: str) -> None:
        self.username = username
        self.boards: set[str] = set()
        self.watermark = 0
        self.dirty = asyncio.Event()
        self.unread_changes = 1
        """Notices naming the user since the boards were last read (1: never read)."""
        self._undecided: dict[str, int] = {}

    @property
    def stale_boards(self) -> bool:
        return self.unread_changes > 0

    def offer(self, notice: ChangeNotice) -> None:
        if self.username in notice.usernames:
            self.unread_changes += 1
            self._poke(notice.watermark)
        elif self.stale_boards:
            for board in notice.boards:
                self._undecided[board] = max(self._undecided.get(board, 0), notice.watermark)
        elif not self.boards.isdisjoint(notice.boards):
            self._poke(notice.watermark)

    def boards_read(self, boards: set[str], changes_before: int) -> None:
        """The boards, as read after ``changes_before`` notices named the user."""
        self.boards = boards
        self.unread_changes -= changes_before
        if self.stale_boards:
            return  # named again during the read: the next read decides
        for board, watermark in self._undecided.items():
            if board in boards:
                self._poke(watermark)
        self._undecided.clear()

    def _poke(self, watermark: int) -> None:
        self.watermark = max(self.watermark, watermark)
        self.dirty.set()


class ChangeHub:
    def __init__(self, nc: NatsClient, views: Database, poke_interval_s: float = 0.02) -> None:
        self._nc = nc
        self._poke_interval_s = poke_interval_s
        self._views = views
        self._listeners: set[Listener] = set()
        self._subscription: Subscription | None = None
        self._decoder = msgspec.json.Decoder(ChangeNotice)

    @property
    def connections(self) -> int:
        return len(self._listeners)

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(CHANGES_SUBJECT, cb=self._on_notice)

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        for listener in self._listeners:
            listener.dirty.set()

    async def _on_notice(self, message: Msg) -> None:
        try:
            notice = self._decoder.decode(message.data)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed change notice")
            return
        for listener in self._listeners:
            listener.offer(notice)

    async def stream(
        self, username: str, keepalive_s: float, stopping: asyncio.Event
    ) -> AsyncIterator[ServerSentEventMessage]:
        """Pokes for one connection, with a keep-alive comment when nothing happens."""
        listener = Listener(username)
        self._listeners.add(listener)
        waker = asyncio.create_task(_wake_on_stop(stopping, listener))
        try:
            yield ServerSentEventMessage(comment="connected", data=None)
            while not stopping.is_set():
                while listener.stale_boards:
                    changes = listener.unread_changes
                    listener.boards_read(await self._boards_of(username), changes)
                try:
                    await asyncio.wait_for(listener.dirty.wait(), timeout=keepalive_s)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                    continue
                listener.dirty.clear()
                if stopping.is_set():
                    break
                data = msgspec.json.encode({"watermark": listener.watermark}).decode()
                yield ServerSentEventMessage(event="poke", data=data)
                # Notices of the next moment join the next poke instead of making their own:
                # a burst of commits costs a connection a few pokes, not one per commit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=self._poke_interval_s)
        finally:
            waker.cancel()
            self._listeners.discard(listener)

    async def _boards_of(self, username: str) -> set[str]:
        async with self._views.read() as conn:
            rows = await conn.execute(
                select(Membership.board).where(
                    Membership.username == username, Membership.active.is_(True)
                )
            )
            return set(rows.scalars())


async def _wake_on_stop(stopping: asyncio.Event, listener: Listener) -> None:
    """End the connection's wait as soon as a stop is asked, not at its next keep-alive:
    the HTTP server waits for open responses to finish before it stops."""
    await stopping.wait()
    listener.dirty.set()
