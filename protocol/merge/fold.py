"""Routing events to entities, folding them, and the change shape the pull carries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from protocol.catalog import (
    CATALOG,
    BoardCreated,
    EntityKind,
    MemberAdded,
    MemberRemoved,
    ReminderDue,
    WipLimitExceeded,
)
from protocol.envelope import Event
from protocol.errors import MergeError
from protocol.merge import board, comment, member, task
from protocol.merge.state import EntityKey, EntityState, Register, merge

__all__ = [
    "Meta",
    "Values",
    "apply",
    "fold",
    "from_change",
    "keys_of",
    "merge_all",
    "meta",
    "new_state",
    "values",
]

Values = dict[str, Any]
Meta = dict[str, Any]
States = dict[EntityKey, EntityState]

_KINDS: Mapping[EntityKind, ModuleType] = {
    "board": board,
    "member": member,
    "task": task,
    "comment": comment,
}
_APPLY: Mapping[EntityKind, Callable[[EntityState, Event], EntityState]] = {
    kind: module.apply for kind, module in _KINDS.items()
}


def keys_of(event: Event) -> tuple[EntityKey, ...]:
    """The entities whose state an event changes (a BoardCreated also makes its owner)."""
    payload = event.payload
    match payload:
        case BoardCreated():
            owner = member.member_id(event.board, event.require_actor())
            return (EntityKey("board", event.board), EntityKey("member", owner))
        case MemberAdded() | MemberRemoved():
            return (EntityKey("member", member.member_id(event.board, payload.username)),)
        case WipLimitExceeded() | ReminderDue():
            return ()  # a message to the saga or a reminder; it changes no entity by itself
    return (EntityKey(CATALOG[event.type].entity, event.entity),)


def new_state(key: EntityKey, board_id: str) -> EntityState:
    return EntityState(kind=key.kind, id=key.id, board=board_id)


def apply(state: EntityState, event: Event) -> EntityState:
    """Fold one event into one entity's state. Any order, any duplicates: same result."""
    if event.board != state.board or state.key not in keys_of(event):
        raise MergeError(f"{event.type} {event.id} does not change {state.kind} {state.id}")
    return _APPLY[state.kind](state, event)


def fold(events: Iterable[Event], states: Mapping[EntityKey, EntityState] | None = None) -> States:
    """Fold events into a map of entity states (a copy of ``states``, if given)."""
    result = dict(states or {})
    for event in events:
        for key in keys_of(event):
            current = result.get(key) or new_state(key, event.board)
            result[key] = apply(current, event)
    return result


def merge_all(a: Mapping[EntityKey, EntityState], b: Mapping[EntityKey, EntityState]) -> States:
    """Merge two folds: equal to folding the union of their events."""
    result = dict(a)
    for key, state in b.items():
        result[key] = merge(result[key], state) if key in result else state
    return result


def values(state: EntityState) -> Values | None:
    """The plain values a pull carries, every key present; None until the entity is created."""
    if not state.created:
        return None
    result: Values = _KINDS[state.kind].values(state)
    return result


def meta(state: EntityState) -> Meta:
    """What a device needs to merge a pulled change with its pending events."""
    return {
        "fields": {name: {"hlc": r.hlc, "id": r.id} for name, r in sorted(state.fields.items())},
        "labels": {label: list(ids) for label, ids in sorted(state.labels().items())},
    }


def from_change(
    kind: EntityKind, entity_id: str, board_id: str, change_values: Values, change_meta: Meta
) -> EntityState:
    """The state a pulled change stands for, ready to have pending events folded on top."""
    fields = {}
    for name, stamp in change_meta.get("fields", {}).items():
        value = change_values.get(name)
        if kind == "member" and name == "removed" and change_values.get("role") == "owner":
            value = False
        fields[name] = Register(value, stamp["hlc"], stamp["id"])
    tags = {label: tuple(sorted(ids)) for label, ids in change_meta.get("labels", {}).items()}
    return EntityState(
        kind=kind, id=entity_id, board=board_id, created=True, fields=fields, tags=tags
    )
