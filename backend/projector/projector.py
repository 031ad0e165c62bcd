"""The projector: folds the stream into the views with the protocol's merge rules.

Exactly-once effect: every applied event id is recorded in the same transaction as the
view rows it changed (and the runner records the stream position there too), so a
redelivery, a duplicate publish or a crash between commit and acknowledgement changes
nothing.

It also runs the task side of the WIP-limit saga in its transaction
(``backend.saga.compensator``): it shows the compensator each event that may be a cause,
each ``WipLimitExceeded`` and each compensation that comes back (folded like any event),
and writes the notices it makes as ``notice`` rows only their user pulls.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import direct
from backend.consumers.component import Outcome, WrittenViews
from backend.db import Database, add_counts, upsert
from backend.nats.publisher import Publisher
from backend.projector.models import (
    Applied,
    Info,
    Membership,
    SagaPrior,
    View,
    positions,
)
from backend.saga.compensator import Compensator
from protocol import Event, MergeError, derived_id, merge, new_id
from protocol.catalog import ReminderDue, WipLimitExceeded
from protocol.merge import EntityKey, EntityState
from protocol.saga import could_cause, is_compensation

_state_decoder = msgspec.json.Decoder(EntityState)
_encode = msgspec.json.encode


class Projector:
    name = "projector"
    serves_pull = True

    positions = positions

    def __init__(self, db: Database, publisher: Publisher) -> None:
        self.db = db
        self.publisher = publisher

    async def prepare(self) -> None:
        await self.db.migrate()
        await ensure_generation(self.db)

    async def start_over(self, conn: AsyncConnection) -> None:
        await start_over(conn)

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        outcome = Outcome()
        fresh = await _not_yet_applied(conn, events)
        states = await _load_states(conn, [k for e in fresh for k in _keys(e)])
        saga = Compensator(conn)
        changed: dict[EntityKey, EntityState] = {}
        applied: list[Event] = []
        for event in fresh:
            if isinstance(event.payload, ReminderDue):  # the orchestrator's, for one user
                saga.notices.append(reminder_notice(event))
                applied.append(event)
                continue
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
                task = EntityKey("task", event.entity)
                board = states.get(EntityKey("board", event.board))
                saga.remember(event, states.get(task), updates.get(task), board)
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
        await saga.finish(self.publisher)
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
        version, generation = await next_versions(conn, len(changed) + len(notices))
        rows: list[dict[str, Any]] = []
        memberships: list[dict[str, Any]] = []
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
                        "active": merge.is_active_member(state),
                        "version": version + offset,
                    }
                )
        for offset, notice in enumerate(notices, start=len(changed)):
            rows.append({**notice, "version": version + offset})
            outcome.boards.add(notice["board"])
        await upsert(conn, View, rows, ["kind", "id"])
        await upsert(conn, Membership, memberships, ["board", "username"])
        outcome.written = WrittenViews(
            generation,
            after=version - 1,
            last=version + len(rows) - 1,
            rows=[
                (
                    r["kind"],
                    r["id"],
                    r["board"],
                    r["version"],
                    r["values"],
                    r["meta"],
                    r["audience"],
                )
                for r in rows
            ],
        )


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
    seen = {event_id for (event_id,) in await direct.fetch(conn, _APPLIED, {"ids": ids})}
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
    kinds, ids = sorted({k.kind for k in keys}), sorted({k.id for k in keys})
    rows = await direct.fetch(conn, STATES, {"kinds": kinds, "ids": ids})
    wanted = set(keys)
    states = {}
    for (state_json,) in rows:
        state = _state_decoder.decode(state_json)
        if state.key in wanted:
            states[state.key] = state
    return states


# A batch's statements, built once (``backend.db`` says why); ``expanding`` binds take the
# batch's lists.
_APPLIED = select(Applied.event_id).where(Applied.event_id.in_(bindparam("ids", expanding=True)))
STATES = select(View.state).where(
    View.kind.in_(bindparam("kinds", expanding=True)), View.id.in_(bindparam("ids", expanding=True))
)
"""The stored states of some keys (and perhaps a few more, of the same ids), looked up by the
primary key (kind, id) with ``kinds`` and ``ids``: by the id alone, every row of the views
would be read, and each batch would take longer as the views grow."""
_VERSIONS = select(Info.key, Info.value).where(Info.key.in_(("version", "generation")))


async def next_versions(conn: AsyncConnection, count: int) -> tuple[int, str]:
    """Reserve ``count`` versions; return the first, and the views' generation they belong
    to (read in the same query). Only the projector writes views."""
    info: dict[str, str] = dict(await direct.fetch(conn, _VERSIONS, {}))
    first = int(info.get("version") or 0) + 1
    await upsert(conn, Info, [{"key": "version", "value": str(first + count - 1)}], ["key"])
    return first, info.get("generation") or "0"


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


async def new_generation(conn: AsyncConnection) -> str:
    """A new generation for the views as they are, rows kept (after a restore): devices
    whose cursor names the old one get ``reset``, rebuild from these views and push again
    what they still hold."""
    generation = new_id()
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


REMINDER_REASON = "reminder"


def reminder_notice(event: Event) -> dict[str, Any]:
    """The notice row of a ``ReminderDue`` (SPEC 6c): to its assignee only, ``reason``
    reminder, ``cause`` the task's last due-date event; its id derived from the reminder's,
    so a reminder folded again is the same row."""
    payload = event.payload
    assert isinstance(payload, ReminderDue)
    values = {
        "task": event.entity,
        "cause": payload.cause,
        "reason": REMINDER_REASON,
        "message": payload.message,
        "created_at": event.received_at or int(time.time() * 1000),
    }
    return {
        "kind": "notice",
        "id": derived_id("notice", event.id),
        "board": event.board,
        "state": "",
        "values": _encode(values).decode(),
        "meta": '{"fields":{},"labels":{}}',
        "audience": payload.assignee,
    }
