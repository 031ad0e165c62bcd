"""The compensator: the task side of the WIP-limit saga (SPEC section 5), in the projector.

The projector owns the task views, so it runs the compensator inside its own transaction,
one ``Compensator`` per batch, through four calls:

- ``remember(event, before, after, board)`` for each event that may be a cause
  (``protocol.saga.possible_cause``): what a compensation would restore, the saga fields
  just before it in stream order (a ``saga_priors`` row of the projector's database);
- ``compensate(exceeded)`` for a ``WipLimitExceeded``: the compensating ``TaskUpdated``,
  with an id derived from the cause; False when the cause was never projected here;
- ``notify(compensation)`` when that compensation comes back through the stream: the
  notice for the cause's actor (``notices``: rows of the views only that user pulls,
  which the projector writes with its other rows);
- ``finish(publisher)`` before the commit: the priors are stored and the compensations published
  on the board's subject, the same path as device events, once for good
  (``backend.consumers.publishing``: a failure retries the batch; once stored, never again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.publishing import publish_once
from backend.db import insert_ignore
from backend.nats.publisher import Publisher
from backend.projector.models import SagaPrior, published
from protocol import Event
from protocol.catalog import TaskUpdated, WipLimitExceeded
from protocol.merge import EntityState
from protocol.saga import (
    NOTICE_REASON,
    compensation,
    notice_id,
    possible_cause,
    prior_values,
    wip_limit,
)

_encode = msgspec.json.encode


@dataclass
class Compensator:
    """The saga's task side for one batch of the projector."""

    conn: AsyncConnection
    priors: dict[str, dict[str, Any]] = field(default_factory=dict)
    compensations: list[Event] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    """Notice rows for the views (kind ``notice``, one ``audience``), without a version."""

    def remember(
        self,
        event: Event,
        before: EntityState | None,
        after: EntityState | None,
        board: EntityState | None,
    ) -> None:
        """Keep what a compensation of ``event`` would restore, if it may be a cause (the
        workload decides on the load). ``before``/``after``: its task's states around it;
        ``board``: its board's state (for the limit)."""
        if after is None or possible_cause(event, before, after, wip_limit(board)) is None:
            return
        self.priors[event.id] = {
            "event_id": event.id,
            "board": event.board,
            "task": event.entity,
            "actor": event.require_actor(),
            "hlc": event.hlc,
            "restored": _encode(prior_values(before, event)).decode(),
        }

    async def compensate(self, exceeded: Event) -> bool:
        """Make the compensation; False when the cause was never projected here."""
        payload = exceeded.payload
        assert isinstance(payload, WipLimitExceeded)
        prior = await self._prior(payload.cause)
        if prior is None:
            return False
        restored = msgspec.json.decode(prior["restored"])
        now_ms = int(time.time() * 1000)
        self.compensations.append(compensation(exceeded, prior["hlc"], restored, now_ms))
        return True

    async def notify(self, event: Event) -> None:
        """The notice to the cause's actor (SPEC section 5: one for every compensation,
        even one that a later edit of the same fields has already overtaken)."""
        payload = event.payload
        assert isinstance(payload, TaskUpdated) and isinstance(payload.compensates, str)
        prior = await self._prior(payload.compensates)
        if prior is None:
            return
        values = {
            "task": event.entity,
            "cause": payload.compensates,
            "reason": NOTICE_REASON,
            "message": payload.reason,
            "created_at": event.received_at or int(time.time() * 1000),
        }
        self.notices.append(
            {
                "kind": "notice",
                "id": notice_id(payload.compensates),
                "board": event.board,
                "state": "",
                "values": _encode(values).decode(),
                "meta": '{"fields":{},"labels":{}}',
                "audience": prior["actor"],
            }
        )

    async def finish(self, publisher: Publisher) -> None:
        """Store the priors and publish the compensations, in the projector's transaction
        and before its commit."""
        await insert_ignore(self.conn, SagaPrior, list(self.priors.values()), ["event_id"])
        await publish_once(self.conn, publisher, published, self.compensations)

    async def _prior(self, cause: str) -> dict[str, Any] | None:
        if cause in self.priors:
            return self.priors[cause]
        row = (
            await self.conn.execute(select(SagaPrior).where(SagaPrior.event_id == cause))
        ).first()
        return None if row is None else dict(row._mapping)
