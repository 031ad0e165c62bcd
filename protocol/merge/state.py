"""The state of one entity: last-writer-wins registers and an observed-remove label set.

Every kind (board, member, task, comment) keeps its state in the same shape, so one
``merge`` serves them all and a state can be stored as JSON and read back unchanged:

- ``fields``: one register per scalar field, holding the value with the (hlc, event id)
  that wrote it; a write wins if its stamp is greater (last writer wins per field);
- ``tags``: label -> ids of the events that added it; ``tombstones``: label -> ids that a
  TaskLabelRemoved observed. A label is present while it has a tag not tombstoned, so a
  remove deletes only adds it saw, and a remove that arrives first still counts;
- ``created``: set by the creating event. Events that come before it are kept in the
  registers and show once it arrives.

Every update is a join (max of registers, union of sets), which is what makes the fold of
a set of events independent of their order and of duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import msgspec

from protocol.catalog import EntityKind
from protocol.errors import MergeError

__all__ = ["EntityKey", "EntityState", "Register", "merge"]


class EntityKey(NamedTuple):
    kind: EntityKind
    id: str


class Register(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One field's value and the stamp of the write that set it.

    Neither a register nor a state is tracked by Python's garbage collector (``gc=False``):
    they hold JSON values and each other, never a cycle, and a device storing a page of
    1,000 pulled tasks makes some 10,000 of them (tracked, their collections took a third
    of the time spent making them)."""

    value: Any
    hlc: str
    id: str

    @property
    def stamp(self) -> tuple[str, str]:
        return (self.hlc, self.id)


class EntityState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The merged state of one entity; apply events with ``protocol.merge.apply``."""

    kind: EntityKind
    id: str
    board: str
    created: bool = False
    fields: dict[str, Register] = msgspec.field(default_factory=dict)
    tags: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    tombstones: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)

    @property
    def key(self) -> EntityKey:
        return EntityKey(self.kind, self.id)

    def value(self, name: str, default: Any = None) -> Any:
        register = self.fields.get(name)
        return default if register is None else register.value

    def labels(self) -> dict[str, tuple[str, ...]]:
        """Present labels, each with the ids of the adds that keep it (sorted)."""
        live = {}
        for label, ids in self.tags.items():
            removed = set(self.tombstones.get(label, ()))
            kept = tuple(i for i in ids if i not in removed)
            if kept:
                live[label] = kept
        return live

    # Joins: each returns a new state; none mutates self.

    def with_writes(self, values: Mapping[str, Any], hlc: str, event_id: str) -> EntityState:
        fields = dict(self.fields)
        for name, value in values.items():
            _join(fields, name, Register(value, hlc, event_id))
        return msgspec.structs.replace(self, fields=fields)

    def with_created(self) -> EntityState:
        return self if self.created else msgspec.structs.replace(self, created=True)

    def with_tags(self, label: str, ids: Iterable[str]) -> EntityState:
        return msgspec.structs.replace(self, tags=_add(self.tags, label, ids))

    def with_tombstones(self, label: str, ids: Iterable[str]) -> EntityState:
        return msgspec.structs.replace(self, tombstones=_add(self.tombstones, label, ids))


def _join(fields: dict[str, Register], name: str, register: Register) -> None:
    current = fields.get(name)
    if current is None or register.stamp > current.stamp:
        fields[name] = register


def _add(
    sets: Mapping[str, tuple[str, ...]], label: str, ids: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    result = dict(sets)
    merged = tuple(sorted(set(result.get(label, ())) | set(ids)))
    if merged:
        result[label] = merged
    return result


def _union(
    a: Mapping[str, tuple[str, ...]], b: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    result = dict(a)
    for label, ids in b.items():
        result = _add(result, label, ids)
    return result


def merge(a: EntityState, b: EntityState) -> EntityState:
    """The state that folding the union of both states' events gives."""
    if a.key != b.key or a.board != b.board:
        raise MergeError(f"cannot merge {a.kind} {a.id} with {b.kind} {b.id}")
    fields = dict(a.fields)
    for name, register in b.fields.items():
        _join(fields, name, register)
    return EntityState(
        kind=a.kind,
        id=a.id,
        board=a.board,
        created=a.created or b.created,
        fields=fields,
        tags=_union(a.tags, b.tags),
        tombstones=_union(a.tombstones, b.tombstones),
    )
