"""The projector: folds the stream into the views with the protocol's merge rules.

Exactly-once effect: every applied event id is recorded in the same transaction as the
view rows it changed (and the runner records the stream position there too), so a
redelivery, a duplicate publish or a crash between commit and acknowledgement changes
nothing.
"""

from __future__ import annotations

import msgspec
from nats.js.client import JetStreamContext
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Outcome
from backend.db import Database, insert_ignore, upsert
from backend.projector.models import Applied, Info, Membership, ProjectorBase, View, positions
from protocol import Event, MergeError, merge, new_id
from protocol.merge import EntityKey, EntityState

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
        await self.db.create(ProjectorBase.metadata)
        await ensure_generation(self.db)

    async def start_over(self, conn: AsyncConnection) -> None:
        await start_over(conn)

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        outcome = Outcome()
        fresh = await _not_yet_applied(conn, events)
        states = await _load_states(conn, [k for e in fresh for k in _keys(e)])
        changed: dict[EntityKey, EntityState] = {}
        applied: list[Event] = []
        for event in fresh:
            try:
                updates = {
                    key: merge.apply(states.get(key) or merge.new_state(key, event.board), event)
                    for key in merge.keys_of(event)
                }
            except MergeError as exc:
                assert event.seq is not None
                outcome.poison[event.seq] = f"cannot fold: {exc}"
                continue
            states.update(updates)
            changed.update(updates)
            applied.append(event)
        await self._write(conn, changed, outcome)
        await insert_ignore(
            conn,
            Applied,
            [{"event_id": e.id, "seq": e.seq, "times": 1} for e in applied],
            ["event_id"],
        )
        return outcome

    async def _write(
        self, conn: AsyncConnection, changed: dict[EntityKey, EntityState], outcome: Outcome
    ) -> None:
        if not changed:
            return
        version = await next_versions(conn, len(changed))
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
        await upsert(conn, View, rows, ["kind", "id"])
        await upsert(conn, Membership, memberships, ["board", "username"])


def _keys(event: Event) -> tuple[EntityKey, ...]:
    try:
        return merge.keys_of(event)
    except MergeError:
        return ()


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
    rows = await conn.execute(select(View.state).where(View.id.in_(ids)))
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
    for table in (View, Membership, Applied):
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
