"""``BackendWriter``: how backend components write events, through a push's decisions.

The orchestrator and the external service gateway write events of their own (SPEC 6c): a
reminder's notice, a recurring task's next occurrence, an inbound delivery turned into a
domain event. They go through the decision path of a device's push (``PushService``), so
what holds for a push holds for them:

- validation as the backend's (``Writer.BACKEND``): version 5 ids, derived from what caused
  them, so a redelivery or a replay of the cause writes the same id again;
- the id record: an id written before is ``duplicate`` with its first seq, never new; the
  same id with other content is ``id_conflict``;
- the authority of a named user, the board owner who set the rule up: the event is decided
  as if that user had pushed it (member of the board, owner-only types, archived boards),
  and is stamped with that user as its actor;
- per-board serialization: the same board lock rows as every push, in one transaction of
  the BFF's database, across processes.

Unlike a push, it checks and claims no device: the backend's writer is not a user's device.
A stream failure raises ``StreamUnavailable`` after the decisions are written; writing the
same events again publishes them without deciding again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from backend.bff.sync.push import PushService
from backend.bff.sync.schemas import PushResult
from backend.db import Database
from backend.nats.publisher import Publisher
from protocol import Event

__all__ = ["BackendWriter", "EventWriter"]


class EventWriter(Protocol):
    """What a component needs to write events (``BackendWriter``, or a test's twin)."""

    async def write(self, events: Sequence[Event], *, on_behalf_of: str) -> list[PushResult]: ...


class BackendWriter:
    """Writes backend events through the push decisions, on behalf of a named user."""

    def __init__(
        self, bff_db: Database, publisher: Publisher, *, publish_timeout_s: float = 5.0
    ) -> None:
        self._service = PushService(bff_db, publisher, publish_timeout_s=publish_timeout_s)

    async def write(self, events: Sequence[Event], *, on_behalf_of: str) -> list[PushResult]:
        """One result per event, in order: ``accepted`` or ``duplicate`` with its seq, or
        ``rejected`` with a reason (``invalid``, ``forbidden``, ``archived``,
        ``id_conflict``, ``clock_skew``) and a detail."""
        if not events:
            return []
        return await self._service.write_as_backend(events, on_behalf_of)
