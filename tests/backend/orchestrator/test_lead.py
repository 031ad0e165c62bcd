"""A board's reminder lead time without a backend: the reminder's id leaves its time out
(so a lead change cannot remind twice), a plan follows the lead, the route pair's OPTIONS
and documents, the CLI's durations; and on a real PostgreSQL, the per-board lock that makes
a lead change and the planning of the board's reminders take turns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import msgspec
import nats
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import insert, select, text

from backend.bff.app import Services, create_app
from backend.bff.models import BoardAuthority
from backend.config import Settings
from backend.db import Database
from backend.errors import StreamUnavailable
from backend.orchestrator.component import (
    BoardReminders,
    TaskProcess,
    lock_leads,
    plan_of,
    reminder_event,
    same_reminder,
)
from backend.orchestrator.rules import reminder_fire_ms
from backend.orchestrator.services import ReminderService
from backend.orchestrator.timers import Plan, Timers
from client.errors import InvalidAction
from client.reminders import format_duration, parse_duration
from outpost.docs import _NoServices
from protocol.ids import new_id
from protocol.merge.state import EntityState, Register
from tests.support.backend import ControlledNats


def _plan(fire_ms: int, assignee: str = "bob", cause: str = "c1") -> Plan:
    return Plan(
        task="t1",
        board="b1",
        assignee=assignee,
        due="2026-12-10",
        cause=cause,
        fire_ms=fire_ms,
        key=f"t1/{cause}/{assignee}/{fire_ms}",
    )


def test_a_reminder_at_another_time_is_the_same_event() -> None:
    early, late = _plan(1_000_000_000_000), _plan(1_000_086_400_000)
    assert same_reminder(early, late)
    assert early.key != late.key, "a stale schedule is still told apart"
    assert reminder_event(early).id == reminder_event(late).id
    assert reminder_event(_plan(1, assignee="carol")).id != reminder_event(early).id
    assert reminder_event(_plan(1, cause="c2")).id != reminder_event(early).id
    assert not same_reminder(early, _plan(1, cause="c2"))


def test_a_plan_fires_at_due_less_the_boards_lead() -> None:
    state = EntityState(
        kind="task",
        id="t1",
        board="b1",
        created=True,
        fields={
            "due": Register(value="2026-12-10", hlc="h", id="e-due"),
            "assignee": Register(value="bob", hlc="h", id="e-a"),
        },
    )
    for lead in (0, 7200, 30 * 86400):
        plan = plan_of(state, lead)
        assert plan is not None
        assert plan.fire_ms == reminder_fire_ms("2026-12-10", lead)
        assert (plan.cause, plan.assignee) == ("e-due", "bob")


@pytest.fixture(scope="module")
def app() -> Litestar:
    return create_app(cast(Services, _NoServices(Settings())))


def test_the_route_pair_answers_options_and_is_documented(app: Litestar) -> None:
    reply = TestClient(app).options("/v1/boards/b/reminders")
    assert reply.status_code == 204
    assert reply.headers["allow"] == "DELETE, GET, OPTIONS, PUT"
    path = (app.openapi_schema.paths or {})["/v1/boards/{board}/reminders"]
    assert path.get is not None and path.put is not None and path.delete is not None
    assert {"200", "401", "403", "404", "422"} <= set(path.put.responses or {})
    assert path.put.security == [{"bearer": []}]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1d12h", 129600), ("1w", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2x", "h2", "-1h", "1.5h", "2h soon"])
def test_a_bad_duration_is_a_usage_error(text: str) -> None:
    with pytest.raises(InvalidAction, match="a number of seconds or parts like"):
        parse_duration(text)


@pytest.mark.integration
def test_on_postgresql_a_lead_change_and_planning_take_turns_per_board(
    pg_url: str, tmp_path: Path
) -> None:
    """Two transactions lock the same board: the second waits for the first (seen waiting in
    ``pg_locks``) and then reads the lead the first committed, even when the board had no
    lead row before (a row lock would have locked nothing)."""

    async def scenario() -> tuple[float, float]:
        db = Database.for_component("orchestrator", data_dir=tmp_path, url=pg_url)
        await db.migrate()
        try:
            first_locked = asyncio.Event()
            release = asyncio.Event()

            async def first() -> float:
                async with db.write() as conn:
                    leads = await lock_leads(conn, {"b1"}, 86400.0)
                    first_locked.set()
                    await release.wait()
                    await conn.execute(insert(BoardReminders).values(board="b1", lead_s=60))
                    return leads["b1"]

            async def second() -> float:
                await first_locked.wait()
                async with db.write() as conn:
                    return (await lock_leads(conn, {"b1", "b2"}, 86400.0))["b1"]

            one, two = asyncio.create_task(first()), asyncio.create_task(second())
            while not two.done() and not await _waiting_for_an_advisory_lock(db):
                await asyncio.sleep(0.02)  # the second waits, or (no lock) ends at once
            release.set()
            return await one, await two
        finally:
            await db.dispose()

    assert asyncio.run(scenario()) == (86400.0, 60.0)


async def _waiting_for_an_advisory_lock(db: Database) -> bool:
    async with db.engine.connect() as conn:
        waiting = await conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
        return bool(waiting.scalar())


@pytest.mark.integration
def test_a_lead_change_nats_cannot_take_is_a_503_and_changes_nothing(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    """The re-plan publishes inside the transaction: when NATS fails, the lead and the
    stored plans stay as they were and the owner is told to try again."""

    async def scenario() -> None:
        bff = Database.for_component("bff", data_dir=tmp_path, url=None)
        orchestrator = Database.for_component("orchestrator", data_dir=tmp_path, url=None)
        await bff.migrate()
        await orchestrator.migrate()
        board, task = new_id(), new_id()
        owned = EntityState(
            kind="board",
            id=board,
            board=board,
            created=True,
            fields={"owner": Register(value="alice", hlc="h", id="e0")},
        )
        state = EntityState(
            kind="task",
            id=task,
            board=board,
            created=True,
            fields={
                "due": Register(value="2026-12-10", hlc="h", id="e1"),
                "assignee": Register(value="bob", hlc="h", id="e2"),
            },
        )
        plan = plan_of(state, 86400.0)
        assert plan is not None
        async with bff.write() as conn:
            await conn.execute(
                insert(BoardAuthority).values(id=board, state=msgspec.json.encode(owned).decode())
            )
        async with orchestrator.write() as conn:
            await conn.execute(
                insert(TaskProcess).values(
                    id=task,
                    board=board,
                    state=msgspec.json.encode(state).decode(),
                    reminder="planned",
                    reminder_plan=msgspec.json.encode(plan).decode(),
                    recurrence="open",
                )
            )
        nc = await nats.connect(controlled_nats.url)
        await nc.close()  # NATS away: every publish fails
        service = ReminderService(orchestrator, bff, Timers(nc), default_s=86400.0)
        try:
            with pytest.raises(StreamUnavailable, match="the lead time is unchanged; try again"):
                await service.set_lead("alice", board, 3600)
            assert (await service.settings("alice", board)).default is True
            async with orchestrator.read() as conn:
                stored = (
                    await conn.execute(
                        select(TaskProcess.reminder_plan).where(TaskProcess.id == task)
                    )
                ).scalar()
            assert stored == msgspec.json.encode(plan).decode(), "the plan as it was"
        finally:
            await bff.dispose()
            await orchestrator.dispose()

    asyncio.run(scenario())
