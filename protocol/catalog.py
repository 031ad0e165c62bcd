"""The v1 event catalog (SPEC section 4): one payload struct per event type.

Each payload class has the name of its event type, a past-tense noun. The ``CATALOG``
maps every type to its entity kind, whether only the backend may write it, and its
payload class for each schema version (a new version registers an upcaster beside it).
Field limits count Unicode code points; unknown keys are refused.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol import patterns
from protocol.positions import MAX_POSITION_LENGTH, is_valid_position

__all__ = [
    "BACKEND_ONLY_PAYLOAD_KEYS",
    "CATALOG",
    "PAYLOAD_TYPES",
    "TASK_DEFAULTS",
    "BoardCreated",
    "BoardFields",
    "BoardUpdated",
    "CommentAdded",
    "CommentDeleted",
    "EntityKind",
    "EventSpec",
    "MemberAdded",
    "MemberRemoved",
    "Payload",
    "ReminderDue",
    "Status",
    "TaskCreated",
    "TaskDeleted",
    "TaskFields",
    "TaskLabelAdded",
    "TaskLabelRemoved",
    "TaskRestored",
    "TaskUpdated",
    "WipLimitExceeded",
]

T = TypeVar("T")

USERNAME_PATTERN = patterns.anchored(patterns.USERNAME)
UUID_PATTERN = patterns.anchored(patterns.UUID)
DATE_PATTERN = patterns.anchored(patterns.DATE)
POSITION_PATTERN = patterns.anchored(patterns.POSITION)

Username = Annotated[str, Meta(pattern=USERNAME_PATTERN, description="3..32 of a-z 0-9 _ . -")]
Uuid = Annotated[str, Meta(pattern=UUID_PATTERN, description="lowercase canonical UUID")]
BoardName = Annotated[str, Meta(min_length=1, max_length=200)]
WipLimit = Annotated[int, Meta(ge=1, le=100)]
Title = Annotated[str, Meta(min_length=1, max_length=500)]
Notes = Annotated[str, Meta(max_length=20_000)]
Status = Literal["todo", "doing", "done"]
Priority = Annotated[int, Meta(ge=0, le=4)]
Due = Annotated[str, Meta(pattern=DATE_PATTERN, description="a calendar date, YYYY-MM-DD")]
Position = Annotated[
    str,
    Meta(
        pattern=POSITION_PATTERN,
        max_length=MAX_POSITION_LENGTH,
        description="fractional index key (protocol.positions)",
    ),
]
Label = Annotated[str, Meta(min_length=1, max_length=50)]
Labels = Annotated[list[Label], Meta(max_length=50)]
Observed = Annotated[list[Uuid], Meta(max_length=1000)]
CommentBody = Annotated[str, Meta(min_length=1, max_length=10_000)]
CompensationReason = Annotated[str, Meta(min_length=1, max_length=500)]

_BackendOnly = Annotated[
    T, Meta(description="written by the backend only (a compensation); forbidden from devices")
]

EntityKind = Literal["board", "member", "task", "comment"]

_DUE_RE = patterns.compile_whole(patterns.DATE)


def _check_due(due: object) -> None:
    if isinstance(due, str) and _DUE_RE.fullmatch(due):
        try:
            datetime.date.fromisoformat(due)
        except ValueError:
            raise ValueError(f"`due` {due!r} is not a calendar date") from None


def _check_position(position: object) -> None:
    if isinstance(position, str) and not is_valid_position(position):
        raise ValueError(f"`position` {position!r} is not a fractional index key")


def _set_fields(struct: msgspec.Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not UNSET}


class _Payload(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every payload: strict, defaults left out of the canonical form."""


class BoardCreated(_Payload):
    name: BoardName
    wip_limit: WipLimit | None = None


class BoardFields(_Payload):
    name: BoardName | UnsetType = UNSET
    wip_limit: WipLimit | UnsetType | None = UNSET
    archived: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not self.items():
            raise ValueError("`fields` must name at least one of name, wip_limit, archived")

    def items(self) -> dict[str, Any]:
        """The fields this update sets, null (a cleared field) included."""
        return _set_fields(self)


_AT_LEAST_ONE = Meta(extra_json_schema={"minProperties": 1})


class BoardUpdated(_Payload):
    fields: Annotated[BoardFields, _AT_LEAST_ONE]


class MemberAdded(_Payload):
    username: Username


class MemberRemoved(_Payload):
    username: Username


class TaskCreated(_Payload):
    title: Title
    position: Position
    notes: Notes = ""
    status: Status = "todo"
    priority: Priority = 0
    due: Due | None = None
    assignee: Username | None = None
    labels: Labels = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_due(self.due)
        _check_position(self.position)


TASK_DEFAULTS: Mapping[str, Any] = {
    "notes": "",
    "status": "todo",
    "priority": 0,
    "due": None,
    "assignee": None,
    "deleted": False,
}
"""Values a TaskCreated writes for the fields it leaves out (SPEC section 4)."""


class TaskFields(_Payload):
    title: Title | UnsetType = UNSET
    notes: Notes | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    due: Due | UnsetType | None = UNSET
    assignee: Username | UnsetType | None = UNSET
    position: Position | UnsetType = UNSET
    deleted: _BackendOnly[bool] | UnsetType = UNSET
    """Backend only: a compensation may restore ``deleted``."""

    def __post_init__(self) -> None:
        if not self.items():
            raise ValueError("`fields` must name at least one task field")
        _check_due(self.due)
        _check_position(self.position)

    def items(self) -> dict[str, Any]:
        """The fields this update sets, null (a cleared field) included."""
        return _set_fields(self)


class TaskUpdated(_Payload):
    fields: Annotated[TaskFields, _AT_LEAST_ONE]
    compensates: _BackendOnly[Uuid] | UnsetType = UNSET
    """Backend only: the id of the event this compensation undoes."""
    reason: _BackendOnly[CompensationReason] | UnsetType = UNSET
    """Backend only: why the compensation happened, in words for the user."""


class TaskLabelAdded(_Payload):
    label: Label


class TaskLabelRemoved(_Payload):
    label: Label
    observed: Observed


class TaskDeleted(_Payload):
    pass


class TaskRestored(_Payload):
    pass


class CommentAdded(_Payload):
    task: Uuid
    body: CommentBody


class CommentDeleted(_Payload):
    pass


class WipLimitExceeded(_Payload):
    assignee: Username
    limit: WipLimit
    cause: Uuid


ReminderMessage = Annotated[str, Meta(min_length=1, max_length=500)]


class ReminderDue(_Payload):
    """The orchestrator's reminder (SPEC 6c): a notice to ``assignee`` that the task is due
    on ``due``; ``cause`` is the task's last due-date event. Backend only."""

    assignee: Username
    due: Due
    cause: Uuid
    message: ReminderMessage


Payload = (
    BoardCreated
    | BoardUpdated
    | MemberAdded
    | MemberRemoved
    | TaskCreated
    | TaskUpdated
    | TaskLabelAdded
    | TaskLabelRemoved
    | TaskDeleted
    | TaskRestored
    | CommentAdded
    | CommentDeleted
    | WipLimitExceeded
    | ReminderDue
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EventSpec:
    """What the catalog knows of one event type."""

    name: str
    entity: EntityKind
    """The kind of entity the envelope's ``entity`` names."""
    payloads: Mapping[int, type[_Payload]]
    """Payload class by schema version. The newest is what the merge rules read."""
    backend_only: bool = False
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)
    """For an old schema version: turns its payload into the next version's."""

    @property
    def current_schema(self) -> int:
        return max(self.payloads)

    @property
    def payload(self) -> type[_Payload]:
        return self.payloads[self.current_schema]


def _spec(payload: type[_Payload], entity: EntityKind, *, backend_only: bool = False) -> EventSpec:
    return EventSpec(payload.__name__, entity, {1: payload}, backend_only)


CATALOG: Mapping[str, EventSpec] = {
    spec.name: spec
    for spec in (
        _spec(BoardCreated, "board"),
        _spec(BoardUpdated, "board"),
        _spec(MemberAdded, "board"),
        _spec(MemberRemoved, "board"),
        _spec(TaskCreated, "task"),
        _spec(TaskUpdated, "task"),
        _spec(TaskLabelAdded, "task"),
        _spec(TaskLabelRemoved, "task"),
        _spec(TaskDeleted, "task"),
        _spec(TaskRestored, "task"),
        _spec(CommentAdded, "comment"),
        _spec(CommentDeleted, "comment"),
        _spec(WipLimitExceeded, "task", backend_only=True),
        _spec(ReminderDue, "task", backend_only=True),
    )
}

PAYLOAD_TYPES: Mapping[type[_Payload], str] = {spec.payload: name for name, spec in CATALOG.items()}

BACKEND_ONLY_PAYLOAD_KEYS = frozenset({"compensates", "reason"})
"""Payload keys only the backend writes (plus ``deleted`` inside a TaskUpdated's fields)."""
