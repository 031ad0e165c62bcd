"""Live connections at one cursor share one read of what changed (``PullService.read_shared``,
``ChangeHub.page_reader``): a thousand caught-up connections over fifty users cost one
snapshot read per change instead of fifty pulls. Each user must still get exactly the page
their own pull answers (their boards, their notices, nothing of a board they are not on);
whatever the shared read cannot answer (a membership of theirs changed, a backfill, more
than a page, a reset) goes to their own pull. On a real views database (SQLite file)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from litestar.response import ServerSentEventMessage
from nats.aio.client import Client as NatsClient
from sqlalchemy import event, insert, update

from backend.bff.auth.tokens import Principal
from backend.bff.sync.live import ChangeFeed, ChangeHub
from backend.bff.sync.pull import (
    Backfill,
    Cursor,
    CursorSigner,
    Page,
    PullService,
    SharedChanges,
    page_body,
)
from backend.consumers.component import WrittenViews
from backend.db import Database
from backend.projector.models import Info, Membership, View, positions

GENERATION = "gen-1"
B1 = "b1"
B2 = "b2"
CURSOR_AT = 3
"""The version every connection in these tests is caught up to."""


def _view(version: int, board: str, *, audience: str | None = None, created: bool = True) -> Any:
    return {
        "kind": "notice" if audience else "task",
        "id": f"e{version}",
        "board": board,
        "version": version,
        "state": "{}",
        "values": f'{{"title":"v{version}"}}' if created else None,
        "meta": "{}",
        "audience": audience,
    }


def _member(board: str, username: str, version: int, *, active: bool = True) -> Any:
    return {"board": board, "username": username, "active": active, "version": version}


async def _views(tmp_path: Path) -> Database:
    return await fill_views(Database.for_component("projector", data_dir=tmp_path, url=None))


async def fill_views(db: Database) -> Database:
    """Rows up to version 8: alice on both boards, bob and dave on B1 (dave joined after the
    cursor), carol off B1 since before it, erin on no board."""
    await db.migrate()
    async with db.write() as conn:
        await conn.execute(
            insert(Info),
            [{"key": "generation", "value": GENERATION}, {"key": "version", "value": "8"}],
        )
        await conn.execute(insert(positions), [{"component": "projector", "seq": 42}])
        await conn.execute(
            insert(View),
            [
                _view(1, B1),
                _view(2, B2),
                _view(4, B1),  # after the cursor: every member of B1 sees it
                _view(5, B1, audience="bob"),  # a notice to bob alone
                _view(6, B2),  # only alice is on B2
                _view(7, B1, created=False),  # not created yet: nobody gets it
            ],
        )
        await conn.execute(
            insert(Membership),
            [
                _member(B1, "alice", 1),
                _member(B2, "alice", 2),
                _member(B1, "bob", 1),
                _member(B1, "carol", 3, active=False),
                _member(B1, "dave", 8),  # joined after the cursor: a backfill, their own pull
            ],
        )
    return db


def _cursor(signer: CursorSigner, version: int = CURSOR_AT, **kwargs: Any) -> str:
    return signer.encode(Cursor(kwargs.pop("generation", GENERATION), version, **kwargs))


def _body(page: Page) -> bytes:
    return page_body(page, 0)


USERS = frozenset({"alice", "bob", "carol", "dave", "erin"})


async def shared_and_own_pages(db: Database) -> tuple[dict[str, Any], dict[str, Page]]:
    """Each user's page from one shared read (None: their own pull must answer), and from
    their own pull, after the same cursor of ``fill_views``'s rows."""
    signer = CursorSigner("secret")
    cursor = _cursor(signer)
    pull = PullService(await fill_views(db), signer)
    try:
        shared = await pull.read_shared(cursor, 10, USERS)
        assert isinstance(shared, SharedChanges)
        pages = {u: shared.page_for(u) for u in [*sorted(USERS), "frank"]}
        own = {u: await pull.pull(Principal(u, u), cursor, 10) for u in USERS}
    finally:
        await db.dispose()
    return pages, own


def check_shared_and_own_pages(pages: dict[str, Any], own: dict[str, Page]) -> None:
    for user in ("alice", "bob", "carol", "erin"):
        assert pages[user] is not None, user
        assert _body(pages[user]) == _body(own[user]), user
    assert [c.id for c in pages["alice"].changes] == ["e4", "e6"]
    assert [c.id for c in pages["bob"].changes] == ["e4", "e5"]  # and his notice
    assert pages["carol"].changes == [] and pages["erin"].changes == []
    assert pages["carol"] is pages["erin"]  # the same rows: one page, encoded once
    assert pages["alice"].watermark == 42 and not pages["alice"].has_more
    # dave's membership changed after the cursor (a backfill is due): his own pull answers,
    # as for frank, who was not among the users read.
    assert pages["dave"] is None and pages["frank"] is None
    assert own["dave"].has_more and own["dave"].changes  # what his own pull is there for


def test_each_user_gets_exactly_the_page_their_own_pull_answers(tmp_path: Path) -> None:
    db = Database.for_component("projector", data_dir=tmp_path, url=None)
    check_shared_and_own_pages(*asyncio.run(shared_and_own_pages(db)))


@pytest.mark.parametrize(
    ("why", "limit", "cursor_of"),
    [
        ("more than a page", 3, lambda s: _cursor(s)),
        ("a backfill to page", 10, lambda s: _cursor(s, backfills=[Backfill(B1, 3)])),
        ("another generation", 10, lambda s: _cursor(s, generation="gen-0")),
        ("past the last version", 10, lambda s: _cursor(s, version=9)),
        ("an unsigned cursor", 10, lambda s: "WyJnZW4tMSIsM10"),
        ("a forged cursor", 10, lambda s: "v2.e30.forged"),
    ],
)
def test_a_cursor_the_shared_read_cannot_answer_goes_to_each_users_own_pull(
    tmp_path: Path, why: str, limit: int, cursor_of: Callable[[CursorSigner], str]
) -> None:
    signer = CursorSigner("secret")

    async def shared() -> SharedChanges | None:
        db = await _views(tmp_path)
        try:
            return await PullService(db, signer).read_shared(cursor_of(signer), limit, USERS)
        finally:
            await db.dispose()

    assert asyncio.run(shared()) is None, why


# The hub: many connections of many users, one shared read per change.


async def _next(stream: AsyncIterator[ServerSentEventMessage]) -> ServerSentEventMessage:
    while True:
        message = await anext(stream)
        if message.comment is None:
            return message


def _notice(watermark: int, named: list[str], boards: list[str] = [B1]) -> bytes:  # noqa: B006
    body = {"component": "projector", "boards": boards, "usernames": named, "watermark": watermark}
    return msgspec.json.encode(body)


NEW_ROWS = [_view(9, B1), _view(10, B1, audience="bob")]
"""The batch of every hub test: a task on B1, and a notice to bob alone."""
COLUMNS = ("kind", "id", "board", "version", "values", "meta", "audience")


class Round(NamedTuple):
    reads: dict[str, int]
    statements: int
    """SQL statements run on the views from the notice until every connection had its page."""
    pages: dict[str, list[dict[str, Any]]]
    """Each user's pages (``server_time`` left out), one per connection."""


def _round(
    tmp_path: Path,
    *,
    handed: bool,
    named: list[str] = [],  # noqa: B006
    cancelled_read: bool = False,
    failed_read: bool = False,
) -> Round:
    """Eight connections of alice and bob, caught up at version 8; a batch writes
    ``NEW_ROWS`` and its notice comes from NATS, or ``handed`` over in place with them."""
    signer = CursorSigner("secret")
    cursor = _cursor(signer, version=8)
    reads: dict[str, int] = {"shared": 0, "own": 0}
    statements = 0

    def counted(name: str, read: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any) -> Any:
            reads[name] += 1
            if name == "shared" and cancelled_read:
                raise asyncio.CancelledError  # the read itself ends cancelled
            if name == "shared" and failed_read:
                raise OSError("the views database is away")
            return await read(*args)

        return wrapper

    def statement(*_: Any) -> None:
        nonlocal statements
        statements += 1

    async def run() -> list[tuple[str, ServerSentEventMessage]]:
        db = await _views(tmp_path)
        pull = PullService(db, signer)
        hub = ChangeHub(NatsClient(), db, poke_interval_s=0.01)
        if handed:  # the projector beside the hub has handed over its batches since version 8
            hub.offer_notice(_notice(42, [], boards=[]), WrittenViews(GENERATION, 7, 8, []))
        stopping = asyncio.Event()
        streams = []
        users = ["alice", "bob"] * 4
        for user in users:
            feed = ChangeFeed(
                read=hub.page_reader(
                    user,
                    counted("own", functools.partial(pull.pull, Principal(user, user))),
                    counted("shared", pull.read_shared),
                ),
                cursor=cursor,
                limit=10,
                max_bytes=1_000_000,
                render=hub.render,
            )
            streams.append(hub.stream(user, 30.0, stopping, feed))
        try:
            waiting = [asyncio.ensure_future(_next(s)) for s in streams]
            await asyncio.sleep(0.3)  # connected, boards read, nothing new after the cursor
            assert not any(w.done() for w in waiting)
            async with db.write() as conn:
                await conn.execute(insert(View), NEW_ROWS)
                await conn.execute(update(Info).where(Info.key == "version").values(value="10"))
                await conn.execute(update(positions).values(seq=43))
            reads.update(shared=0, own=0)
            event.listen(db.engine.sync_engine, "before_cursor_execute", statement)
            written = WrittenViews(
                GENERATION, 8, 10, [tuple(r[c] for c in COLUMNS) for r in NEW_ROWS]
            )
            hub.offer_notice(_notice(43, named), written if handed else None)
            messages = await asyncio.wait_for(asyncio.gather(*waiting), 10)
            event.remove(db.engine.sync_engine, "before_cursor_execute", statement)
            return list(zip(users, messages, strict=True))
        finally:
            stopping.set()
            for stream in streams:
                await stream.aclose()
            await db.dispose()

    pages: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}
    for user, message in asyncio.run(run()):
        text = message.encode().decode()
        assert text.startswith("event: changes\r\n"), text
        page = msgspec.json.decode(text.split("data: ", 1)[1].strip())
        del page["server_time"]
        pages[user].append(page)
    assert pages["alice"][0]["cursor"] == _cursor(signer, version=10)
    return Round(reads, statements, pages)


def _ids(round_: Round, user: str) -> set[tuple[str, ...]]:
    return {tuple(c["id"] for c in page["changes"]) for page in round_.pages[user]}


def test_many_connections_of_many_users_at_one_cursor_cost_one_read(tmp_path: Path) -> None:
    found = _round(tmp_path, handed=False)
    assert found.reads == {"shared": 1, "own": 0}
    assert _ids(found, "alice") == {("e9",)}  # bob's notice is bob's
    assert _ids(found, "bob") == {("e9", "e10")}


def test_a_batch_handed_over_in_place_gives_the_same_pages_without_reading_the_views(
    tmp_path: Path,
) -> None:
    """The projector beside the hub hands over the rows its batch wrote: a connection caught
    up to just before it gets its page without one SQL statement, the page a read gives."""
    (tmp_path / "read").mkdir()
    (tmp_path / "handed").mkdir()
    read = _round(tmp_path / "read", handed=False)
    handed = _round(tmp_path / "handed", handed=True)
    assert handed.statements == 0 and read.statements > 0
    assert handed.reads == {"shared": 1, "own": 0}
    assert handed.pages == read.pages


def test_a_user_whose_membership_the_batch_changed_gets_a_pull_of_their_own(
    tmp_path: Path,
) -> None:
    """The notice names bob (a membership of his changed): his connections read their boards
    again and his page is his own pull; alice's still comes from the batch in place."""
    found = _round(tmp_path, handed=True, named=["bob"])
    assert found.reads["own"] == 1  # bob's four connections share one pull
    assert _ids(found, "alice") == {("e9",)}
    assert _ids(found, "bob") == {("e9", "e10")}


def test_after_notices_the_hub_may_have_missed_a_batch_in_place_waits_for_boards_read_again(
    tmp_path: Path,
) -> None:
    """Boards a connection read decide its in-place pages only while every notice came to the
    hub in place. Here bob lost B1 in a batch whose notice never reached this hub (another
    process's projector, before this one took the lease), and his own pull already took him
    past it; the first batch handed over in place makes every connection read its boards
    again, so he gets nothing of B1 while alice gets her page."""
    signer = CursorSigner("secret")

    async def run() -> tuple[list[str], list[str]]:
        db = await _views(tmp_path)
        pull = PullService(db, signer)
        hub = ChangeHub(NatsClient(), db, poke_interval_s=0.01)
        stopping = asyncio.Event()
        feeds, streams = [], []
        for user in ("alice", "bob"):
            feed = ChangeFeed(
                read=hub.page_reader(
                    user, functools.partial(pull.pull, Principal(user, user)), pull.read_shared
                ),
                cursor=_cursor(signer, version=8),
                limit=10,
                max_bytes=1_000_000,
                render=hub.render,
            )
            feeds.append(feed)
            streams.append(hub.stream(user, 30.0, stopping, feed))
        try:
            waiting = [asyncio.ensure_future(_next(s)) for s in streams]
            await asyncio.sleep(0.3)  # connected: bob's boards read, B1 among them
            async with db.write() as conn:  # version 9: bob leaves B1; no notice comes here
                await conn.execute(
                    update(Membership)
                    .where(Membership.username == "bob", Membership.board == B1)
                    .values(active=False, version=9)
                )
                await conn.execute(insert(View), [_view(10, B1)])
                await conn.execute(update(Info).where(Info.key == "version").values(value="10"))
            feeds[1].cursor = _cursor(signer, version=9)  # his own pull took him past it
            written = WrittenViews(GENERATION, 9, 10, [tuple(_view(10, B1)[c] for c in COLUMNS)])
            hub.offer_notice(_notice(43, []), written)
            alice = (await asyncio.wait_for(waiting[0], 10)).encode().decode()
            await asyncio.sleep(0.5)  # bob's connection: boards read again, nothing to send
            bob = [waiting[1].result().encode().decode()] if waiting[1].done() else []
            return [alice], bob
        finally:
            stopping.set()
            for waiter in waiting:
                waiter.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            for stream in streams:
                await stream.aclose()
            await db.dispose()

    alice, bob = asyncio.run(run())
    assert '"e10"' in alice[0]
    assert bob == []  # nothing of the board he lost


@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_a_shared_read_that_ends_cancelled_or_fails_leaves_each_connection_its_own_pull(
    tmp_path: Path, ending: str
) -> None:
    """Only a connection that is itself cancelled ends: when the shared read is what was
    cancelled, or failed, every connection at its cursor gets its page from its own pull,
    and none tries the shared read again until the next notice."""
    found = _round(
        tmp_path,
        handed=False,
        cancelled_read=ending == "cancelled",
        failed_read=ending == "failed",
    )
    assert found.reads == {"shared": 1, "own": 2}  # one pull per user, shared by their four
    assert _ids(found, "alice") == {("e9",)}
    assert _ids(found, "bob") == {("e9", "e10")}
