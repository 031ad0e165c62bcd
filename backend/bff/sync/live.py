"""Live pokes: change notices from NATS become Server-Sent Events for the users they concern.

Every projector publishes a notice on ``outpost.changes`` after each commit; every BFF
process subscribes, so a push handled by one process pokes a live client of another. Each
connection keeps the boards its user can see (refreshed when a notice names the user, so
pokes stop for a board the user has lost) and coalesces notices into one poke. A user holds
at most ``max_per_user`` connections across all processes: a new one closes the oldest
(``live_cap.py``), whose stream ends after a comment saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.response import ServerSentEventMessage
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy import select

from backend import hops
from backend.bff.sync.live_cap import CapRegistry, LiveConnections
from backend.bff.sync.pull import InPlace, Page, SharedChanges, page_body
from backend.bff.sync.push import system_ms
from backend.consumers.component import WrittenViews
from backend.db import Database
from backend.nats.streams import CHANGES_SUBJECT, LIVE_SUBJECT
from backend.projector.models import Membership

log = logging.getLogger(__name__)

_USERS_PER_ANNOUNCEMENT = 200
"""Users per ``outpost.live`` message: far below NATS's 1 MB payload limit."""


@dataclass
class PreparedMessage(ServerSentEventMessage):
    """A message encoded once and sent as those bytes on every connection it goes to."""

    prepared: bytes = b""

    def encode(self) -> bytes:
        return self.prepared


SharedRead = Callable[[str, int, frozenset[str], InPlace | None], Awaitable[SharedChanges | None]]
"""``PullService.read_shared``: (cursor, limit, users, what the last notice handed over in
place) -> what changed after the cursor."""

Rendered = tuple[int, ServerSentEventMessage]
"""An ``event: changes`` message, and the size of its page's JSON (``max_bytes`` bounds)."""


RENDER_FRESH_S = 1.0
"""How long a shared page's encoding is reused (``ChangeHub.render``): its ``server_time``
stays within this of the moment a connection gets it."""


def render_page(page: Page) -> Rendered:
    """``event: changes`` with ``page`` as its data, encoded for the wire."""
    body = page_body(page, system_ms())
    message = ServerSentEventMessage(event="changes", data=body.decode())
    return len(body), PreparedMessage(prepared=message.encode())


class ChangeNotice(msgspec.Struct):
    component: str
    boards: list[str]
    usernames: list[str]
    watermark: int
    origin: str = ""
    """The hub that was handed this notice in its own process (``ConsumerRunner.notify_here``)
    and skips it when it comes back on NATS; empty for every other hub."""


class Listener:
    """One live connection: the user's boards, and a flag that coalesces pokes.

    While the boards are being read again (a notice named the user: a membership changed),
    notices about other boards wait for the new set, so that a board just shared is not
    missed and a board just lost does not poke.
    """

    def __init__(self, username: str) -> None:
        self.username = username
        self.id = uuid.uuid4().hex
        self.opened_at = time.time_ns()
        self.closed: str | None = None
        """Why the connection is being closed (the per-user cap), or None while it lives."""
        self.boards: set[str] = set()
        self.watermark = 0
        self.dirty = asyncio.Event()
        self.unread_changes = 1
        """Notices naming the user since the boards were last read (1: never read)."""
        self.boards_run = -1
        """The hub's run of in-place notices in which the boards were last read
        (``ChangeHub.offer_notice``): only boards read in the current run decide pages."""
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

    def close(self, reason: str) -> None:
        """End the connection at its next turn, whatever it waits for."""
        self.closed = reason
        self.dirty.set()

    def _poke(self, watermark: int) -> None:
        self.watermark = max(self.watermark, watermark)
        self.dirty.set()


@dataclass
class ChangeFeed:
    """``event: changes`` for one connection (``/v1/sync/live?since=``): each page is what a
    pull from the connection's cursor answers, built when the connection's turn comes, so a
    slow connection holds at most one page, never a queue of them. A turn sends up to
    ``pages_per_turn`` pages in a row (a new member's backfill follows its membership); a
    reset, a longer burst, or a page over ``max_bytes`` goes as a ``poke`` instead, and the
    device pulls; from then on the connection only pokes (the device reconnects with its
    new cursor)."""

    read: Callable[[str, int], Awaitable[Page]]
    """A pull for this connection's user: (cursor, limit) -> page."""
    cursor: str
    limit: int
    max_bytes: int
    render: Callable[[Page], Rendered] = render_page
    """The page as a message: the hub's ``render`` encodes a page shared by connections once."""
    pages_per_turn: int = 3
    fell_back: bool = False

    async def messages(self, watermark: int) -> AsyncIterator[ServerSentEventMessage]:
        """The messages for what changed after the cursor (none when nothing did)."""
        for _ in range(self.pages_per_turn):
            if self.fell_back:
                break
            page = await self.read(self.cursor, self.limit)
            watermark = max(watermark, page.watermark)  # the poke says how far the views are
            if page.reset:
                break
            if not page.changes and not page.has_more:
                return  # the notice was about rows this user's cursor already passed
            size, message = self.render(page)
            if size > self.max_bytes:
                break
            self.cursor = page.cursor
            hops.mark_rising("bff.poke", page.watermark)
            yield message
            if not page.has_more:
                return
        self.fell_back = True
        yield _poke(watermark)


def _poke(watermark: int) -> ServerSentEventMessage:
    hops.mark_rising("bff.poke", watermark)
    return ServerSentEventMessage(event="poke", data=f'{{"watermark":{watermark}}}')


class ChangeHub:
    """Every live connection of this process: pokes from change notices, and the per-user
    cap on connections, agreed with the other BFF processes over ``outpost.live``."""

    def __init__(
        self,
        nc: NatsClient,
        views: Database,
        poke_interval_s: float = 0.02,
        *,
        max_per_user: int = 20,
        announce_interval_s: float = 5.0,
    ) -> None:
        self._nc = nc
        self._poke_interval_s = poke_interval_s
        self._views = views
        self._listeners: set[Listener] = set()
        self._subscriptions: list[Subscription] = []
        self._decoder = msgspec.json.Decoder(ChangeNotice)
        self._cap = CapRegistry(
            origin=uuid.uuid4().hex,
            max_per_user=max(1, max_per_user),
            ttl_s=3 * announce_interval_s,
        )
        self._by_id: dict[str, Listener] = {}
        self._announce_interval_s = announce_interval_s
        self._to_announce: set[str] = set()
        self._announce_now = asyncio.Event()
        self._announcer: asyncio.Task[None] | None = None
        self._live_decoder = msgspec.json.Decoder(LiveConnections)
        self._pages: dict[tuple[str, str, int], asyncio.Future[Page]] = {}
        """Pages read since the last change notice, by (user, cursor, limit): a user's
        connections at the same cursor (several devices, all caught up) share one read."""
        self._shared: dict[tuple[str, int], asyncio.Future[SharedChanges | None]] = {}
        """What changed after each (cursor, limit) since the last change notice, read once
        for the users it poked: every caught-up connection of every user shares it."""
        self._poked: set[str] = set()
        """The users whose connections the last change notices poked."""
        self._in_place: InPlace | None = None
        """The rows the last notice's batch wrote, when the projector of this process
        handed them over with it, and the boards of the users it poked."""
        self._in_place_last: int | None = None
        """The last version of the last notice handed over in place, while every notice
        since has been (None after one from NATS): a run without a gap."""
        self._run = 0
        """Which run of in-place notices this is: one more after every gap."""
        self._rendered: dict[int, tuple[Page, Rendered, float]] = {}
        """Those pages encoded as messages (by the page's identity): a page shared by a
        thousand connections is encoded once, not a thousand times."""

    @property
    def connections(self) -> int:
        return len(self._listeners)

    async def start(self) -> None:
        self._subscriptions = [
            await self._nc.subscribe(CHANGES_SUBJECT, cb=self._on_notice),
            await self._nc.subscribe(LIVE_SUBJECT, cb=self._on_live),
        ]
        self._announcer = asyncio.create_task(self._announce_forever())

    async def stop(self) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcer
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        for listener in self._listeners:
            listener.dirty.set()

    @property
    def origin(self) -> str:
        """This hub's id, as the ``origin`` of notices handed to it in place."""
        return self._cap.origin

    async def _on_notice(self, message: Msg) -> None:
        self.offer_notice(message.data, from_nats=True)

    def offer_notice(
        self, data: bytes, written: WrittenViews | None = None, *, from_nats: bool = False
    ) -> None:
        """A change notice: from NATS, or handed over in place by the projector that runs
        in this process (``ConsumerRunner.notify_here``), whose NATS copy is then skipped,
        with the rows its batch ``written``."""
        try:
            notice = self._decoder.decode(data)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed change notice")
            return
        if from_nats and notice.origin == self.origin:
            return  # handed over in place already
        if hops.enabled():
            hops.mark("bff.notice", [notice.watermark])
        self._pages.clear()  # a commit since: pages read before it may lack its rows
        self._shared.clear()
        self._rendered.clear()
        # Boards a connection read decide an in-place page only if every notice since came
        # here in place: one from NATS (another process's projector, before this one took
        # the lease) can be lost, and a membership change it named with it. So a run of
        # in-place notices starts afresh after a gap, and only boards read during it count
        # (a connection reads its boards again at its next turn).
        if written is not None and written.after != self._in_place_last:
            self._run += 1
        self._in_place_last = None if written is None else written.last
        poked = self._poked
        poked.clear()
        # The boards of each poked user whose connections all know theirs: a notice that
        # names a user (a membership of theirs changed) leaves their connections reading
        # them again, and that user's page is then a pull of their own.
        boards: dict[str, set[str]] = {}
        unsure: set[str] = set()
        for listener in self._listeners:
            listener.offer(notice)
            if not listener.dirty.is_set():
                continue
            name = listener.username
            poked.add(name)
            if written is None:
                continue
            known = boards.setdefault(name, listener.boards)
            if (
                listener.stale_boards
                or listener.boards_run != self._run
                or known != listener.boards
            ):
                unsure.add(name)
        for name in unsure:
            del boards[name]
        self._in_place = None if written is None else InPlace(written, notice.watermark, boards)

    async def _on_live(self, message: Msg) -> None:
        try:
            announcement = self._live_decoder.decode(message.data)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed live connections announcement")
            return
        self._close(self._cap.learn(announcement))

    def _open(self, listener: Listener) -> None:
        self._listeners.add(listener)
        self._by_id[listener.id] = listener
        self._close(self._cap.open(listener.username, listener.id, listener.opened_at))
        self._announce(listener.username)

    def _forget(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        if self._by_id.pop(listener.id, None) is not None:
            self._cap.close(listener.username, listener.id)
            self._announce(listener.username)

    def _close(self, connections: list[str]) -> None:
        for connection in connections:
            listener = self._by_id.get(connection)
            if listener is not None and listener.closed is None:
                listener.close(
                    f"closed: more than {self._cap.max_per_user} live connections "
                    "for this user, and this one is the oldest"
                )
                self._forget(listener)

    def _announce(self, username: str) -> None:
        self._to_announce.add(username)
        self._announce_now.set()

    async def _announce_forever(self) -> None:
        """Tell the other processes what changed at once (a burst of opens is one message),
        and everything again every interval, so that they can tell we are still here."""
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self._announce_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._announce_now.wait(), timeout=max(0.0, next_heartbeat - loop.time())
                )
            self._announce_now.clear()
            users, self._to_announce = self._to_announce, set()
            if loop.time() >= next_heartbeat:
                users |= set(self._cap.users)
                next_heartbeat = loop.time() + self._announce_interval_s
            ordered = sorted(users)
            for start in range(0, len(ordered), _USERS_PER_ANNOUNCEMENT):
                chunk = ordered[start : start + _USERS_PER_ANNOUNCEMENT]
                announcement = LiveConnections(
                    self._cap.origin, {u: self._cap.local(u) for u in chunk}
                )
                try:
                    await self._nc.publish(LIVE_SUBJECT, msgspec.json.encode(announcement))
                except Exception as exc:  # NATS away: the cap holds per process until it is back
                    log.warning("could not announce live connections: %r", exc)
                    break

    def page_reader(
        self,
        username: str,
        read: Callable[[str, int], Awaitable[Page]],
        read_shared: SharedRead | None = None,
    ) -> Callable[[str, int], Awaitable[Page]]:
        """``read`` (a pull for ``username``), shared by that user's connections at one
        cursor until the next change notice; with ``read_shared``, the users a notice
        poked first share one read of what changed after their cursor, and the pull of
        their own is for what that cannot answer (a backfill, a removal, a reset)."""

        async def shared(cursor: str, limit: int) -> Page:
            if read_shared is not None:
                changes = await self._changes_after(cursor, limit, read_shared)
                ready = changes.page_for(username) if changes is not None else None
                if ready is not None:
                    return ready
            key = (username, cursor, limit)
            page = self._pages.get(key)
            if page is None:
                page = self._pages[key] = asyncio.ensure_future(read(cursor, limit))
                page.add_done_callback(lambda done: self._forget_failed(key, done))
            return await asyncio.shield(page)

        return shared

    async def _changes_after(
        self, cursor: str, limit: int, read_shared: SharedRead
    ) -> SharedChanges | None:
        """What changed after ``cursor``, read once for every connection at it until the
        next notice. The first connection to ask reads it itself, not in a task of its own:
        with the views used in place, a read of the rows a notice handed over completes with
        no turn of the loop, so that connection's page is written before whatever else the
        notice's commit woke (a task took three turns, and a push's answer ran in between).
        The others take its result. A read that failed or ended cancelled stays failed until
        the next notice: each connection at that cursor pulls on its own meanwhile."""
        key = (cursor, limit)
        changes = self._shared.get(key)
        if changes is None:
            changes = self._shared[key] = asyncio.get_running_loop().create_future()
            changes.add_done_callback(_retrieve)  # every waiter may have gone meanwhile
            try:
                found = await read_shared(cursor, limit, frozenset(self._poked), self._in_place)
            except asyncio.CancelledError:
                changes.cancel()
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this connection is being cancelled
                return None  # the read itself ended cancelled: this one pulls too
            except Exception as exc:  # this connection's own pull answers, or fails, as before
                changes.set_exception(exc)
                log.debug("a shared read of live changes failed: %r", exc)
                return None
            changes.set_result(found)
            return found
        try:
            return await asyncio.shield(changes)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not changes.cancelled() or (task is not None and task.cancelling()):
                raise  # this connection is being cancelled, not the read
            return None  # the read was cancelled: each connection's own pull answers
        except Exception:  # each connection's own pull answers, or fails, as before
            return None

    def render(self, page: Page) -> Rendered:
        """``render_page``, once for each page shared by connections (``page_reader``)
        until the next change notice, for at most ``RENDER_FRESH_S``: its ``server_time``
        (which a device's clock takes in) is when it was rendered, so a connection that
        comes later gets it rendered again."""
        now = time.monotonic()
        cached = self._rendered.get(id(page))
        if cached is not None and cached[0] is page and now - cached[2] < RENDER_FRESH_S:
            return cached[1]
        rendered = render_page(page)
        self._rendered[id(page)] = (page, rendered, now)
        return rendered

    def _forget_failed(self, key: tuple[str, str, int], page: asyncio.Future[Page]) -> None:
        if (page.cancelled() or page.exception() is not None) and self._pages.get(key) is page:
            del self._pages[key]  # the next connection reads again

    async def stream(
        self,
        username: str,
        keepalive_s: float,
        stopping: asyncio.Event,
        feed: ChangeFeed | None = None,
    ) -> AsyncIterator[ServerSentEventMessage]:
        """Pokes for one connection, or with ``feed`` the changes themselves, with a
        keep-alive comment when nothing happens."""
        listener = Listener(username)
        self._open(listener)
        if feed is not None:
            listener.dirty.set()  # what changed since the device's cursor goes out at once
        waker = asyncio.create_task(_wake_on_stop(stopping, listener))
        try:
            yield ServerSentEventMessage(comment="connected", data=None)
            while not stopping.is_set() and listener.closed is None:
                while listener.stale_boards:
                    await self._read_boards(listener)
                try:
                    # A deadline on this task, not wait_for's task and timer per wait: a
                    # notice wakes a thousand connections at once.
                    async with asyncio.timeout(keepalive_s):
                        await listener.dirty.wait()
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                    continue
                listener.dirty.clear()
                if stopping.is_set() or listener.closed is not None:
                    break
                if feed is None:
                    yield _poke(listener.watermark)
                else:
                    if listener.boards_run != self._run:  # read before the current run
                        await self._read_boards(listener)
                    async for message in feed.messages(listener.watermark):
                        yield message
                # Notices of the next moment join the next poke instead of making their own:
                # a burst of commits costs a connection a few pokes, not one per commit.
                await _pause(self._poke_interval_s, stopping)
            if listener.closed is not None and not stopping.is_set():
                yield ServerSentEventMessage(comment=listener.closed, data=None)
        finally:
            waker.cancel()
            self._forget(listener)

    async def _read_boards(self, listener: Listener) -> None:
        changes, run = listener.unread_changes, self._run
        listener.boards_read(await self._boards_of(listener.username), changes)
        listener.boards_run = run

    async def _boards_of(self, username: str) -> set[str]:
        async with self._views.read() as conn:
            rows = await conn.execute(
                select(Membership.board).where(
                    Membership.username == username, Membership.active.is_(True)
                )
            )
            return set(rows.scalars())


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _pause(seconds: float, stopping: asyncio.Event) -> None:
    """Sleep ``seconds``, or less once a stop is asked (seen within a quarter second). Not
    ``wait_for(stopping.wait())``: a thousand connections waiting on one event make every
    timeout a search of its list of waiters."""
    while seconds > 0 and not stopping.is_set():
        step = min(seconds, 0.25)
        await asyncio.sleep(step)
        seconds -= step


async def _wake_on_stop(stopping: asyncio.Event, listener: Listener) -> None:
    """End the connection's wait as soon as a stop is asked, not at its next keep-alive:
    the HTTP server waits for open responses to finish before it stops."""
    await stopping.wait()
    listener.dirty.set()
