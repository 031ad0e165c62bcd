"""Pull: the changes a user can see after a cursor, read in one snapshot of the views.

The cursor walks the views' ``version``. Membership is checked at read time: a board the
user was added to since the cursor is backfilled (its rows at or below the cursor's
version, paged to this user alone; the cursor carries what is still to come), and a board
the user lost comes as a ``removed`` board change. A cursor from another generation gets
``reset`` and a fresh bootstrap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from sqlalchemy import Text, and_, cast, literal, or_, select, union_all
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import direct
from backend.bff.auth.tokens import Principal
from backend.consumers.component import WrittenViews
from backend.db import Database
from backend.errors import BadRequest
from backend.projector.models import Info, Membership, View, positions

PULL_SERVING = ("projector",)
"""Components whose views the pull reads: the watermark is the least of their positions."""


_VERSION = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A view version: a signed 64-bit integer in both databases."""


class Backfill(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    board: Annotated[str, msgspec.Meta(max_length=80)]
    upper: _VERSION
    """Rows at or below this version were written before the user could see the board."""
    after: _VERSION = 0


class Cursor(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    generation: Annotated[str, msgspec.Meta(max_length=80)]
    version: _VERSION
    backfills: list[Backfill] = msgspec.field(default_factory=list)


class CursorSigner:
    """Cursors as ``v2.<payload>.<signature>``: base64url JSON, signed with HMAC-SHA256.

    A cursor says which boards a pull backfills and from where, each a query, so a forged
    one could make a pull cost hundreds of queries, or hold a number no column can take. A
    signed cursor is one this backend made: anything else is refused (400, and the device
    pulls without a cursor) before a query runs. The key is derived from the backend's
    secret, which every BFF process shares (as it must for tokens). A cursor of the
    unsigned format before (plain base64url JSON) is answered with ``reset``, as one from
    another generation: devices that synced before the upgrade rebuild, they are not stuck.
    """

    FORMAT = "v2"

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"outpost pull cursor", hashlib.sha256).digest()

    def encode(self, cursor: Cursor) -> str:
        payload = _b64encode(msgspec.json.encode(cursor))
        return f"{self.FORMAT}.{payload}.{self._sign(payload)}"

    def decode(self, text: str) -> Cursor | None:
        """The cursor in ``text``; None for a cursor of an earlier format (the pull resets);
        BadRequest for anything this server did not make."""
        if len(text) > _MAX_CURSOR_CHARS:
            raise _not_ours("too long")
        parts = text.split(".")
        if len(parts) == 1:
            _decode_payload(parts[0])  # an unsigned cursor, as this backend made them before
            return None
        if len(parts) != 3 or parts[0] != self.FORMAT:
            raise _not_ours("unknown format")
        _, payload, signature = parts
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise _not_ours("its signature does not match")
        return _decode_payload(payload)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, f"{self.FORMAT}.{payload}".encode(), hashlib.sha256)
        return _b64encode(digest.digest()[:16])


_MAX_CURSOR_CHARS = 64 * 1024
"""Far beyond any cursor of a real user (one backfill is some 60 characters)."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode_payload(text: str) -> Cursor:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(data, type=Cursor)
    except (binascii.Error, ValueError, RecursionError, msgspec.DecodeError) as exc:
        raise _not_ours(str(exc)) from exc


def _not_ours(why: str) -> BadRequest:
    return BadRequest(f"cursor: not a cursor this server made ({why}); pull without one")


class RowChange(msgspec.Struct):
    """A change as stored: values and meta are already JSON, passed through untouched."""

    kind: str
    id: str
    board: str
    version: int
    values: msgspec.Raw
    meta: msgspec.Raw


class RemovedBoard(msgspec.Struct):
    kind: str
    id: str
    board: str
    version: int
    removed: bool
    values: None


class Page(msgspec.Struct):
    changes: list[Any]
    cursor: str
    has_more: bool
    watermark: int
    generation: str
    reset: bool


_SHARED_USERS_PER_QUERY = 500
"""Users per membership query of a shared read: well within SQLite's bound parameters."""


@dataclass(frozen=True)
class InPlace:
    """What a change notice handed over in place (by the projector of the live hub's own
    process) tells a shared read: the rows its batch wrote, the watermark after it, and
    the boards of the users it poked whose boards the hub knows for sure (a user whose
    membership the batch changed is not among them)."""

    written: WrittenViews
    watermark: int
    boards: dict[str, set[str]]


@dataclass
class SharedChanges:
    """What changed after one cursor, read once for every live connection at that cursor
    (``PullService.read_shared``): a thousand caught-up connections over fifty users cost
    one snapshot read, not fifty pulls. ``page_for`` gives a user the page their own pull
    would answer, or None where that takes the user's own read (a membership of theirs
    changed in the range: a backfill or a removal; or they were not among the users read)."""

    generation: str
    watermark: int
    cursor: str
    """Where every page of these changes leaves a connection."""
    rows: list[Any]
    """(kind, id, board, version, values, meta, audience) after the cursor, by version."""
    members: dict[str, set[str]]
    """For each user read: the boards of ``rows`` they are an active member of."""
    moved: set[str]
    """Users whose memberships changed after the cursor."""
    _pages: dict[tuple[int, ...], Page] = field(default_factory=dict)

    def page_for(self, username: str) -> Page | None:
        boards = self.members.get(username)
        if boards is None or username in self.moved:
            return None
        seen = tuple(
            i
            for i, (_, _, board, _, values, _, audience) in enumerate(self.rows)
            if board in boards and values is not None and audience in (None, username)
        )
        page = self._pages.get(seen)
        if page is None:  # users who see the same rows share one page (encoded once)
            raw = msgspec.Raw
            page = self._pages[seen] = Page(
                changes=[
                    RowChange(kind, id_, board, version, raw(values), raw(meta))
                    for kind, id_, board, version, values, meta, _ in map(
                        self.rows.__getitem__, seen
                    )
                ],
                cursor=self.cursor,
                has_more=False,
                watermark=self.watermark,
                generation=self.generation,
                reset=False,
            )
        return page


class PullService:
    def __init__(self, views: Database, signer: CursorSigner) -> None:
        self._views = views
        self._signer = signer
        self._last_status: tuple[int, str] | None = None

    async def status(self) -> tuple[int, str]:
        """(watermark, generation), for push answers and sync info."""
        async with self._views.read() as conn:
            generation, _, watermark = await _info(conn)
            self._last_status = (watermark, generation)
            return self._last_status

    async def status_or_last(self) -> tuple[int, str]:
        """``status()``, or the last one read while the views database is away: a push
        whose events are stored must not fail because the views cannot be read (a lower
        watermark only makes the device keep its events applied a little longer)."""
        try:
            return await self.status()
        except (DBAPIError, OSError):
            if self._last_status is None:
                raise
            return self._last_status

    def check_cursor(self, cursor_text: str) -> None:
        """BadRequest unless this server made ``cursor_text`` (as a pull would answer)."""
        self._signer.decode(cursor_text)

    async def read_shared(
        self,
        cursor_text: str,
        limit: int,
        usernames: frozenset[str],
        in_place: InPlace | None = None,
    ) -> SharedChanges | None:
        """The changes after ``cursor_text`` for any of ``usernames``, in one snapshot; None
        where the cursor takes a pull of its own (a reset, a backfill, more than a page).
        A cursor caught up to just before the batch ``in_place`` wrote needs no read: its
        changes are that batch's rows."""
        try:
            cursor = self._signer.decode(cursor_text)
        except BadRequest:
            return None
        if cursor is None or cursor.backfills or not usernames:
            return None
        start = cursor.version
        if in_place is not None:
            written = in_place.written
            if (cursor.generation, start) == (written.generation, written.after):
                if len(written.rows) > limit:
                    return None
                boards = {row[2] for row in written.rows}
                known = in_place.boards
                return SharedChanges(
                    generation=written.generation,
                    watermark=in_place.watermark,
                    cursor=self._signer.encode(Cursor(written.generation, written.last)),
                    rows=written.rows,
                    members={u: known[u] & boards for u in usernames if u in known},
                    moved=set(),
                )
        async with self._views.read() as conn:
            generation, last_version, watermark = await _info(conn)
            if cursor.generation != generation or start > last_version:
                return None
            query = (
                select(
                    View.kind,
                    View.id,
                    View.board,
                    View.version,
                    View.values,
                    View.meta,
                    View.audience,
                )
                .where(View.version > start)
                .order_by(View.version)
                .limit(limit + 1)
            )
            rows = list(await conn.execute(query))
            if len(rows) > limit:
                return None  # more than a page: each user's own pull pages it
            boards = {row[2] for row in rows}
            members: dict[str, set[str]] = {}
            moved: set[str] = set()
            names = sorted(usernames)
            for at in range(0, len(names), _SHARED_USERS_PER_QUERY):
                chunk = names[at : at + _SHARED_USERS_PER_QUERY]
                members.update((name, set()) for name in chunk)
                # Their memberships that changed after the cursor, and their active ones on
                # the boards of these rows, in one query.
                found = await conn.execute(
                    select(
                        Membership.username,
                        Membership.board,
                        Membership.active,
                        Membership.version,
                    ).where(
                        Membership.username.in_(chunk),
                        or_(Membership.board.in_(boards), Membership.version > start),
                    )
                )
                for name, board, active, version in found:
                    if start < version <= last_version:
                        moved.add(name)
                    if active and board in boards:
                        members[name].add(board)
        return SharedChanges(
            generation=generation,
            watermark=watermark,
            cursor=self._signer.encode(Cursor(generation, last_version)),
            rows=rows,
            members=members,
            moved=moved,
        )

    async def pull(self, principal: Principal, cursor_text: str | None, limit: int) -> Page:
        async with self._views.read() as conn:
            generation, last_version, watermark = await _info(conn)
            cursor = self._signer.decode(cursor_text) if cursor_text else None
            # A cursor past the last version these views wrote comes from a lifetime they
            # do not have (a restore by hand put older views back): walking on from it
            # would skip the rows the views write next under those versions.
            reset = (
                cursor is None or cursor.generation != generation or cursor.version > last_version
            )
            if cursor is None or reset:
                cursor = Cursor(generation, 0)
            reader = _PageReader(conn, principal.username, cursor, limit, last_version)
            active = await reader.active_boards()
            await reader.read_backfills(active)
            await reader.read_new_changes(active)
        return Page(
            changes=reader.changes,
            cursor=self._signer.encode(reader.next_cursor()),
            has_more=reader.has_more,
            watermark=watermark,
            generation=generation,
            reset=reset and cursor_text is not None,
        )


class _PageReader:
    def __init__(
        self, conn: AsyncConnection, username: str, cursor: Cursor, limit: int, last_version: int
    ) -> None:
        self.conn = conn
        self.username = username
        self.cursor = cursor
        self.limit = limit
        self.last_version = last_version
        """The last version the views wrote, in this read's snapshot."""
        self.changes: list[Any] = []
        self.backfills: list[Backfill] = []
        self.version = cursor.version
        self.has_more = False

    @property
    def room(self) -> int:
        return self.limit - len(self.changes)

    async def read_backfills(self, active: set[str]) -> None:
        for backfill in self.cursor.backfills:
            if backfill.board not in active:
                continue  # access lost again: the removal comes with the member row
            if self.room <= 0:
                self.backfills.append(backfill)
                continue
            rows = await self._rows(
                and_(
                    View.board == backfill.board,
                    View.version > backfill.after,
                    View.version <= backfill.upper,
                ),
                self.room + 1,
            )
            taken = rows[: self.room]
            self._emit(taken)
            if len(rows) > len(taken):
                self.backfills.append(Backfill(backfill.board, backfill.upper, taken[-1][3]))
        self.has_more = bool(self.backfills)

    async def read_new_changes(self, active: set[str]) -> None:
        if self.room <= 0:
            self.has_more = True
            return
        start = self.cursor.version
        rows = await self._rows(
            and_(View.board.in_(sorted(active)), View.version > start), self.room + 1
        )
        taken = rows[: self.room]
        if len(rows) > len(taken):
            self.has_more = True
            end = taken[-1][3]
        else:
            end = self.last_version
        own = await self.conn.execute(
            select(Membership.board, Membership.active, Membership.version)
            .where(
                Membership.username == self.username,
                Membership.version > start,
                Membership.version <= end,
            )
            .order_by(Membership.version)
        )
        removals = []
        for board, is_active, version in own:
            if is_active and start > 0:
                self.backfills.append(Backfill(board, start))
            elif not is_active:
                removals.append(RemovedBoard("board", board, board, version, True, None))
        self._emit(taken)
        self.changes.extend(removals)
        self.has_more = self.has_more or bool(self.backfills)
        self.version = max(self.version, end)

    def next_cursor(self) -> Cursor:
        return Cursor(self.cursor.generation, self.version, self.backfills)

    async def active_boards(self) -> set[str]:
        rows = await self.conn.execute(
            select(Membership.board).where(
                Membership.username == self.username, Membership.active.is_(True)
            )
        )
        return set(rows.scalars())

    async def _rows(self, condition: Any, limit: int) -> list[Any]:
        """(kind, id, board, version, values, meta) of the visible rows, by version."""
        visible = or_(View.audience.is_(None), View.audience == self.username)
        query = (
            select(View.kind, View.id, View.board, View.version, View.values, View.meta)
            .where(condition, visible)
            .order_by(View.version)
            .limit(limit)
        )
        return list(await self.conn.execute(query))  # rows unpack as tuples

    def _emit(self, rows: list[Any]) -> None:
        raw = msgspec.Raw
        self.changes += [
            RowChange(kind, id_, board, version, raw(values), raw(meta))
            for kind, id_, board, version, values, meta in rows
            if values is not None  # not created yet: it comes once it is
        ]


async def _info(conn: AsyncConnection) -> tuple[str, int, int]:
    """(generation, last version, watermark) of the views, in one query: every pull and
    every live page asks for all three."""
    values: dict[str, str] = dict(await direct.fetch(conn, _INFO_QUERY, {}))
    seqs = [int(values.get(f"position:{component}") or 0) for component in PULL_SERVING]
    return values.get("generation") or "0", int(values.get("version") or 0), min(seqs)


_INFO_QUERY = union_all(
    select(Info.key, Info.value).where(Info.key.in_(("generation", "version"))),
    select(literal("position:") + positions.c.component, cast(positions.c.seq, Text)).where(
        positions.c.component.in_(PULL_SERVING)
    ),
)


def page_body(page: Page, server_time: int) -> bytes:
    """A page as SPEC 6 shapes it: the body of a pull, and the data of ``event: changes``."""
    return msgspec.json.encode(
        {
            "changes": page.changes,
            "cursor": page.cursor,
            "has_more": page.has_more,
            "watermark": page.watermark,
            "server_time": server_time,
            "generation": page.generation,
            "reset": page.reset,
        }
    )
