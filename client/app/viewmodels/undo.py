"""Undo: after a delete, a move or an edit, an offer (the snackbar's "Undo") that writes the
inverse events, but only for the fields whose current value is still the one the action
set. A field another device (or a sync, or the saga) has changed since keeps that change,
and the result says so: "the task changed elsewhere".

The offer is made by comparing the task's values just before and just after the action:
the fields that differ are the ones the action wrote. Undoing writes, for each of them that
still holds what the action set, the value it had before: ``deleted`` through a
TaskRestored or TaskDeleted, the others in one TaskUpdated. New events: they carry a newer
hlc than the action's, so they win over it everywhere, as an edit would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from client.device import Device
from client.errors import NotFound

UNDOABLE = ("title", "notes", "status", "priority", "due", "assignee", "position", "deleted")
"""The task's fields an undo writes back (labels and comments have their own undo: none)."""

FIELD_WORDS = {
    "title": "title",
    "notes": "notes",
    "status": "column",
    "priority": "priority",
    "due": "due date",
    "assignee": "assignee",
    "position": "place in the column",
    "deleted": "deletion",
}

CHANGED_ELSEWHERE = "Not undone: the task changed elsewhere since"


@dataclass(frozen=True)
class UndoOffer:
    """What the snackbar shows after an action, with its "Undo" button."""

    task: str
    text: str
    """What was done: "Task deleted", "Moved to Doing", "Changes saved"."""
    before: Mapping[str, Any]
    """The fields the action wrote, as they were before it."""
    after: Mapping[str, Any]
    """The same fields as the action set them."""
    action: str = "Undo"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.after)


def task_values(device: Device, task: str) -> dict[str, Any]:
    """The task's undoable fields now (NotFound when it is not on this device)."""
    found = device.entity("task", task)
    if found is None:
        raise NotFound(f"no task {task} in this profile")
    return {field: found["values"].get(field) for field in UNDOABLE}


def offer_for(
    device: Device, task: str, text: str | Callable[[Mapping[str, Any]], str],
    before: Mapping[str, Any],
) -> UndoOffer | None:  # fmt: skip
    """The offer for an action just done on ``task`` whose values were ``before`` (from
    ``task_values``); None when the action changed nothing."""
    now = task_values(device, task)
    changed = [field for field in UNDOABLE if before[field] != now[field]]
    if not changed:
        return None
    after = {field: now[field] for field in changed}
    words = text(after) if callable(text) else text
    return UndoOffer(task, words, {field: before[field] for field in changed}, after)


def undo(device: Device, offer: UndoOffer) -> str:
    """Write the inverse of ``offer`` for the fields that still hold what the action set;
    returns what to tell the user ("Undone", or what changed elsewhere)."""
    current = task_values(device, offer.task)
    still = [field for field in offer.fields if current[field] == offer.after[field]]
    elsewhere = [field for field in offer.fields if field not in still]
    if not still:
        return CHANGED_ELSEWHERE
    revert = {field: offer.before[field] for field in still}
    deleted = revert.pop("deleted", None)
    if deleted is False:
        device.restore_task(offer.task)
    elif deleted is True:
        device.delete_task(offer.task)
    if revert:
        device.set_task(offer.task, **revert)
    if not elsewhere:
        return "Undone"
    names = _and([FIELD_WORDS[field] for field in elsewhere])
    return f"Undone, except the {names}: changed elsewhere since, kept as it is now"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
