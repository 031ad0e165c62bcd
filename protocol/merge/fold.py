"""Routing events to entities, folding them, and the change shape the pull carries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, Literal

import msgspec

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
    "ChangeMeta",
    "Meta",
    "PulledChange",
    "Stamp",
    "Values",
    "apply",
    "as_change_meta",
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


class Stamp(msgspec.Struct, frozen=True, gc=False):
    """The stamp of a field's last write, as a pulled change's ``meta`` carries it."""

    hlc: str
    id: str


class ChangeMeta(msgspec.Struct, frozen=True, gc=False):
    """A pulled change's ``meta`` (``Meta``), decoded into structs: a device decodes a page
    of pulled changes so (``PulledChange``), eight stamps a task, instead of as many dicts,
    which take twice as long to decode. Like ``Register``, not tracked by the collector."""

    fields: dict[str, Stamp] = msgspec.field(default_factory=dict)
    labels: dict[str, list[str]] = msgspec.field(default_factory=dict)


class PulledChange(msgspec.Struct, gc=False):
    """One change of a pull page as a device reads it (SPEC section 6): an entity's state
    (``values`` and ``meta``), a board taken away (``removed``), or a notice (its
    ``values``). The ``version`` it also carries is the server's business."""

    kind: EntityKind | Literal["notice"]
    id: str
    board: str
    values: Values | None = None
    meta: ChangeMeta | None = None
    removed: bool = False


def as_change_meta(meta: Meta | ChangeMeta) -> ChangeMeta:
    """``meta`` as a ``ChangeMeta`` (a dict is checked and converted)."""
    return meta if isinstance(meta, ChangeMeta) else msgspec.convert(meta, ChangeMeta)


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
    kind: EntityKind,
    entity_id: str,
    board_id: str,
    change_values: Values,
    change_meta: Meta | ChangeMeta,
) -> EntityState:
    """The state a pulled change stands for, ready to have pending events folded on top."""
    stamps = as_change_meta(change_meta)
    fields = {}
    for name, stamp in stamps.fields.items():
        value = change_values.get(name)
        if kind == "member" and name == "removed" and change_values.get("role") == "owner":
            value = False
        fields[name] = Register(value, stamp.hlc, stamp.id)
    tags = {label: tuple(sorted(ids)) for label, ids in stamps.labels.items()}
    return EntityState(
        kind=kind, id=entity_id, board=board_id, created=True, fields=fields, tags=tags
    )
