"""What the reminder-setting routes do: a board's owner reads, sets or clears the board's
reminder lead time (the orchestrator's own data, in its database: SPEC's ``BoardUpdated``
carries no such field), and a change re-plans the board's planned reminders.

Who owns a board is the BFF's to say (its board authority), as for the gateway's
registrations. The re-planning publishes to ``OUTPOST_SCHEDULES`` from this process (the
schedule of a task is replaced, so each fires once, at its new time) and commits the new
plans in the orchestrator's database in the same transaction as the lead, with the board locked: the
orchestrator's planning and firing take turns with it (``lock_leads``).
"""

from __future__ import annotations

from nats.errors import Error as NatsError
from sqlalchemy import delete, select

from backend.bff.owners import board_owner
from backend.db import Database, upsert
from backend.errors import StreamUnavailable
from backend.orchestrator.component import BoardReminders, lock_leads, replan_board
from backend.orchestrator.errors import LeadOutOfRange, NotBoardOwner, UnknownBoard
from backend.orchestrator.schemas import MAX_LEAD_S, ReminderSettings
from backend.orchestrator.timers import Timers

__all__ = ["ReminderService"]


class ReminderService:
    def __init__(self, db: Database, bff_db: Database, timers: Timers, *, default_s: float):
        self.db = db
        self._bff_db = bff_db
        self._timers = timers
        self.default_s = default_s

    async def settings(self, username: str, board: str) -> ReminderSettings:
        await self._require_owner(board, username)
        async with self.db.read() as conn:
            lead = (
                await conn.execute(
                    select(BoardReminders.lead_s).where(BoardReminders.board == board)
                )
            ).scalar()
        if lead is None:
            return ReminderSettings(board=board, lead_s=round(self.default_s), default=True)
        return ReminderSettings(board=board, lead_s=int(lead), default=False)

    async def set_lead(self, username: str, board: str, lead_s: int | None) -> ReminderSettings:
        """Set the board's lead (None: back to the default) and re-plan its reminders."""
        if lead_s is not None and not 0 <= lead_s <= MAX_LEAD_S:
            raise LeadOutOfRange(
                f"lead_s {lead_s}: whole seconds from 0 to {MAX_LEAD_S} (30 days), "
                "or null for the default"
            )
        await self._require_owner(board, username)
        effective = self.default_s if lead_s is None else float(lead_s)
        try:
            async with self.db.write() as conn:
                await lock_leads(conn, {board}, self.default_s)
                if lead_s is None:
                    await conn.execute(delete(BoardReminders).where(BoardReminders.board == board))
                else:
                    rows = [{"board": board, "lead_s": lead_s}]
                    await upsert(conn, BoardReminders, rows, ["board"])
                replanned = await replan_board(conn, self._timers, board, effective)
        except (NatsError, TimeoutError) as exc:
            # Rolled back: the lead is unchanged. A schedule already replaced fires at its
            # new time and still reminds once (``Orchestrator.fired`` allows the time).
            raise StreamUnavailable(
                f"the reminder schedules cannot be planned again now ({exc!r}): "
                "the lead time is unchanged; try again",
                retry_after=5,
            ) from None
        return ReminderSettings(
            board=board,
            lead_s=round(effective),
            default=lead_s is None,
            replanned=len(replanned),
        )

    async def _require_owner(self, board: str, username: str) -> None:
        owner = await board_owner(self._bff_db, board)
        if owner is None:
            raise UnknownBoard(f"no board {board}")
        if owner != username:
            raise NotBoardOwner("only the board's owner sets its reminder lead time")
