"""Comment: written once by CommentAdded (its actor is the author); CommentDeleted hides it.

A comment is never edited, and a delete is final whatever its hlc: ``deleted`` is true as
soon as any CommentDeleted is folded in.
"""

from __future__ import annotations

from typing import Any

from protocol.catalog import CommentAdded, CommentDeleted
from protocol.envelope import Event
from protocol.merge.state import EntityState

FIELDS = ("task", "body", "author", "created_at", "deleted")


def apply(state: EntityState, event: Event) -> EntityState:
    match event.payload:
        case CommentAdded(task=task, body=body):
            writes = {
                "task": task,
                "body": body,
                "author": event.require_actor(),
                "created_at": event.timestamp.wall,
            }
            return state.with_created().with_writes(writes, event.hlc, event.id)
        case CommentDeleted():
            return state.with_writes({"deleted": True}, event.hlc, event.id)
    return state


def values(state: EntityState) -> dict[str, Any]:
    result = {name: state.value(name) for name in FIELDS}
    result["deleted"] = bool(state.value("deleted", False))
    return result
