"""The WIP-limit saga's rules (SPEC section 5), shared by the backend components that run it.

A board may set ``wip_limit``: at most that many non-deleted tasks in ``doing`` per assignee.
The workload component follows the stream in order and, for each *cause* (an accepted event
that wins the merge for ``status``, ``assignee`` or ``deleted`` of a task and so takes an
assignee over the limit), writes a ``WipLimitExceeded``. The task side answers with a
compensating ``TaskUpdated`` that restores what those fields were just before the cause,
stamped with the cause's hlc plus ``~saga`` (it beats the cause, loses to any later edit)
and an id derived from the cause's (replays change nothing), and a notice to the cause's
actor. A compensation never leaves a task in ``doing``, and is never a cause itself.

A cause's task keeps counting until its compensation comes back through the stream, so a
third move that arrives in between is judged against that count too: every decision is a
function of the stream order, the same on every replay, but two causes can be undone where
one would have done. Undoing too much is the safe side of a limit.

Pure functions of events and states: the components decide where states come from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.catalog import (
    TASK_DEFAULTS,
    TaskCreated,
    TaskDeleted,
    TaskFields,
    TaskRestored,
    TaskUpdated,
    WipLimitExceeded,
)
from protocol.envelope import Event
from protocol.hlc import saga_hlc
from protocol.ids import derived_id
from protocol.merge.state import EntityState

__all__ = [
    "BACKEND_ACTOR",
    "NOTICE_REASON",
    "SAGA_FIELDS",
    "PossibleCause",
    "compensation",
    "could_cause",
    "is_cause",
    "is_compensation",
    "notice_id",
    "possible_cause",
    "prior_values",
    "rejection_message",
    "wip_assignee",
    "wip_limit",
    "wip_limit_exceeded",
    "won_saga_field",
]

SAGA_FIELDS = ("status", "assignee", "deleted")
"""The task fields whose change can take an assignee over the limit."""

BACKEND_ACTOR = "~outpost"
"""The actor of events the backend writes itself (never a valid username)."""

NOTICE_REASON = "wip_limit"

_STATUS_NAMES = {"todo": "To do", "doing": "Doing", "done": "Done"}


def is_compensation(event: Event) -> bool:
    return isinstance(event.payload, TaskUpdated) and isinstance(event.payload.compensates, str)


def could_cause(event: Event) -> bool:
    """Whether an event can be a cause at all: a device's write of a saga field."""
    match event.payload:
        case TaskCreated() | TaskDeleted() | TaskRestored():
            return True
        case TaskUpdated(fields=fields) if not is_compensation(event):
            return any(name in SAGA_FIELDS for name in fields.items())
    return False


def wip_assignee(state: EntityState | None) -> str | None:
    """Whom this task counts against: its assignee if it is created, in ``doing`` and not
    deleted; None if it counts against no one."""
    if state is None or not state.created:
        return None
    if state.value("status", "todo") != "doing" or state.value("deleted", False):
        return None
    assignee = state.value("assignee")
    return assignee if isinstance(assignee, str) else None


def won_saga_field(state: EntityState, event: Event) -> bool:
    """Whether ``event`` holds one of the saga fields' registers in ``state`` (it won)."""
    return any(
        (register := state.fields.get(name)) is not None and register.id == event.id
        for name in SAGA_FIELDS
    )


def wip_limit(board: EntityState | None) -> int | None:
    """The board's ``wip_limit``, or None when it has none (or is not known here)."""
    limit = board.value("wip_limit") if board is not None else None
    return limit if isinstance(limit, int) else None


@dataclass(frozen=True)
class PossibleCause:
    """An event that is a cause if, once it is folded in, ``assignee`` has more than
    ``limit`` tasks counting against them (this one included)."""

    assignee: str
    limit: int

    def is_cause(self, load: int) -> bool:
        return load > self.limit


def possible_cause(
    event: Event, before: EntityState | None, after: EntityState, limit: int | None
) -> PossibleCause | None:
    """Whether ``event`` is a cause but for the load (SPEC section 5): a device's write of
    a saga field (never a compensation) that won the merge of one of them and made the task
    count against an assignee it did not count against ``before``, on a board with a limit.
    ``before`` and ``after`` are the task's states around the event (in stream order);
    ``limit`` is the board's (``wip_limit``). None: no cause, whatever the load.

    The workload then counts the assignee's load to decide; the projector keeps what a
    compensation would restore for every possible cause, since it cannot count."""
    if limit is None or not could_cause(event):
        return None
    assignee = wip_assignee(after)
    if assignee is None or assignee == wip_assignee(before):
        return None
    if not won_saga_field(after, event):
        return None
    return PossibleCause(assignee, limit)


def is_cause(
    event: Event, before: EntityState | None, after: EntityState, limit: int | None, load: int
) -> bool:
    """Whether ``event`` is a cause (SPEC section 5): a possible cause (``possible_cause``)
    after which its assignee has ``load`` tasks counting against them, more than ``limit``."""
    possible = possible_cause(event, before, after, limit)
    return possible is not None and possible.is_cause(load)


def prior_values(before: EntityState | None, cause: Event) -> dict[str, Any]:
    """What a compensation of ``cause`` restores: the saga fields the cause wrote, as they
    were just before it (for a TaskCreated: the defaults), and ``status`` out of ``doing``."""
    if isinstance(cause.payload, TaskCreated) or before is None:
        restored = {name: TASK_DEFAULTS[name] for name in SAGA_FIELDS}
    else:
        match cause.payload:
            case TaskUpdated(fields=fields):
                written = [name for name in SAGA_FIELDS if name in fields.items()]
            case _:  # TaskDeleted, TaskRestored
                written = ["deleted"]
        restored = {name: before.value(name, TASK_DEFAULTS[name]) for name in written}
        restored.setdefault("status", before.value("status", TASK_DEFAULTS["status"]))
    if restored["status"] == "doing":
        restored["status"] = "todo"
    return restored


def wip_limit_exceeded(cause: Event, assignee: str, limit: int, now_ms: int) -> Event:
    """The workload component's event for one cause."""
    return Event(
        id=derived_id("wip-limit-exceeded", cause.id),
        type="WipLimitExceeded",
        schema=1,
        board=cause.board,
        entity=cause.entity,
        hlc=saga_hlc(cause.hlc),
        device="outpost-workload",
        payload=WipLimitExceeded(assignee=assignee, limit=limit, cause=cause.id),
        actor=BACKEND_ACTOR,
        received_at=now_ms,
    )


def compensation(
    exceeded: Event, cause_hlc: str, restored: Mapping[str, Any], now_ms: int
) -> Event:
    """The compensating TaskUpdated for a ``WipLimitExceeded`` (its cause's values restored)."""
    payload = exceeded.payload
    assert isinstance(payload, WipLimitExceeded)
    return Event(
        id=derived_id("compensation", payload.cause),
        type="TaskUpdated",
        schema=1,
        board=exceeded.board,
        entity=exceeded.entity,
        hlc=saga_hlc(cause_hlc),
        device="outpost-saga",
        payload=TaskUpdated(
            fields=TaskFields(**restored),
            compensates=payload.cause,
            reason=_message(payload, restored),
        ),
        actor=BACKEND_ACTOR,
        received_at=now_ms,
    )


def notice_id(cause: str) -> str:
    return derived_id("notice", cause)


def _message(exceeded: WipLimitExceeded, restored: Mapping[str, Any]) -> str:
    """The notice's text: every field the compensation changed, in plain words, then why.

    The task was in Doing, assigned to ``exceeded.assignee`` and not deleted when the cause
    took it over the limit; ``restored`` says what it is now. A field named in ``restored``
    that holds what it held then (``deleted`` False, the same assignee) did not change and
    is not named."""
    changes = []
    if restored.get("deleted") is True:
        changes.append("deleted again")
    changes.append(f"moved back to {_STATUS_NAMES[restored['status']]}")
    if "assignee" in restored and restored["assignee"] != exceeded.assignee:
        before = restored["assignee"]
        changes.append(
            f"no longer assigned to {exceeded.assignee}"
            if before is None
            else f"assigned back to {before}"
        )
    undone = ", ".join(changes[:-1]) + " and " + changes[-1] if len(changes) > 1 else changes[0]
    tasks = "task" if exceeded.limit == 1 else "tasks"
    return (
        f"{undone[:1].upper()}{undone[1:]}: {exceeded.assignee} already has {exceeded.limit} "
        f"{tasks} in Doing, the board's limit"
    )


def rejection_message(event_type: str, detail: str) -> str:
    """The notice's text for a change the backend refused for good: what it was and why, in
    plain words (no field paths such as ``payload.username``)."""
    what = _CHANGE_NAMES.get(event_type, event_type)
    return f"Your change ({what}) was not saved: {_plain_detail(detail)}."


_CHANGE_NAMES = {
    "BoardCreated": "new board",
    "BoardUpdated": "board change",
    "MemberAdded": "sharing",
    "MemberRemoved": "unsharing",
    "TaskCreated": "new task",
    "TaskUpdated": "task edit",
    "TaskLabelAdded": "label added",
    "TaskLabelRemoved": "label removed",
    "TaskDeleted": "task deleted",
    "TaskRestored": "task restored",
    "CommentAdded": "comment",
    "CommentDeleted": "comment deleted",
}

_FIELD_WORDS = {
    "username": "the user",
    "wip_limit": "the limit on tasks in Doing",
    "due": "the due date",
    "fields": "the change",
    "body": "the comment",
    "deleted": "the task's deletion",
}


def _plain_detail(detail: str) -> str:
    """``payload.username: no user named 'x'`` -> ``there is no user named 'x'``;
    ``payload.fields.title: ...`` -> ``the title: ...``; other text as it is."""
    detail = detail.strip().rstrip(".")
    found = re.match(r"^(?:payload\.)?((?:[a-z_]+\.)*[a-z_]+)(?:\[\d+\])?: (.*)$", detail, re.S)
    if found is None or not (detail.startswith("payload.") or "." in found.group(1)):
        return detail
    path, rest = found.groups()
    if path == "username" and rest.startswith("no user named"):
        return f"there is {rest}"
    name = path.split(".")[-1]
    return f"{_FIELD_WORDS.get(name, 'the ' + name.replace('_', ' '))}: {rest}"
