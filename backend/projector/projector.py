"""The projector: folds the stream into the views with the protocol's merge rules.

Exactly-once effect: every applied event id is recorded in the same transaction as the
view rows it changed (and the runner records the stream position there too), so a
redelivery, a duplicate publish or a crash between commit and acknowledgement changes
nothing.

It is also the task side of the WIP-limit saga (SPEC section 5, ``protocol.saga``): for
each event that may be a cause it keeps what a compensation would restore (the saga fields
just before it, in stream order); on a ``WipLimitExceeded`` it publishes the compensating
``TaskUpdated`` on the board's subject, the same path as device events, with an id derived
from the cause (published before the commit, and once for good: see
``backend.consumers.publishing``); when that compensation comes back it is
folded like any event, and a notice for the cause's actor is written as a ``notice`` row
only that user pulls.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.js.client import JetStreamContext
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Outcome
from backend.consumers.publishing import publish_once
from backend.db import Database, add_counts, insert_ignore, upsert
from backend.projector.models import (
    Applied,
    Info,
    Membership,
    SagaPrior,
    View,
    positions,
    published,
)
from protocol import Event, MergeError, merge, new_id
from protocol.catalog import TaskUpdated, WipLimitExceeded
from protocol.merge import EntityKey, EntityState
from protocol.saga import (
    NOTICE_REASON,
    compensation,
    could_cause,
    is_compensation,
    notice_id,
    prior_values,
    wip_assignee,
    won_saga_field,
)

_state_decoder = msgspec.json.Decoder(EntityState)
_encode = msgspec.json.encode


class Projector:
    name = "projector"
    serves_pull = True

    positions = positions

    def __init__(self, db: Database, js: JetStreamContext) -> None:
        self.db = db
        self.js = js

    async def prepare(self) -> None:
        await self.db.migrate()
        await ensure_generation(self.db)

    async def start_over(self, conn: AsyncConnection) -> None:
        await start_over(conn)

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        outcome = Outcome()
        fresh = await _not_yet_applied(conn, events)
        states = await _load_states(conn, [k for e in fresh for k in _keys(e)])
        saga = _Saga(conn)
        changed: dict[EntityKey, EntityState] = {}
        applied: list[Event] = []
        for event in fresh:
            if isinstance(event.payload, WipLimitExceeded):
                if not await saga.compensate(event):
                    assert event.seq is not None  # resubmit it once the cause is projected
                    outcome.poison[event.seq] = "its cause was never projected here"
                    continue
                applied.append(event)
                continue
            try:
                updates = {
                    key: merge.apply(states.get(key) or merge.new_state(key, event.board), event)
                    for key in merge.keys_of(event)
                }
            except MergeError as exc:
                assert event.seq is not None
                outcome.poison[event.seq] = f"cannot fold: {exc}"
                continue
            if could_cause(event):
                saga.remember(event, states, updates)
            elif is_compensation(event):
                await saga.notify(event)
            states.update(updates)
            changed.update(updates)
            applied.append(event)
        await self._write(conn, changed, saga.notices, outcome)
        # The ledger counts applications, so an event let through twice shows it.
        times = Counter(e.id for e in applied)
        seqs = {e.id: e.seq for e in applied}
        await add_counts(
            conn,
            Applied,
            [{"event_id": i, "seq": seqs[i], "times": n} for i, n in times.items()],
            ["event_id"],
            "times",
        )
        await insert_ignore(conn, SagaPrior, list(saga.priors.values()), ["event_id"])
        # Before the commit: a failure retries the batch; once stored, never again.
        await publish_once(conn, self.js, published, saga.compensations)
        return outcome

    async def _write(
        self,
        conn: AsyncConnection,
        changed: dict[EntityKey, EntityState],
        notices: list[dict[str, Any]],
        outcome: Outcome,
    ) -> None:
        if not changed and not notices:
            return
        version = await next_versions(conn, len(changed) + len(notices))
        rows, memberships = [], []
        for offset, (key, state) in enumerate(changed.items()):
            values = merge.values(state)
            rows.append(
                {
                    "kind": key.kind,
                    "id": key.id,
                    "board": state.board,
                    "version": version + offset,
                    "state": _encode(state).decode(),
                    "values": None if values is None else _encode(values).decode(),
                    "meta": _encode(merge.meta(state)).decode(),
                    "audience": None,
                }
            )
            outcome.boards.add(state.board)
            if key.kind == "member" and values is not None:
                outcome.usernames.add(values["username"])
                memberships.append(
                    {
                        "board": state.board,
                        "username": values["username"],
                        "active": not values["removed"],
                        "version": version + offset,
                    }
                )
        for offset, notice in enumerate(notices, start=len(changed)):
            rows.append({**notice, "version": version + offset})
            outcome.boards.add(notice["board"])
        await upsert(conn, View, rows, ["kind", "id"])
        await upsert(conn, Membership, memberships, ["board", "username"])


@dataclass
class _Saga:
    """The projector's part of the saga for one batch."""

    conn: AsyncConnection
    priors: dict[str, dict[str, Any]] = field(default_factory=dict)
    compensations: list[Event] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)

    def remember(
        self,
        event: Event,
        states: dict[EntityKey, EntityState],
        updates: dict[EntityKey, EntityState],
    ) -> None:
        """Keep what a compensation of ``event`` would restore, if it may be a cause: it
        makes a task count against someone, on a board with a limit, and won the merge."""
        key = EntityKey("task", event.entity)
        before, after = states.get(key), updates.get(key)
        board = states.get(EntityKey("board", event.board))
        if after is None or board is None or board.value("wip_limit") is None:
            return
        now = wip_assignee(after)
        if now is None or now == wip_assignee(before) or not won_saga_field(after, event):
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

    async def _prior(self, cause: str) -> dict[str, Any] | None:
        if cause in self.priors:
            return self.priors[cause]
        row = (
            await self.conn.execute(select(SagaPrior).where(SagaPrior.event_id == cause))
        ).first()
        return None if row is None else dict(row._mapping)


def _keys(event: Event) -> tuple[EntityKey, ...]:
    try:
        keys = merge.keys_of(event)
    except MergeError:
        return ()
    if could_cause(event):  # the saga needs the board's limit
        return (*keys, EntityKey("board", event.board))
    return keys


async def _not_yet_applied(conn: AsyncConnection, events: list[Event]) -> list[Event]:
    ids = list({e.id for e in events})
    seen = set(
        (await conn.execute(select(Applied.event_id).where(Applied.event_id.in_(ids)))).scalars()
    )
    fresh = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)  # a duplicate inside the batch counts once too
            fresh.append(event)
    return fresh


async def _load_states(
    conn: AsyncConnection, keys: list[EntityKey]
) -> dict[EntityKey, EntityState]:
    if not keys:
        return {}
    ids = list({k.id for k in keys})
    rows = await conn.execute(select(View.state).where(View.id.in_(ids), View.kind != "notice"))
    wanted = set(keys)
    states = {}
    for state_json in rows.scalars():
        state = _state_decoder.decode(state_json)
        if state.key in wanted:
            states[state.key] = state
    return states


async def next_versions(conn: AsyncConnection, count: int) -> int:
    """Reserve ``count`` versions; return the first. Only the projector writes views."""
    row = (await conn.execute(select(Info.value).where(Info.key == "version"))).scalar()
    first = int(row or 0) + 1
    await upsert(conn, Info, [{"key": "version", "value": str(first + count - 1)}], ["key"])
    return first


async def start_over(conn: AsyncConnection) -> str:
    """Empty the views into a new generation; the stream is replayed into them from seq 1.
    Devices whose cursor names the old generation get ``reset`` on their next pull."""
    generation = new_id()
    for table in (View, Membership, Applied, SagaPrior):
        await conn.execute(delete(table))
    await conn.execute(delete(positions))
    await conn.execute(delete(Info).where(Info.key == "version"))
    await upsert(conn, Info, [{"key": "generation", "value": generation}], ["key"])
    return generation


async def ensure_generation(db: Database) -> str:
    """The views' generation: made once, replaced by a rebuild (devices then get ``reset``)."""
    async with db.write() as conn:
        current = (await conn.execute(select(Info.value).where(Info.key == "generation"))).scalar()
        if current is None:
            current = new_id()
            await upsert(conn, Info, [{"key": "generation", "value": current}], ["key"])
        return str(current)
