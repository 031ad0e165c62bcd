"""Events a component writes to the stream itself (the saga's), published once for good.

A component publishes from inside its batch, before the commit, so a failed batch publishes
again with the same id (the stream's duplicate window drops it). A rebuild or a replay runs
the same batches again, possibly long after that window: the ``published`` table, which a
rebuild never clears, remembers every id this component has had stored, so a replay never
appends a second copy of a compensation to the stream.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.db import insert_ignore
from backend.nats.publisher import Outgoing, Publisher
from backend.nats.streams import event_subject
from protocol import Event, encode_event


def published_table(metadata: MetaData) -> Table:
    return Table("published", metadata, Column("event_id", String(80), primary_key=True))


async def publish_once(
    conn: AsyncConnection,
    publisher: Publisher,
    table: Table,
    events: list[Event],
) -> None:
    """Publish the events this component never had stored, together, and remember them
    in the same transaction as the batch (raise if the stream does not store them)."""
    if not events:
        return
    ids = [e.id for e in events]
    query = select(table.c.event_id).where(table.c.event_id.in_(ids))
    done = set((await conn.execute(query)).scalars())
    fresh = [e for e in events if e.id not in done]
    if not fresh:
        return
    await asyncio.gather(
        *(publisher.publish(Outgoing(event_subject(e.board), encode_event(e), e.id)) for e in fresh)
    )
    await insert_ignore(conn, table, [{"event_id": e.id} for e in fresh], ["event_id"])
