"""The workload component: the WIP-limit check of the saga (SPEC section 5).

It follows ``OUTPOST_EVENTS`` in stream order and keeps, in its own database, the merged
state of what the check needs: each board's ``wip_limit`` and each task's ``status``,
``assignee`` and ``deleted`` registers (folded with the protocol's merge rules, so a late
event that loses the merge changes nothing), plus whom each task counts against. For every
*cause* (``protocol.saga.possible_cause``, then the assignee's load) it publishes a
``WipLimitExceeded`` on the board's subject; the compensator in the projector
(``backend.saga.compensator``) answers it with the compensation.

Exactly once in effect: the states and the stream position commit in one transaction, and
the event it publishes has an id derived from the cause's and is published once for good
(``backend.consumers.publishing``: a redelivery, a restart or a rebuild adds no copy).
Compensations are folded in like any event but are never causes.
It does not serve pull, so it never holds back the watermark.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

import msgspec
from sqlalchemy import Boolean, Integer, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.consumers.component import Outcome, positions_table
from backend.consumers.publishing import publish_once, published_table
from backend.db import Database, Key, upsert
from backend.nats.publisher import Publisher
from protocol import Event, merge
from protocol.catalog import BoardCreated, BoardUpdated
from protocol.errors import MergeError
from protocol.merge import EntityKey, EntityState
from protocol.saga import (
    SAGA_FIELDS,
    could_cause,
    is_compensation,
    possible_cause,
    wip_assignee,
    wip_limit,
    wip_limit_exceeded,
)


class WorkloadBase(DeclarativeBase):
    pass


class BoardLimit(WorkloadBase):
    __tablename__ = "boards"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    """The board's ``wip_limit`` register, as an EntityState."""
    wip_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TaskLoad(WorkloadBase):
    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    board: Mapped[str] = mapped_column(Key())
    state: Mapped[str] = mapped_column(Text)
    """The task's saga registers (status, assignee, deleted), as an EntityState."""
    counts_for: Mapped[str | None] = mapped_column(Key(32), nullable=True, index=True)
    """The assignee this task counts against (doing, not deleted), or None."""
    counting: Mapped[bool] = mapped_column(Boolean, default=False)


positions = positions_table(WorkloadBase.metadata)
published = published_table(WorkloadBase.metadata)
"""Ids this component had stored (kept across a rebuild: a replay never publishes twice)."""

_decode_state = msgspec.json.Decoder(EntityState).decode
_encode = msgspec.json.encode


def _trim(state: EntityState, names: Iterable[str]) -> EntityState:
    wanted = set(names)
    fields = {k: v for k, v in state.fields.items() if k in wanted}
    return msgspec.structs.replace(state, fields=fields, tags={}, tombstones={})


class Workload:
    name = "workload"
    serves_pull = False
    positions = positions

    def __init__(self, db: Database, publisher: Publisher) -> None:
        self.db = db
        self.publisher = publisher

    async def prepare(self) -> None:
        await self.db.migrate()

    async def start_over(self, conn: AsyncConnection) -> None:
        for model in (BoardLimit, TaskLoad):
            await conn.execute(delete(model))
        await conn.execute(delete(positions))

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        relevant = [e for e in events if _relevant(e)]
        if not relevant:
            return Outcome()
        batch = _Batch(conn)
        await batch.load(relevant)
        causes: list[Event] = []
        for event in relevant:
            if isinstance(event.payload, BoardCreated | BoardUpdated):
                batch.apply_board(event)
            else:
                exceeded = await batch.apply_task(event)
                if exceeded is not None:
                    causes.append(exceeded)
        await batch.save()
        # Before the commit: a failure retries the batch; once stored, never again.
        await publish_once(conn, self.publisher, published, causes)
        return Outcome()


def _relevant(event: Event) -> bool:
    payload = event.payload
    if isinstance(payload, BoardCreated | BoardUpdated):
        return isinstance(payload, BoardCreated) or "wip_limit" in payload.fields.items()
    return could_cause(event) or is_compensation(event)


class _Batch:
    """One batch's states in memory, read once and written once."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.boards: dict[str, EntityState] = {}
        self.tasks: dict[str, EntityState] = {}
        self.changed_boards: set[str] = set()
        self.changed_tasks: set[str] = set()
        self.stored_load: dict[tuple[str, str], int] = {}
        """(board, assignee) -> tasks counting in the database (before this batch)."""
        self.delta: Counter[tuple[str, str]] = Counter()

    async def load(self, events: list[Event]) -> None:
        board_ids = list({e.board for e in events})
        task_ids = list({e.entity for e in events if e.entity != e.board})
        for row in await self.conn.execute(
            select(BoardLimit.state).where(BoardLimit.id.in_(board_ids))
        ):
            state = _decode_state(row.state)
            self.boards[state.id] = state
        if task_ids:
            for row in await self.conn.execute(
                select(TaskLoad.state).where(TaskLoad.id.in_(task_ids))
            ):
                state = _decode_state(row.state)
                self.tasks[state.id] = state

    def apply_board(self, event: Event) -> None:
        key = EntityKey("board", event.board)
        state = self.boards.get(event.board) or merge.new_state(key, event.board)
        self.boards[event.board] = _trim(merge.apply(state, event), ["wip_limit"])
        self.changed_boards.add(event.board)

    async def apply_task(self, event: Event) -> Event | None:
        """Fold a task event; the ``WipLimitExceeded`` to publish if it is a cause."""
        key = EntityKey("task", event.entity)
        before = self.tasks.get(event.entity)
        try:
            after = merge.apply(before or merge.new_state(key, event.board), event)
        except MergeError:  # not a task of this board: the projector faults it; skip it
            return None
        after = _trim(after, SAGA_FIELDS)
        self.tasks[event.entity] = after
        self.changed_tasks.add(event.entity)
        was, now = wip_assignee(before), wip_assignee(after)
        if was == now:
            return None
        if was is not None:
            self.delta[(event.board, was)] -= 1
        if now is None:
            return None
        self.delta[(event.board, now)] += 1
        possible = possible_cause(event, before, after, self._limit(event.board))
        if possible is None or not possible.is_cause(await self._load_of(event.board, now)):
            return None
        return wip_limit_exceeded(event, now, possible.limit, int(time.time() * 1000))

    def _limit(self, board: str) -> int | None:
        return wip_limit(self.boards.get(board))

    async def _load_of(self, board: str, assignee: str) -> int:
        key = (board, assignee)
        if key not in self.stored_load:
            query = select(func.count()).where(
                TaskLoad.board == board, TaskLoad.counts_for == assignee, TaskLoad.counting
            )
            self.stored_load[key] = int((await self.conn.execute(query)).scalar() or 0)
        return self.stored_load[key] + self.delta[key]

    async def save(self) -> None:
        boards = [
            {
                "id": board,
                "state": _encode(self.boards[board]).decode(),
                "wip_limit": self._limit(board),
            }
            for board in self.changed_boards
        ]
        tasks = []
        for task in self.changed_tasks:
            state = self.tasks[task]
            assignee = wip_assignee(state)
            tasks.append(
                {
                    "id": task,
                    "board": state.board,
                    "state": _encode(state).decode(),
                    "counts_for": assignee,
                    "counting": assignee is not None,
                }
            )
        await upsert(self.conn, BoardLimit, boards, ["id"])
        await upsert(self.conn, TaskLoad, tasks, ["id"])
