"""The sync engine: push the outbox, pull the views, keep the device's clock honest.

``SyncEngine.sync()`` runs one cycle: push every pending event (batches split by count and
by bytes), then pull until ``has_more`` is false. Its rules, from SPEC sections 3 and 6:

- ``accepted``/``duplicate``: the event stays pending, with its ``seq``, until a pull's
  watermark covers it: then the confirmed state has it and the view cannot flicker back;
- ``clock_skew``: correct the clock by the offset to ``server_time``, restart it from the
  highest hlc accepted or pulled, restamp those events and send them again;
- any other rejection: out of the outbox and the view, kept with its reason, a notice;
- a batch refused whole (400, 413, 422, or a 500 that repeats for the same bytes): split it
  in halves until the event(s) at fault are alone, reject those locally as above, with the
  server's detail, and push the rest: one bad event never stops a device for ever. A lone
  event refused with 500 is rejected only when the server took another push in the same
  cycle, or as the cycle's one such rejection, so a server that fails on everything cannot
  empty an outbox;
- 408 (the body came too slowly for the server): send smaller batches, never reject;
- 503 or a broken connection: stop; the next cycle resends the same bytes (a split in
  progress goes on where it stopped);
- 401: use the refresh token once; else sign-in is required and everything stays pending;
- ``reset``: rebuild the confirmed state aside, swap it in, push the whole outbox again,
  with the reflected events kept for a while (``outbox.KEEP_SENT_MS``) ahead of it: a
  backend restored from a backup gets back what it lost;
- a board removed from the user: purge it, its pending events become rejected, a notice.
An upload error never stops downloads: the pull runs whatever the push did.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from client.device import Device
from client.errors import (
    InvalidAction,
    PasswordChangeRequired,
    ServerUnreachable,
    SignInRequired,
)
from client.store.notices import NoticeKind, add_notice
from client.store.outbox import Outbox
from client.store.settings import Setting, read_setting, write_setting
from client.store.view import (
    confirm_pulled,
    event_of,
    keys_of_board,
    readable_event,
    refold,
    refold_confirmed,
)
from client.sync.transport import bearer, body_of, detail_of
from protocol import PROTOCOL_VERSIONS, merge, parse_hlc
from protocol.merge import EntityKey, PulledChange
from protocol.saga import rejection_message

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024 - 4096  # room for the batch's own envelope
PULL_LIMIT = 1000
RATE_LIMIT_WAITS = 3
"""How many times in a row a request refused for the user's request rate (429) is sent
again after the server's ``Retry-After``, before the sync gives up for now (ServerUnreachable,
and the runner's backoff): a big first sync goes on at the rate the server allows."""
RATE_LIMIT_MAX_WAIT_S = 10.0
"""The longest ``Retry-After`` waited out in a request; a longer one gives up at once."""
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
"""How far ahead of the server's clock an hlc may be (SPEC section 6)."""
REMOVED_BOARD = "removed_from_board"
REFUSED_WHOLE = {400: "unreadable", 413: "too_large", 422: "unreadable", 500: "server_error"}
"""Answers that refuse a push as a whole, and the reason an event alone so refused gets."""
_WHY_REFUSED = {
    "unreadable": "the server cannot read it",
    "too_large": "it is too large for the server to take",
    "server_error": "the server fails on it every time it is sent",
}


@dataclass
class Progress:
    """What the UI shows: the state, why, how far a long pull has come, what is pending."""

    state: str = "offline"
    """offline | connecting | syncing | up_to_date | error | signed_out"""
    detail: str = ""
    pending: int = 0
    """Changes not yet confirmed: waiting to send, and ``sent``."""
    sent: int = 0
    """Of ``pending``: stored by the backend, awaiting a pull that confirms them."""
    pulled: int = 0
    last_synced: float | None = None


@dataclass
class CycleResult:
    pushed: int = 0
    rejected: int = 0
    restamped: int = 0
    pulled: int = 0
    errors: list[str] = field(default_factory=list)
    reset: bool = False
    """The pull rebuilt the confirmed state (views rebuilt, or the backend restored)."""


class SyncEngine:
    def __init__(
        self,
        device: Device,
        http: httpx.AsyncClient,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.device = device
        self.http = http
        """The one seam to the network (``client.sync.transport.connect``); not closed here."""
        self.progress = Progress()
        self._count_pending()
        self._on_progress = on_progress or (lambda _: None)
        self._lock = asyncio.Lock()
        self._push_lock = asyncio.Lock()
        """One upload at a time: a cycle's, or one a local action asked for meanwhile."""
        self._refresh_lock = asyncio.Lock()
        self._pull_lock = asyncio.Lock()
        """One download at a time: a cycle's pull, or a page the live stream brought. A page
        is applied under the push lock too (taken second, never the other way round)."""
        self._suspect: int | None = None
        """The first this many unsent events hold one the server refuses whole (a split in
        progress): the next batch is the first half of them."""

    # accounts

    async def signup(self, username: str, password: str) -> None:
        await self._session("/v1/auth/signup", {"username": username, "password": password}, 201)

    async def login(self, username: str, password: str) -> None:
        await self._session("/v1/auth/token", {"username": username, "password": password}, 200)

    async def user_exists(self, username: str) -> bool:
        """The member check before a share is queued (``GET /v1/users/{username}``): True
        when an account of that name exists. ``InvalidAction`` when it is not a username;
        ``ServerUnreachable`` when the server cannot answer now (also when this user has
        made too many checks: the server limits them so they cannot list the usernames)."""
        reply = await self._call("GET", f"/v1/users/{quote(username, safe='')}")
        if reply.status_code == 204:
            return True
        if reply.status_code == 404:
            return False
        if reply.status_code == 400:
            raise InvalidAction(detail_of(reply))
        raise ServerUnreachable(f"cannot check the name now: HTTP {reply.status_code}")

    async def _session(self, path: str, credentials: dict[str, str], expected: int) -> None:
        owner = self.device.username
        if owner is not None and owner != credentials["username"]:
            raise InvalidAction(
                f"this profile belongs to {owner}: use another profile folder for "
                f"{credentials['username']}"
            )
        reply = await self._request(
            "POST",
            path,
            body=msgspec.json.encode(credentials),
            unreachable="cannot reach the server",
        )
        if reply.status_code == 403 and _password_token(reply):
            raise PasswordChangeRequired(detail_of(reply) or "choose a new password")
        if reply.status_code != expected:
            raise SignInRequired(detail_of(reply) or f"HTTP {reply.status_code}")
        self._store_session(body_of(reply))

    def _store_session(self, session: dict[str, Any]) -> None:
        previous = self.device.username
        with self.device.store.write() as conn:
            write_setting(conn, Setting.USERNAME, session["username"])
            write_setting(conn, Setting.TOKEN, session["token"])
            write_setting(conn, Setting.REFRESH_TOKEN, session["refresh_token"])
            if previous != session["username"]:
                # Pending events were folded as "(you)": show them as this user's now.
                boards = [r[0] for r in conn.execute("SELECT DISTINCT board FROM view")]
                for board in boards:
                    refold(conn, keys_of_board(conn, board), session["username"])

    # one cycle

    async def sync(self, *, pull: bool = True) -> CycleResult:
        """Push, then pull; raise SignInRequired or ServerUnreachable when either could not
        be done (the pull runs even when the push failed). Without ``pull`` (the live stream
        brings the changes themselves), only push."""
        async with self._lock:
            result = CycleResult()
            if self.device.store.setting(Setting.TOKEN) is None:
                await self._probe()
                self._report("signed_out", "sign in to sync")
                raise SignInRequired("sign in to sync: your changes are kept on this device")
            self._report("syncing")
            push_error: ServerUnreachable | None = None
            try:
                async with self._push_lock:
                    await self._push(result)
            except SignInRequired as exc:
                self._report("signed_out", f"{exc}: your changes are kept")
                raise  # no session: no download either
            except ServerUnreachable as exc:
                push_error = exc  # downloads still run
                result.errors.append(str(exc))
            rounds = (2 if push_error is None else 1) if pull else 0
            for round_ in range(rounds):
                if round_ == 1:
                    if not (result.reset and self.device.pending_count()):
                        break
                    # A reset put every kept event back in the outbox: push it now, so a
                    # restored backend gets back what it lost within this cycle.
                    try:
                        async with self._push_lock:
                            await self._push(result)
                    except ServerUnreachable as exc:
                        push_error = exc
                        result.errors.append(str(exc))
                try:
                    await self._pull(result)
                except SignInRequired:
                    self._report("signed_out", "sign in again: your changes are kept")
                    raise
                except ServerUnreachable as exc:
                    self._report("offline", str(exc))
                    raise
            if push_error is not None:
                self._report("error", f"upload failed: {push_error}")
                raise push_error  # after the download: an upload error never stops it
            else:
                self.progress.last_synced = time.time()
                self._report("up_to_date")
            return result

    # push

    async def push_pending(self) -> CycleResult:
        """Upload what is waiting now, without a download: what a local action asks for
        while a cycle may be busy pulling (its events need not wait for that pull). Errors
        are the next cycle's to report: this raises them and reports nothing."""
        result = CycleResult()
        if self.device.store.setting(Setting.TOKEN) is None:
            return result
        async with self._push_lock:
            await self._push(result)
        return result

    async def _push(self, result: CycleResult) -> None:
        limit = MAX_BATCH_EVENTS
        rounds = 0
        healthy = False  # the server took a push in this cycle
        unproven = 1  # lone events a 500 may reject while it has not
        upto = self._last_position()  # later actions wait for the next cycle: the pull runs
        while True:
            size = limit if self._suspect is None else min(limit, max(1, self._suspect // 2))
            batch = self._next_batch(size, upto)
            if not batch:
                self._suspect = None
                return
            ahead = self._batch_ahead(batch, size, upto)
            reply, ahead_reply = await self._send_with_ahead(batch, ahead)
            ahead_taken = ahead_reply is not None and ahead_reply.status_code == 200
            if reply.status_code == 200:
                healthy = True
                answers = [(batch, body_of(reply))]
                if ahead_reply is not None and ahead_taken:
                    answers.append((ahead, body_of(ahead_reply)))
                unknown = set() if ahead_taken else {event_id for event_id, _ in ahead}
                skewed = self._apply_push_results(answers, result, unknown=unknown)
                self._narrow_suspect(len(batch) - skewed)
                rounds += 1
                if skewed and rounds > 5:
                    raise ServerUnreachable("the server keeps refusing this device's clock")
                continue
            if ahead_reply is not None and ahead_taken:
                # The batch ahead went in whatever became of this one: take its answer in.
                unknown = {event_id for event_id, _ in batch}
                self._apply_push_results([(ahead, body_of(ahead_reply))], result, unknown=unknown)
            if reply.status_code == 408 and len(batch) > 1:
                limit = max(1, len(batch) // 2)  # the link is too slow for this many bytes
                continue
            reason = REFUSED_WHOLE.get(reply.status_code)
            if reason is None:
                raise ServerUnreachable(
                    f"upload refused: HTTP {reply.status_code} {detail_of(reply)}"
                )
            if len(batch) > 1:
                if reply.status_code == 413:
                    limit = max(1, len(batch) // 2)  # too many bytes, not a bad event
                else:
                    self._suspect = len(batch)  # split: the first half goes next
                continue
            if reply.status_code == 500 and not healthy:
                if not unproven:
                    raise ServerUnreachable(f"upload refused: HTTP 500 {detail_of(reply)}")
                unproven -= 1
            self._reject_alone(batch[0], reason, reply, result)
            self._suspect = None

    async def _send(self, batch: list[tuple[str, bytes]]) -> httpx.Response:
        """Push a batch; a 500 is sent again at once, byte for byte: only a 500 that
        repeats is about the batch."""
        body = self._batch_body(batch)
        reply = await self._call("POST", "/v1/sync/push", body=body)
        if reply.status_code == 500:
            log.warning("push answered 500 (%s): sending the same bytes again", detail_of(reply))
            reply = await self._call("POST", "/v1/sync/push", body=body)
        return reply

    async def _send_with_ahead(
        self, batch: list[tuple[str, bytes]], ahead: list[tuple[str, bytes]]
    ) -> tuple[httpx.Response, httpx.Response | None]:
        """Push ``batch``, and ``ahead`` (``_batch_ahead``) at the same time: the answer of
        each; None for ``ahead`` when it was not sent or could not be. Whatever went wrong
        with it is for the next round to meet again, in turn: its events are still unsent,
        and go again as they are. If ``batch`` cannot be sent, ``ahead`` is called off."""
        if not ahead:
            return await self._send(batch), None

        async def send_ahead() -> httpx.Response | None:
            try:
                return await self._send(ahead)
            except (ServerUnreachable, SignInRequired, PasswordChangeRequired) as exc:
                log.info("the batch sent ahead did not go: %s", exc)
                return None

        going = asyncio.ensure_future(send_ahead())
        try:
            reply = await self._send(batch)
        except BaseException:
            going.cancel()
            await asyncio.gather(going, return_exceptions=True)
            raise
        return reply, await going

    def _batch_ahead(
        self, batch: list[tuple[str, bytes]], size: int, upto: int
    ) -> list[tuple[str, bytes]]:
        """The batch after ``batch``, to send while ``batch`` is on its way, or none.

        Only when nothing in ``batch`` can change how a later event is decided: edits of
        tasks that exist (``SEND_AHEAD_AFTER``), no board, member, task or comment made.
        The server decides each batch against every event accepted before it, so a board
        made in one batch and a task of it in the next must arrive in that order; edits
        decide nothing for anyone after them. Never while a refused batch is being split."""
        if self._suspect is not None or size < MAX_BATCH_EVENTS or len(batch) < size:
            return []
        if not all(_only_edits(body) for _, body in batch):
            return []
        with self.device.store.read() as conn:
            rows = Outbox(conn).unsent(upto, len(batch) + size)
        if [event_id for event_id, _ in rows[: len(batch)]] != [i for i, _ in batch]:
            return []
        return _capped(rows[len(batch) :])

    def _narrow_suspect(self, answered: int) -> None:
        """A batch inside a split was answered: the event at fault is among the rest."""
        if self._suspect is not None:
            self._suspect -= answered
            if self._suspect <= 0:
                self._suspect = None  # refused no more: it passed by itself

    def _reject_alone(
        self, event: tuple[str, bytes], reason: str, reply: httpx.Response, result: CycleResult
    ) -> None:
        """An event the server refuses even alone: a final rejection, made here."""
        event_id, body = event
        said = detail_of(reply) or "no detail"
        size = f", {len(body):,} bytes" if reply.status_code == 413 else ""
        detail = f"{_WHY_REFUSED[reason]} (HTTP {reply.status_code}: {said}{size})"
        log.warning("event %s refused alone: %s", event_id, detail)
        with self.device.store.write() as conn:
            touched = self._reject(conn, event_id, reason, detail)
            refold(conn, touched, self.device.username)
        result.rejected += 1
        self._report("syncing")

    def _last_position(self) -> int:
        with self.device.store.read() as conn:
            return Outbox(conn).last_position()

    def _next_batch(self, limit: int, upto: int) -> list[tuple[str, bytes]]:
        """Unsent events up to outbox position ``upto``, in order, up to ``limit`` and
        MAX_BATCH_BYTES."""
        with self.device.store.read() as conn:
            return _capped(Outbox(conn).unsent(upto, limit))

    def _batch_body(self, batch: list[tuple[str, bytes]]) -> bytes:
        head = msgspec.json.encode(
            {"device": self.device.device_id, "protocol": PROTOCOL_VERSIONS[1]}
        )
        return head[:-1] + b',"events":[' + b",".join(body for _, body in batch) + b"]}"

    def _apply_push_results(
        self,
        answers: list[tuple[list[tuple[str, bytes]], dict[str, Any]]],
        result: CycleResult,
        *,
        unknown: set[str] | frozenset[str] = frozenset(),
    ) -> int:
        """Take in the results of one push, or of two sent together (each batch with its
        answer); return how many events were refused for their clock (restamped, still
        unsent). ``unknown``: events of a push that got no answer, which the stream may
        have stored in part: never restamped, so that they are sent again as they were."""
        device = self.device
        server_time = max(answer["server_time"] for _, answer in answers)
        device.clock.receive_time(server_time)
        skewed: list[str] = []
        accepted_hlc = ""
        with device.store.write() as conn:
            touched: set[EntityKey] = set()
            stored: list[tuple[str, int]] = []
            for batch, answer in answers:
                bodies = dict(batch)
                for outcome in answer["results"]:
                    event_id, status = outcome["id"], outcome["status"]
                    if status in ("accepted", "duplicate"):
                        stored.append((event_id, outcome["seq"]))
                        hlc = _stamp_decoder.decode(bodies[event_id]).hlc
                        accepted_hlc = max(accepted_hlc, hlc, key=_wall_and_counter)
                        result.pushed += 1
                    elif outcome.get("reason") == "clock_skew":
                        skewed.append(event_id)
                    else:
                        touched |= self._reject(
                            conn, event_id, outcome["reason"], outcome.get("detail", "")
                        )
                        result.rejected += 1
            Outbox(conn).mark_all_sent(stored)
            if accepted_hlc:
                self._raise_floor(conn, accepted_hlc)
            if skewed:
                device.clock.rebase(server_time, read_setting(conn, Setting.HLC_FLOOR))
                restamped, more = self._restamp_ahead(conn, server_time, keep=unknown)
                touched |= more
                result.restamped += restamped
                write_setting(conn, Setting.CLOCK_OFFSET, str(device.clock.offset_ms))
            refold(conn, touched, device.username)
            write_setting(conn, Setting.CLOCK_LAST, device.clock.last)
        self._report("syncing")
        return len(skewed)

    def _reject(
        self, conn: sqlite3.Connection, event_id: str, reason: str, detail: str
    ) -> set[EntityKey]:
        """Out of the outbox, into the rejected list, with a notice; return what to refold."""
        taken = Outbox(conn).take(event_id)
        if taken is None:
            return set()
        board, body = taken
        event = readable_event(body, self.device.username)
        conn.execute(
            "INSERT OR REPLACE INTO rejected (id, board, body, reason, detail, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, board, body, reason, detail, int(time.time() * 1000)),
        )
        if event is None:  # not even this device can read it: nothing of it is shown
            message = f"A change this device could not read was not saved: {detail or reason}."
            add_notice(
                conn, f"rejected:{event_id}", NoticeKind.REJECTED, board, None, reason, message
            )
            return set()
        task = event.entity if event.type.startswith("Task") else None
        message = rejection_message(event.type, detail or reason)
        add_notice(conn, f"rejected:{event_id}", NoticeKind.REJECTED, board, task, reason, message)
        return set(merge.keys_of(event))

    def _restamp_ahead(
        self, conn: sqlite3.Connection, server_time: int, *, keep: set[str] | frozenset[str]
    ) -> tuple[int, set[EntityKey]]:
        """After a rebase: restamp, in outbox order, every unsent event the server would
        refuse as too far ahead (not only this batch's: the UI may have made more while the
        push was out), and keep the clock above the unsent events that stay, so the user's
        next edit still wins over them. Events in ``keep`` stay as they are (a push of
        theirs got no answer: they are sent again byte for byte)."""
        touched: set[EntityKey] = set()
        restamped = 0
        outbox = Outbox(conn)
        for event_id, body in outbox.unsent():
            if readable_event(body, self.device.username) is None:
                continue  # never restamped: it will be refused, and rejected alone
            raw = msgspec.json.decode(body)
            if event_id in keep or parse_hlc(raw["hlc"]).wall <= server_time + MAX_CLOCK_SKEW_MS:
                self.device.clock.receive(raw["hlc"])
                continue
            raw["hlc"] = self.device.clock.now()
            new_body = msgspec.json.encode(raw)
            outbox.restamp(event_id, new_body)
            touched |= set(merge.keys_of(event_of(new_body, self.device.username)))
            restamped += 1
        return restamped, touched

    # pull

    async def apply_live_page(self, data: dict[str, Any], since: str) -> bool:
        """A page the live stream brought (``event: changes``, its ``data`` as JSON decodes
        it), applied as a pull's page would be, if it follows on from this device's cursor
        (``since``: the cursor it was read from). False when it does not (a pull moved the
        cursor meanwhile: a gap), or when it is a reset: the device then pulls instead. A
        page with ``has_more`` is followed by the next one on the stream, or by a poke."""
        page = msgspec.convert(data, PulledPage)
        async with self._pull_lock:
            store = self.device.store
            if (
                page.reset
                or store.setting(Setting.REBUILDING) == "1"
                or store.setting(Setting.CURSOR) != since
            ):
                return False
            state, detail = self.progress.state, self.progress.detail
            async with self._push_lock:  # see _pull_pages
                self._apply_page(page, False, CycleResult())
            self._prune_confirmed()
            self._report(state, detail)
            return True

    def moved_past(self, since: str) -> bool:
        """Whether this device's cursor has moved on from ``since`` (a pull took it further)
        while no rebuild is under way: a live stream read from ``since`` is then followed
        from the cursor instead, with no pull."""
        store = self.device.store
        return store.setting(Setting.REBUILDING) != "1" and store.setting(Setting.CURSOR) != since

    async def _pull(self, result: CycleResult) -> None:
        async with self._pull_lock:
            await self._pull_pages(result)

    async def _pull_pages(self, result: CycleResult) -> None:
        store = self.device.store
        aside = store.setting(Setting.REBUILDING) == "1"  # a rebuild a crash interrupted goes on
        with store.bulk():
            aside = await self._download(result, aside)
        if aside:
            self._swap_in_rebuilt_state()
            result.reset = True
        self._prune_confirmed()

    async def _download(self, result: CycleResult, aside: bool) -> bool:
        """Pull and apply pages until ``has_more`` is false; return whether the state is
        being rebuilt aside. The next page's request goes out before the page in hand is
        applied: the server reads and sends it while this device stores that page. Pages
        are still applied in order, and a page that fails to apply drops the one ahead."""
        cursor = self.device.store.setting(Setting.CURSOR)
        ahead: asyncio.Task[httpx.Response] | None = None
        try:
            while True:
                if ahead is None:
                    reply = await self._call("GET", "/v1/sync/pull", params=_pull_params(cursor))
                else:
                    reply, ahead = await ahead, None
                if reply.status_code == 400 and cursor and "cursor" in detail_of(reply):
                    cursor = None  # a cursor this server never made: bootstrap, as after a reset
                    self._start_rebuild()
                    aside = True
                    continue
                if reply.status_code != 200:
                    raise ServerUnreachable(
                        f"download refused: HTTP {reply.status_code} {detail_of(reply)}"
                    )
                page = _page_decoder.decode(reply.content)
                if page.reset and not aside:
                    self._start_rebuild()
                    aside = True
                if page.has_more:
                    ahead = await self._request_ahead(page.cursor)
                # Never while an upload is out: a page that takes a board away rejects the
                # board's unsent events, and one in flight may be stored already.
                async with self._push_lock:
                    self._apply_page(page, aside, result)
                cursor = page.cursor
                if not page.has_more:
                    return aside
        finally:
            if ahead is not None:  # the download stopped: the page ahead is not wanted
                ahead.cancel()
                ahead.add_done_callback(_retrieved)

    async def _request_ahead(self, cursor: str) -> asyncio.Task[httpx.Response]:
        """The pull of the page after ``cursor``, returned once its request is sent (or it
        is answered, on a transport that does not say when it sends): this device's work
        on the page before then overlaps the server's on this one."""
        sent = asyncio.Event()

        async def trace(name: str, info: dict[str, Any]) -> None:
            if name.endswith(".send_request_body.complete"):
                sent.set()

        reply = asyncio.create_task(
            self._call("GET", "/v1/sync/pull", params=_pull_params(cursor), trace=trace)
        )
        waiting = asyncio.create_task(sent.wait())
        try:
            await asyncio.wait({reply, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        return reply

    def _start_rebuild(self) -> None:
        """The views were rebuilt (or the backend restored): build ours again, aside."""
        with self.device.store.write() as conn:
            conn.execute("DELETE FROM confirmed_next")  # what an abandoned rebuild left
            write_setting(conn, Setting.REBUILDING, "1")

    def _apply_page(self, page: PulledPage, aside: bool, result: CycleResult) -> None:
        device = self.device
        device.clock.receive_time(page.server_time)
        highest = ""  # the page's highest hlc: the clock takes it in once
        with device.store.write() as conn:
            entities: list[PulledChange] = []  # a run of entity changes, stored together
            # The whole pull is in: what it reflects leaves the outbox first, so that the
            # entities below are folded once, without it (a backlog of thousands of events,
            # folded and then settled, took most of a long sync's last page).
            settled: set[EntityKey] = set()
            username = None if aside else read_setting(conn, Setting.USERNAME)
            if not aside and not page.has_more:
                settled = self._settle_reflected(conn, page.watermark, username)

            def store_entities() -> None:
                states = confirm_pulled(conn, entities, "confirmed_next" if aside else "confirmed")
                if not aside:
                    refold_confirmed(conn, states, username)
                    settled.difference_update(state.key for state in states)
                entities.clear()

            for change in page.changes:
                if change.removed:
                    store_entities()  # in page order: the purge comes after them
                    self._lose_board(conn, change.id)
                elif change.kind == "notice":
                    store_entities()
                    values = change.values or {}
                    add_notice(
                        conn,
                        change.id,
                        NoticeKind.BACKEND,
                        change.board,
                        values.get("task"),
                        values.get("reason", ""),
                        values.get("message", ""),
                        values.get("created_at"),
                    )
                else:
                    entities.append(change)
                    if change.meta is not None and change.meta.fields:
                        hlc = max([stamp.hlc for stamp in change.meta.fields.values()])
                        highest = max(highest, hlc, key=_wall_and_counter)
            store_entities()
            if highest:
                device.clock.receive(highest)
                self._raise_floor(conn, highest)
            result.pulled += len(page.changes)
            write_setting(conn, Setting.CURSOR, page.cursor)
            write_setting(conn, Setting.GENERATION, page.generation)
            if not aside:
                write_setting(conn, Setting.WATERMARK, str(page.watermark))
                refold(conn, settled, username)  # settled, and not folded above
            else:
                write_setting(conn, Setting.PENDING_WATERMARK, str(page.watermark))
            write_setting(conn, Setting.CLOCK_LAST, device.clock.last)
        self.progress.pulled += len(page.changes)
        self._report("syncing", "downloading" if page.has_more else "")

    def _swap_in_rebuilt_state(self) -> None:
        with self.device.store.write() as conn:
            conn.execute("DELETE FROM confirmed")
            conn.execute("INSERT INTO confirmed SELECT * FROM confirmed_next")
            conn.execute("DELETE FROM confirmed_next")
            write_setting(conn, Setting.REBUILDING, None)
            watermark = read_setting(conn, Setting.PENDING_WATERMARK) or "0"
            write_setting(conn, Setting.WATERMARK, watermark)
            outbox = Outbox(conn)
            outbox.resend_all()
            conn.execute("DELETE FROM view")
            boards = {r[0] for r in conn.execute("SELECT board FROM confirmed")}
            boards |= outbox.boards()
            for board in boards:
                refold(
                    conn,
                    keys_of_board(conn, board) | self._pending_keys(conn, board),
                    self.device.username,
                )

    def _prune_confirmed(self) -> None:
        """Pending events the confirmed state now reflects leave the outbox. (The last page
        of a pull has done it already, folding once: this is for the other ways here.)"""
        with self.device.store.write() as conn:
            watermark = int(read_setting(conn, Setting.WATERMARK) or 0)
            username = read_setting(conn, Setting.USERNAME)
            refold(conn, self._settle_reflected(conn, watermark, username), username)
        self._count_pending()

    def _settle_reflected(
        self, conn: sqlite3.Connection, watermark: int, username: str | None
    ) -> set[EntityKey]:
        """Settle the events ``watermark`` covers; return the entities to refold."""
        outbox = Outbox(conn)
        touched: set[EntityKey] = set()
        for _, body in outbox.reflected(watermark):
            touched.update(merge.keys_of(event_of(body, username)))
        outbox.settle(watermark)
        return touched

    def _lose_board(self, conn: sqlite3.Connection, board: str) -> set[EntityKey]:
        """The user lost this board: purge it (from a rebuild in progress too); its unsent
        events become rejected, with a notice. Events the backend already stored simply
        leave the outbox: they were saved, and the others on the board see them."""
        name = conn.execute(
            "SELECT vals FROM view WHERE kind = 'board' AND id = ?", (board,)
        ).fetchone()
        title = msgspec.json.decode(name[0])["name"] if name and name[0] else board
        outbox = Outbox(conn)
        for event_id in outbox.unsent_ids(board):
            self._reject(conn, event_id, REMOVED_BOARD, f"you no longer have access to {title!r}")
        outbox.drop_board(board)
        conn.execute("DELETE FROM confirmed WHERE board = ?", (board,))
        conn.execute("DELETE FROM view WHERE board = ?", (board,))
        conn.execute("DELETE FROM confirmed_next WHERE board = ?", (board,))
        add_notice(
            conn,
            f"removed:{board}",
            NoticeKind.REMOVED,
            board,
            None,
            REMOVED_BOARD,
            f"You no longer have access to the board {title!r}.",
        )
        return set()

    # plumbing

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One request to another route of the server (``outpost webhooks``) with the
        session's token, refreshed once on a 401; SignInRequired, ServerUnreachable."""
        return await self._call(method, path, body=body, params=params)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        trace: _Trace | None = None,
    ) -> httpx.Response:
        """One request with the session's token; a 401 refreshes the session once; a 429
        waits out its ``Retry-After`` and goes again, up to ``RATE_LIMIT_WAITS`` times.
        ``trace``: httpcore's trace extension (``_request_ahead``)."""
        refreshed, waits = False, 0
        while True:
            token = self.device.store.setting(Setting.TOKEN)
            if token is None:
                raise SignInRequired("sign in to sync: your changes are kept on this device")
            reply = await self._request(
                method, path, body=body, params=params, token=token, trace=trace
            )
            if reply.status_code == 401 and not refreshed:
                refreshed = True
                await self._refresh(token)
                continue
            if reply.status_code == 401:
                raise SignInRequired("your session has expired: sign in again")
            wait = _retry_after(reply) if reply.status_code == 429 else None
            if wait is not None and waits < RATE_LIMIT_WAITS:
                waits += 1
                log.info("%s %s: too many requests, again in %.1f s", method, path, wait)
                await asyncio.sleep(wait)
                continue
            if reply.status_code in (429, 503):
                raise ServerUnreachable(f"the server is busy: {detail_of(reply)}")
            return reply

    async def _probe(self) -> None:
        """Can the server be reached at all? (So a signed-out device says the right thing.)"""
        try:
            await self._request("GET", "/v1/sync/info")
        except ServerUnreachable as exc:
            cause = exc.__cause__
            self._report("offline", f"{type(cause).__name__}: {cause}")
            raise

    async def _refresh(self, expired: str) -> None:
        """Renew the session whose access token ``expired``, once: an upload and a download
        refused together must not both spend the refresh token (a second use of it would
        end the whole session family)."""
        async with self._refresh_lock:
            if self.device.store.setting(Setting.TOKEN) != expired:
                return  # renewed (or ended) while this request waited: use what is there now
            await self._renew()

    async def _renew(self) -> None:
        refresh_token = self.device.store.setting(Setting.REFRESH_TOKEN)
        if refresh_token is None:
            raise SignInRequired("your session has expired: sign in again")
        body = msgspec.json.encode({"refresh_token": refresh_token})
        reply = await self._request("POST", "/v1/auth/refresh", body=body)
        if reply.status_code in (400, 401, 403):
            with self.device.store.write() as conn:
                write_setting(conn, Setting.TOKEN, None)
                write_setting(conn, Setting.REFRESH_TOKEN, None)
            raise SignInRequired("your session has expired: sign in again")
        if reply.status_code != 200:  # the server is unwell, the session may be fine: keep it
            raise ServerUnreachable(f"cannot renew the session now: HTTP {reply.status_code}")
        self._store_session(body_of(reply))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        unreachable: str = "the server is unreachable",
        trace: _Trace | None = None,
    ) -> httpx.Response:
        """One request; a connection that fails is ``ServerUnreachable``."""
        try:
            return await self.http.request(
                method,
                path,
                content=body,
                params=params,
                headers=bearer(token),
                extensions=None if trace is None else {"trace": trace},
            )
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"{unreachable}: {type(exc).__name__}: {exc}") from exc

    def _raise_floor(self, conn: sqlite3.Connection, hlc: str) -> None:
        floor = read_setting(conn, Setting.HLC_FLOOR)
        if floor is None or parse_hlc(hlc)[:2] > parse_hlc(floor)[:2]:
            write_setting(conn, Setting.HLC_FLOOR, hlc)

    def _pending_keys(self, conn: sqlite3.Connection, board: str) -> set[EntityKey]:
        events = (
            readable_event(body, self.device.username) for body in Outbox(conn).bodies([board])
        )
        return {k for event in events if event is not None for k in merge.keys_of(event)}

    def _report(self, state: str, detail: str = "") -> None:
        self.progress.state = state
        self.progress.detail = detail
        self._count_pending()
        self._on_progress(self.progress)

    def _count_pending(self) -> None:
        waiting, sent = self.device.pending_counts()
        self.progress.pending, self.progress.sent = waiting + sent, sent


_Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A task nobody awaits: its failure, if any, is taken so asyncio does not log it."""
    if not task.cancelled():
        task.exception()


def _pull_params(cursor: str | None) -> dict[str, Any]:
    return {"limit": PULL_LIMIT, "cursor": cursor} if cursor else {"limit": PULL_LIMIT}


def _retry_after(reply: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds, if it is one worth waiting out in a request
    (at most ``RATE_LIMIT_MAX_WAIT_S``); None otherwise."""
    try:
        wait = float(reply.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= RATE_LIMIT_MAX_WAIT_S else None


def _password_token(reply: httpx.Response) -> bool:
    """A 403 to a sign-in with a one-time password carries a password token (SPEC 6)."""
    try:
        extra = body_of(reply).get("extra") or {}
    except (msgspec.DecodeError, AttributeError):
        return False
    return isinstance(extra, dict) and "password_token" in extra


class PulledPage(msgspec.Struct, gc=False):
    """A pull's answer, or the data of a live ``changes`` event (SPEC section 6), decoded
    into structs (``merge.PulledChange``): a page of a thousand tasks decodes in half the
    time it takes as dicts."""

    changes: list[PulledChange]
    cursor: str
    has_more: bool
    watermark: int
    server_time: int
    generation: str
    reset: bool


_page_decoder = msgspec.json.Decoder(PulledPage)


class _Stamp(msgspec.Struct):
    """An outbox event read for its hlc alone."""

    hlc: str


_stamp_decoder = msgspec.json.Decoder(_Stamp)


class _Type(msgspec.Struct):
    """An outbox event read for its type alone."""

    type: str


_type_decoder = msgspec.json.Decoder(_Type)

SEND_AHEAD_AFTER = frozenset(
    {"TaskUpdated", "TaskLabelAdded", "TaskLabelRemoved", "TaskDeleted", "TaskRestored"}
)
"""Event types after which the next batch may go before the answer
(``SyncEngine._batch_ahead``): they make no board, member, task or comment, so the server
decides nothing after them differently for them."""


def _only_edits(body: bytes) -> bool:
    """Whether an outbox event is of a type in SEND_AHEAD_AFTER (not if it is unreadable:
    the server refuses such an event, and its batch is split)."""
    try:
        return _type_decoder.decode(body).type in SEND_AHEAD_AFTER
    except msgspec.DecodeError:  # ValidationError is one
        return False


def _capped(rows: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``rows`` in order up to MAX_BATCH_BYTES (at least the first)."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    for event_id, body in rows:
        if batch and size + len(body) + 1 > MAX_BATCH_BYTES:
            break
        batch.append((event_id, body))
        size += len(body) + 1
    return batch


def _wall_and_counter(hlc: str) -> str:
    """Order hlcs by time only ("" first): which device made them does not matter here.
    Their wall and counter have fixed widths (``protocol.hlc``), so the text before the
    node orders them; the highest is parsed, and so checked, when the clock takes it in."""
    return hlc[:_WALL_AND_COUNTER]


_WALL_AND_COUNTER = len("1764136800000:00000")
