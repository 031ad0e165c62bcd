"""The orchestrator's route pair, mounted in the BFF: a board's owner reads and sets the
board's reminder lead time (bearer). Each handler is one call to ``ReminderService``."""

from __future__ import annotations

from litestar import Controller, HttpMethod, Response, delete, get, put, route
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from backend.bff.auth.middleware import PUBLIC
from backend.bff.auth.tokens import Principal
from backend.bff.openapi import BEARER, errors
from backend.orchestrator.schemas import LeadRequest, ReminderSettings
from backend.orchestrator.services import ReminderService

__all__ = ["ReminderController"]


class ReminderController(Controller):
    """A board's reminder lead time: how long before a task's due date its assignee is
    reminded (the board's own, or the backend's default)."""

    path = "/v1/boards/{board:str}/reminders"
    tags = ("orchestrator",)
    security = BEARER

    # Litestar 2 answers OPTIONS on a path with several handlers with the methods of the
    # first one only (see the gateway's controllers): this one answers for the path.
    @route("/", http_method=[HttpMethod.OPTIONS], include_in_schema=False, opt={PUBLIC: True})
    async def _allow(self) -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": "DELETE, GET, OPTIONS, PUT"})

    @get("/", responses=errors(401, 403, 404, 429, 503))
    async def reminder_settings(
        self,
        board: FromPath[str],
        principal: NamedDependency[Principal],
        reminders: NamedDependency[ReminderService],
    ) -> ReminderSettings:
        """The board's reminder lead time, and whether it is the backend's default."""
        return await reminders.settings(principal.username, board)

    @put("/", responses=errors(400, 401, 403, 404, 422, 429, 503))
    async def set_reminder_lead(
        self,
        board: FromPath[str],
        data: JSONBody[LeadRequest],
        principal: NamedDependency[Principal],
        reminders: NamedDependency[ReminderService],
    ) -> ReminderSettings:
        """Set the board's lead time (null: the default); its planned reminders are planned
        again, each to fire once, at its new time. A reminder already sent is not sent again."""
        return await reminders.set_lead(principal.username, board, data.lead_s)

    @delete("/", status_code=200, responses=errors(401, 403, 404, 429, 503))
    async def clear_reminder_lead(
        self,
        board: FromPath[str],
        principal: NamedDependency[Principal],
        reminders: NamedDependency[ReminderService],
    ) -> ReminderSettings:
        """Back to the backend's default lead time; planned reminders are planned again."""
        return await reminders.set_lead(principal.username, board, None)
