"""The orchestrator: a mediator per business process (SPEC 6c), a stream component.

It follows ``OUTPOST_EVENTS`` through the shared ``ConsumerRunner`` (its own position,
breaker and lease) and keeps in its own database each board's owner and each
task's merged state, with the state of its two processes (``rules.py``: reminders and
recurring tasks). For every task event it compares the task's state before and after (in
stream order, with the protocol's merge rules), turns the difference into signals, looks
them up in the processes' tables and runs the actions:

- ``plan``: a message schedule on ``OUTPOST_SCHEDULES`` (``timers.py``), one per task,
  replaced by planning again; ``cancel``: the schedule purged;
- ``remind`` (when the schedule fires, ``Orchestrator.fired``): a ``ReminderDue`` written
  through the backend writer on behalf of the board's owner, which the projector turns
  into a ``notice`` for the assignee with ``reason: "reminder"``;
- ``spawn``: the next occurrence, a ``TaskCreated`` written through the backend writer.

A reminder fires at the due date's 00:00 UTC less its board's lead time: the board's own
(``BoardReminders``, set by its owner through ``backend/orchestrator/services.py``), or
``OUTPOST_REMINDER_LEAD_S``. A new lead re-plans the board's planned reminders
(``replan_board``).

What it writes has ids derived from what caused it (the reminder from the task, its
due-date event and assignee, not its time; the next occurrence from the finished task), so a
redelivery, a restart, a replay from the lake or a rebuild writes nothing new: the
writer's id record answers ``duplicate``. Plans and states commit with the stream position
in the runner's transaction; a schedule published before a failed commit is published
again, the same, on the retry.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Integer, String, Text, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.consumers.component import Outcome, positions_table
from backend.db import Database, Key, upsert
from backend.errors import BackendError
from backend.orchestrator import rules
from backend.orchestrator.timers import Plan, Timers
from backend.writer import EventWriter
from protocol import Event, derived_id, format_hlc, merge, parse_hlc
from protocol.catalog import (
    BoardCreated,
    ReminderDue,
    TaskCreated,
    TaskDeleted,
    TaskLabelAdded,
    TaskLabelRemoved,
    TaskRestored,
    TaskUpdated,
)
from protocol.errors import MergeError
from protocol.merge import EntityKey, EntityState
from protocol.recurrence import Recurrence, completes, next_due

log = logging.getLogger(__name__)

NODE = "outpost-orchestrator"
"""The device and hlc node of the events the orchestrator writes."""


class OrchestratorBase(DeclarativeBase):
    pass


class BoardOwner(OrchestratorBase):
    __tablename__ = "boards"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    owner: Mapped[str] = mapped_column(Key(32))


class BoardReminders(OrchestratorBase):
    """A board's own reminder lead time, set by its owner (``PUT /v1/boards/{board}/reminders``):
    the orchestrator's data, not an event, so a rebuild (``start_over``) keeps it."""

    __tablename__ = "board_reminders"
    board: Mapped[str] = mapped_column(Key(), primary_key=True)
    lead_s: Mapped[int] = mapped_column(Integer)


class TaskProcess(OrchestratorBase):
    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    board: Mapped[str] = mapped_column(Key())
    state: Mapped[str] = mapped_column(Text)
    """The task's merged state (an EntityState)."""
    reminder: Mapped[str] = mapped_column(String(16))
    reminder_plan: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The planned reminder (a ``Plan`` as JSON) while ``reminder`` is planned or sent."""
    recurrence: Mapped[str] = mapped_column(String(16))


positions = positions_table(OrchestratorBase.metadata)

_decode_state = msgspec.json.Decoder(EntityState).decode
_decode_plan = msgspec.json.Decoder(Plan).decode
_encode = msgspec.json.encode

_TASK_EVENTS = (
    TaskCreated,
    TaskUpdated,
    TaskLabelAdded,
    TaskLabelRemoved,
    TaskDeleted,
    TaskRestored,
)


class WriteFailed(BackendError):
    """The backend writer could not store an event the orchestrator must write (retried)."""


@dataclass
class _Row:
    board: str
    state: EntityState | None
    reminder: str
    plan: Plan | None
    recurrence: str


class Orchestrator:
    name = "orchestrator"
    serves_pull = False
    positions = positions

    def __init__(self, db: Database, writer: EventWriter, timers: Timers, *, lead_s: float) -> None:
        self.db = db
        self.writer = writer
        self.timers = timers
        self.lead_s = lead_s

    async def prepare(self) -> None:
        await self.db.migrate()
        await self.timers.prepare()

    async def start_over(self, conn: AsyncConnection) -> None:
        for model in (BoardOwner, TaskProcess):
            await conn.execute(delete(model))
        await conn.execute(delete(positions))

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        owners = {e.board: e.require_actor() for e in events if isinstance(e.payload, BoardCreated)}
        await upsert(conn, BoardOwner, [{"id": b, "owner": o} for b, o in owners.items()], ["id"])
        tasks = [e for e in events if isinstance(e.payload, _TASK_EVENTS)]
        if not tasks:
            return Outcome()
        leads = await lock_leads(conn, {e.board for e in tasks}, self.lead_s)
        rows = await _load(conn, {e.entity for e in tasks})
        changed: set[str] = set()
        for event in tasks:
            row = rows.get(event.entity) or _Row(
                event.board, None, rules.INITIAL["reminder"], None, rules.INITIAL["recurrence"]
            )
            before = row.state
            try:
                key = EntityKey("task", event.entity)
                after = merge.apply(before or merge.new_state(key, event.board), event)
            except MergeError:  # not a task of this board: the projector faults it
                continue
            row.state = after
            rows[event.entity] = row
            changed.add(event.entity)
            await self._reminder(row, after, leads[event.board])
            await self._recurrence(conn, row, before, after, event)
        await upsert(conn, TaskProcess, [_columns(i, rows[i]) for i in sorted(changed)], ["id"])
        return Outcome()

    async def _reminder(self, row: _Row, after: EntityState, lead_s: float) -> None:
        plan = plan_of(after, lead_s)
        if plan is not None and row.plan is not None:
            if plan == row.plan:
                return  # nothing the reminder depends on changed
            if row.reminder == "sent" and same_reminder(plan, row.plan):
                return  # sent already: a new lead time sends it no second time
        signal = "armed" if plan is not None else "disarmed"
        transition = rules.step(rules.REMINDER, row.reminder, signal)
        for action in transition.actions:
            if action == "plan":
                assert plan is not None
                await self.timers.plan(plan)
                row.plan = plan
            elif action == "cancel":
                await self.timers.cancel(after.id)
        if transition.next_state == "idle":
            row.plan = None
        row.reminder = transition.next_state

    async def _recurrence(
        self,
        conn: AsyncConnection,
        row: _Row,
        before: EntityState | None,
        after: EntityState,
        event: Event,
    ) -> None:
        recurrence = completes(before, after)
        if recurrence is None:
            return
        transition = rules.step(rules.RECURRENCE, row.recurrence, "completed")
        for action in transition.actions:
            if action == "spawn":
                await self._spawn(conn, after, recurrence, event)
        row.recurrence = transition.next_state

    async def _spawn(
        self, conn: AsyncConnection, task: EntityState, recurrence: Recurrence, done: Event
    ) -> None:
        owner = await _owner(conn, task.board)
        if owner is None:
            log.warning("orchestrator: board %s has no known owner; no recurrence", task.board)
            return
        finished_due = task.value("due")
        done_hlc = task.fields["status"].hlc
        wall, counter, _ = parse_hlc(done_hlc)
        base = (
            datetime.date.fromisoformat(finished_due)
            if isinstance(finished_due, str)
            else datetime.datetime.fromtimestamp(wall / 1000, datetime.UTC).date()
        )
        payload = TaskCreated(
            title=task.value("title"),
            position=task.value("position"),
            notes=task.value("notes", ""),
            priority=task.value("priority", 0),
            due=next_due(base, recurrence).isoformat(),
            assignee=task.value("assignee"),
            labels=sorted(task.labels()),
        )
        spawned = Event(
            id=derived_id("recurrence", task.id),
            type="TaskCreated",
            schema=1,
            board=task.board,
            entity=derived_id("recurrence-task", task.id),
            hlc=format_hlc(wall, counter, NODE),
            device=NODE,
            payload=payload,
        )
        await self._write(spawned, owner, what=f"the next occurrence of task {task.id}")

    async def fired(self, plan: Plan) -> None:
        """A reminder's schedule fired: remind, if it is still the task's reminder (the
        same due-date event and assignee; a stale one, re-planned for another due date or
        assignee or cancelled since, is dropped). Only its time may differ: a lead change
        whose schedules and stored plans disagree (NATS failed midway, or this one fired
        while the lead changed) reminds once, not never; a reminder already sent is not
        sent again (``sent`` has no ``fired`` transition, and its id leaves the time out)."""
        async with self.db.write() as conn:
            await lock_leads(conn, {plan.board}, self.lead_s)  # a lead change waits its turn
            row = (await _load(conn, {plan.task})).get(plan.task)
            if row is None or row.plan is None or not same_reminder(row.plan, plan):
                log.info("orchestrator: reminder %s is no longer planned; dropped", plan.key)
                return
            transition = rules.step(rules.REMINDER, row.reminder, "fired")
            for action in transition.actions:
                if action == "remind":
                    owner = await _owner(conn, plan.board)
                    if owner is None:
                        log.warning("orchestrator: board %s has no known owner", plan.board)
                        continue
                    await self._write(reminder_event(plan), owner, what=f"reminder {plan.key}")
            await conn.execute(
                update(TaskProcess)
                .where(TaskProcess.id == plan.task)
                .values(reminder=transition.next_state)
            )

    async def _write(self, event: Event, owner: str, *, what: str) -> None:
        [result] = await self.writer.write([event], on_behalf_of=owner)
        if result.status == "rejected":
            # Final: the owner may not write it now (board archived, owner gone).
            log.warning("orchestrator: %s refused: %s (%s)", what, result.reason, result.detail)
        else:
            log.info("orchestrator: %s %s (seq %s)", what, result.status, result.seq)


def plan_of(state: EntityState, lead_s: float) -> Plan | None:
    """The reminder a task should have now with the board's lead time, or None (disarmed)."""
    due, assignee = state.value("due"), state.value("assignee")
    if not state.created or state.value("deleted", False) or state.value("status") == "done":
        return None
    if not isinstance(due, str) or not isinstance(assignee, str):
        return None
    cause = state.fields["due"].id
    fire_ms = rules.reminder_fire_ms(due, lead_s)
    return Plan(
        task=state.id,
        board=state.board,
        assignee=assignee,
        due=due,
        cause=cause,
        fire_ms=fire_ms,
        key=f"{state.id}/{cause}/{assignee}/{fire_ms}",
    )


def same_reminder(a: Plan, b: Plan) -> bool:
    """The same reminder, perhaps at another time: the same task, due date (its event) and
    assignee. It is written once, whenever it fires (``reminder_event``)."""
    return (a.task, a.cause, a.assignee, a.due) == (b.task, b.cause, b.assignee, b.due)


async def lock_leads(conn: AsyncConnection, boards: set[str], default_s: float) -> dict[str, float]:
    """Each board's reminder lead time (its own, or ``default_s``), with the boards locked
    until the transaction ends, so a lead change (``ReminderService``) and the planning
    and firing of the board's reminders take turns: on PostgreSQL a transaction-scoped
    advisory lock per board (in one order: no deadlock; whether or not the board has a
    lead row yet), on SQLite the write transaction, which holds the whole database."""
    if conn.dialect.name == "postgresql":
        for board in sorted(boards):
            await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(board, 0))))
    leads = dict.fromkeys(boards, default_s)
    if boards:
        found = await conn.execute(
            select(BoardReminders.board, BoardReminders.lead_s).where(
                BoardReminders.board.in_(sorted(boards))
            )
        )
        leads.update({row.board: float(row.lead_s) for row in found})
    return leads


async def replan_board(
    conn: AsyncConnection, timers: Timers, board: str, lead_s: float
) -> list[Plan]:
    """Plan every planned reminder of a board again with a new lead time: each schedule is
    replaced (one per task), so it fires once, at the new time. Sent reminders stay sent.
    Returns the new plans."""
    replanned: list[Plan] = []
    rows = await conn.execute(
        select(TaskProcess.id, TaskProcess.state, TaskProcess.reminder_plan)
        .where(TaskProcess.board == board, TaskProcess.reminder == "planned")
        .order_by(TaskProcess.id)
    )
    for row in list(rows):
        plan = plan_of(_decode_state(row.state), lead_s)
        old = _decode_plan(row.reminder_plan) if row.reminder_plan else None
        if plan is None or plan == old:
            continue
        await timers.plan(plan)
        await conn.execute(
            update(TaskProcess)
            .where(TaskProcess.id == row.id)
            .values(reminder_plan=_encode(plan).decode())
        )
        replanned.append(plan)
    return replanned


def reminder_event(plan: Plan) -> Event:
    """The reminder of one plan: the same event however often it fires, and whatever its
    time (its id leaves the time out), so a reminder re-planned by a new lead time after it
    was sent is answered ``duplicate``: one reminder per task, due date and assignee."""
    due = datetime.date.fromisoformat(plan.due)
    message = f"Reminder: this task is due on {due.strftime('%A')} {plan.due}"
    return Event(
        id=derived_id("reminder", f"{plan.task}/{plan.cause}/{plan.assignee}"),
        type="ReminderDue",
        schema=1,
        board=plan.board,
        entity=plan.task,
        hlc=format_hlc(max(plan.fire_ms, 10**12), 0, NODE),
        device=NODE,
        payload=ReminderDue(
            assignee=plan.assignee, due=plan.due, cause=plan.cause, message=message
        ),
    )


async def _owner(conn: AsyncConnection, board: str) -> str | None:
    row = (await conn.execute(select(BoardOwner.owner).where(BoardOwner.id == board))).first()
    return None if row is None else str(row.owner)


async def _load(conn: AsyncConnection, ids: set[str]) -> dict[str, _Row]:
    rows: dict[str, _Row] = {}
    for row in await conn.execute(select(TaskProcess).where(TaskProcess.id.in_(sorted(ids)))):
        plan = _decode_plan(row.reminder_plan) if row.reminder_plan else None
        rows[row.id] = _Row(row.board, _decode_state(row.state), row.reminder, plan, row.recurrence)
    return rows


def _columns(task: str, row: _Row) -> dict[str, Any]:
    assert row.state is not None
    return {
        "id": task,
        "board": row.board,
        "state": _encode(row.state).decode(),
        "reminder": row.reminder,
        "reminder_plan": _encode(row.plan).decode() if row.plan else None,
        "recurrence": row.recurrence,
    }
