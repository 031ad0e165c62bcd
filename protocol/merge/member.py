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


def is_active(state: EntityState | None) -> bool:
    """Whether the user is on the board (SPEC section 5): the member is created, and is the
    owner (always a member) or was not removed (last writer wins between MemberAdded and
    MemberRemoved). ``state`` is the member ``<board id>/<username>``; None: never named."""
    if state is None or not state.created:
        return False
    return state.value("role") == "owner" or not state.value("removed", False)


def values(state: EntityState) -> dict[str, Any]:
    return {
        "username": state.id.partition("/")[2],
        "role": state.value("role", "member"),
        "removed": not is_active(state),
    }
