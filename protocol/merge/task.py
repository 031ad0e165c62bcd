"""Task: scalar fields last writer wins; labels an add-wins observed-remove set.

A TaskCreated writes all its fields, defaults included, at its hlc. ``deleted`` is a field
like the others: TaskDeleted sets it, TaskRestored clears it, and edits to a deleted task
are kept without undeleting it.
"""

from __future__ import annotations

from typing import Any

from protocol.catalog import (
    TASK_DEFAULTS,
    TaskCreated,
    TaskDeleted,
    TaskLabelAdded,
    TaskLabelRemoved,
    TaskRestored,
    TaskUpdated,
)
from protocol.envelope import Event
from protocol.merge.state import EntityState

FIELDS = ("title", "notes", "status", "priority", "due", "assignee", "position", "deleted")


def apply(state: EntityState, event: Event) -> EntityState:
    payload = event.payload
    match payload:
        case TaskCreated():
            writes = {**TASK_DEFAULTS}
            writes.update(
                title=payload.title,
                notes=payload.notes,
                status=payload.status,
                priority=payload.priority,
                due=payload.due,
                assignee=payload.assignee,
                position=payload.position,
            )
            state = state.with_created().with_writes(writes, event.hlc, event.id)
            for label in set(payload.labels):
                state = state.with_tags(label, [event.id])
            return state
        case TaskUpdated(fields=fields):
            return state.with_writes(fields.items(), event.hlc, event.id)
        case TaskLabelAdded(label=label):
            return state.with_tags(label, [event.id])
        case TaskLabelRemoved(label=label, observed=observed):
            return state.with_tombstones(label, observed)
        case TaskDeleted():
            return state.with_writes({"deleted": True}, event.hlc, event.id)
        case TaskRestored():
            return state.with_writes({"deleted": False}, event.hlc, event.id)
    return state


_DEFAULTS = tuple((name, TASK_DEFAULTS.get(name)) for name in FIELDS)


def values(state: EntityState) -> dict[str, Any]:
    fields = state.fields  # read in place: a bootstrap makes this of every task pulled
    result = {name: fields[name].value if name in fields else d for name, d in _DEFAULTS}
    result["labels"] = sorted(state.labels())
    return result
