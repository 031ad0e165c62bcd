"""Member ``<board id>/<username>``: added or removed, last writer wins; the owner stays."""

from __future__ import annotations

from typing import Any

from protocol.catalog import BoardCreated, MemberAdded, MemberRemoved
from protocol.envelope import Event
from protocol.merge.state import EntityState

FIELDS = ("role", "removed")


def member_id(board: str, username: str) -> str:
    return f"{board}/{username}"


def apply(state: EntityState, event: Event) -> EntityState:
    match event.payload:
        case BoardCreated():
            writes: dict[str, Any] = {"role": "owner"}
        case MemberAdded():
            writes = {"removed": False}
        case MemberRemoved():
            writes = {"removed": True}
        case _:
            return state
    return state.with_created().with_writes(writes, event.hlc, event.id)


def values(state: EntityState) -> dict[str, Any]:
    role = state.value("role", "member")
    return {
        "username": state.id.partition("/")[2],
        "role": role,
        "removed": role != "owner" and bool(state.value("removed", False)),
    }
