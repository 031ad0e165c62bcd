"""Board: ``name``, ``wip_limit``, ``archived`` last writer wins; the creator owns it."""

from __future__ import annotations

from typing import Any

from protocol.catalog import BoardCreated, BoardUpdated
from protocol.envelope import Event
from protocol.merge.state import EntityState

FIELDS = ("name", "wip_limit", "archived", "owner")


def apply(state: EntityState, event: Event) -> EntityState:
    match event.payload:
        case BoardCreated(name=name, wip_limit=wip_limit):
            writes = {
                "name": name,
                "wip_limit": wip_limit,
                "archived": False,
                "owner": event.require_actor(),
            }
            return state.with_created().with_writes(writes, event.hlc, event.id)
        case BoardUpdated(fields=fields):
            return state.with_writes(fields.items(), event.hlc, event.id)
    return state


def values(state: EntityState) -> dict[str, Any]:
    return {name: state.value(name) for name in FIELDS}
