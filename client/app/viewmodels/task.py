"""One task: edit every field, labels, comments; delete and restore.

The editor works from a *base*: the task's fields as they were when it opened (or last
saved). ``form`` is what the user's form holds, as text; ``edit`` changes it as the user
types. ``save`` checks every field the user changed from the base before recording
anything, and records only those (a TaskUpdated with just them; a change of column goes
through a move, so the task lands at the column's end). A field the user did not touch is
never written back, so another device's edit of it stays.

While the editor is open, a sync that changes the task updates every field the user has
not touched, in the form too (its base moves on); a field the user is editing that was also
changed elsewhere is listed in ``conflicts`` with the other value, and ``hint`` says so in
words. Saving keeps the user's value for it: the last edit wins, knowingly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from client.device import STATUSES, Device
from client.errors import NotFound

from . import _validation as check
from ._base import ViewModel
from ._identity import me, require_open
from ._text import TimeText
from .board import COLUMN_TITLES
from .pickers import (
    AssigneeChoice,
    DatePicker,
    PriorityChoice,
    StatusChoice,
    assignee_choices,
    priority_choices,
    priority_name,
    status_choices,
)
from .undo import UndoOffer, offer_for, task_values, undo

FORM_FIELDS = ("title", "notes", "status", "priority", "due", "assignee")
"""The task's fields the editor's form holds (labels and comments have their own events)."""


class CommentItem(TypedDict):
    id: str
    body: str
    author: str
    time: str
    can_delete: bool


class TaskViewModel(ViewModel):
    def __init__(
        self,
        device: Device,
        task_id: str,
        *,
        format_time: Callable[[float], str] | None = None,
    ) -> None:
        super().__init__()
        self.device = device
        self.task_id = task_id
        self._format_time = format_time or TimeText()
        self.values: dict[str, Any] | None = None
        """title, notes, status, priority, due, assignee, labels, deleted; None if gone."""
        self.comments: list[CommentItem] = []
        self.base: dict[str, Any] = {}
        """The form's fields as the task had them when the editor opened (or last saved, or
        as another device changed a field the user had not touched)."""
        self.form: dict[str, str] = {}
        """What the form holds, as text ("" for no due date or no assignee)."""
        self.conflicts: dict[str, str] = {}
        """Fields the user is editing that another device changed: their value, as text."""
        self._board: dict[str, Any] | None = None
        self._members: list[dict[str, Any]] = []
        self.undo_offer: UndoOffer | None = None
        """After a save or a delete: the snackbar's text and its "Undo"."""
        self.undo_result: str | None = None
        """After ``undo``: "Undone", or what changed elsewhere and was kept."""
        self._reload()

    @property
    def touched(self) -> list[str]:
        """The fields whose text the user changed from the base."""
        return [f for f in FORM_FIELDS if f in self.base and self.form[f] != _text(self.base[f])]

    def hint(self, field: str) -> str:
        """What to show under a field changed elsewhere while the user edits it ("" if not)."""
        if field not in self.conflicts:
            return ""
        value = self.conflicts[field]
        shown = COLUMN_TITLES.get(value, value) if field == "status" else value
        if field == "priority" and value.isdigit():
            shown = priority_name(int(value))
        if field == "notes" and len(shown) > 80:
            shown = shown[:79] + "…"
        return f"Changed on another device: {shown or '(empty)'}"

    @property
    def deleted(self) -> bool:
        return bool(self.values and self.values["deleted"])

    # pickers: what the form's fields are chosen from, and how the chosen value reads

    @property
    def status_choices(self) -> list[StatusChoice]:
        """The board's three columns by title, the form's one selected."""
        return status_choices(self.form.get("status"), COLUMN_TITLES)

    def pick_status(self, status: str) -> None:
        """A column chosen by the user (``doing``): saving moves the task to its end."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        self.edit("status", status)

    @property
    def status_name(self) -> str:
        """The form's column by its title (``Doing``)."""
        status = self.form.get("status", "")
        return COLUMN_TITLES.get(status, status)

    @property
    def due_text(self) -> str:
        """The form's due date as the editor's field shows it: ``2025-03-14``, or
        ``No due date``."""
        return self.form.get("due", "") or "No due date"

    @property
    def assignee_text(self) -> str:
        """The form's assignee as the editor's field shows it: ``Nobody``, ``bob``,
        ``alice (you)``, ``carol (not on the board)``."""
        chosen = [c.label for c in self.assignee_choices if c.selected]
        return chosen[0] if chosen else self.form.get("assignee", "")

    @property
    def priority_name(self) -> str:
        """The form's priority by name ("High"); its text as typed if it is not valid."""
        try:
            return priority_name(check.priority(self.form.get("priority", "0")))
        except check.Refused:
            return self.form.get("priority", "")

    @property
    def priority_choices(self) -> list[PriorityChoice]:
        try:
            current: int | None = check.priority(self.form.get("priority", "0"))
        except check.Refused:
            current = None
        return priority_choices(current)

    def pick_priority(self, value: int) -> None:
        """A priority chosen by the user (0..4; shown by name)."""
        self.edit("priority", str(check.priority(value)))

    @property
    def assignee_choices(self) -> list[AssigneeChoice]:
        """Nobody, then the board's members: whom the task can be assigned to."""
        return assignee_choices(self._members, self.form.get("assignee"), me(self.device))

    def pick_assignee(self, username: str) -> None:
        """An assignee chosen from ``assignee_choices`` ("" for nobody)."""
        self.edit("assignee", username)

    def clear_assignee(self) -> None:
        self.edit("assignee", "")

    def date_picker(self, today: Callable[[], Any] | None = None) -> DatePicker:
        """A month grid opened on the form's due date (or today's month)."""
        due = self.form.get("due", "")
        return DatePicker(due, today=today) if today else DatePicker(due)

    def pick_due(self, day: str) -> None:
        """The date picked (``YYYY-MM-DD``, from ``DatePicker.value``), "" for none."""
        self.edit("due", day)

    def clear_due(self) -> None:
        self.edit("due", "")

    # commands

    def edit(self, field: str, text: str) -> None:
        """The user changed a field of the form (a status by its name: ``doing``)."""
        if field not in FORM_FIELDS:
            raise ValueError(f"the form has no field {field!r}")
        self.form[field] = text
        before = dict(self.conflicts)
        if self.values is not None:
            self._take_in(self.values, field)
        if self.conflicts != before:
            self._notify()

    def save(
        self,
        *,
        title: str | None = None,
        notes: str | None = None,
        status: str | None = None,
        priority: int | str | None = None,
        due: str | None = None,
        assignee: str | None = None,
    ) -> bool:
        """Record the fields the user changed from the base (the form as it is, with the
        fields given here typed into it first)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        given: dict[str, object] = {"title": title, "notes": notes, "status": status}
        given |= {"priority": priority, "due": due, "assignee": assignee}
        for name, value in given.items():
            if value is not None:
                self.form[name] = str(value)

        def act() -> None:
            if self.values is None:
                raise NotFound(f"no task {self.task_id} in this profile")
            require_open(self._board)
            changes = self._changes()
            before = task_values(self.device, self.task_id)
            self._record(changes)
            self.undo_offer = offer_for(self.device, self.task_id, "Changes saved", before)
            self.undo_result = None
            self.base = {}  # saved: the form starts again from the task as it is now

        return self._do(act)

    def add_label(self, label: str) -> bool:
        def act() -> None:
            require_open(self._board)
            name = check.label(label)
            if self.values is None or name not in self.values["labels"]:
                self.device.add_label(self.task_id, name)

        return self._do(act)

    def remove_label(self, label: str) -> bool:
        return self._do(lambda: self._open_then(self.device.remove_label, self.task_id, label))

    def add_comment(self, body: str) -> str | None:
        """A new comment; its id, or None (see ``error``)."""

        def act() -> str:
            require_open(self._board)
            return self.device.add_comment(self.task_id, check.comment(body))

        return self._run(act)[1]

    def delete_comment(self, comment: str) -> bool:
        def act() -> None:
            require_open(self._board)
            found = next((c for c in self.comments if c["id"] == comment), None)
            if found is not None and not found["can_delete"]:
                raise check.Refused("Only its author or the board's owner can delete a comment")
            self.device.delete_comment(comment)

        return self._do(act)

    def delete(self) -> bool:
        def act() -> None:
            require_open(self._board)
            before = task_values(self.device, self.task_id)
            self.device.delete_task(self.task_id)
            self.undo_offer = offer_for(self.device, self.task_id, "Task deleted", before)
            self.undo_result = None

        return self._do(act)

    def undo(self) -> bool:
        """Undo the last save or delete, field by field: only fields that still hold what
        it set are written back; ``undo_result`` says what was done."""
        offer = self.undo_offer
        if offer is None:
            return False

        def act() -> None:
            require_open(self._board)
            self.undo_offer = None
            self.undo_result = undo(self.device, offer)
            self.base = {}  # the form follows the task as undone

        return self._do(act)

    def dismiss_undo(self) -> None:
        self.undo_offer = self.undo_result = None
        self._notify()

    def restore(self) -> bool:
        return self._do(lambda: self._open_then(self.device.restore_task, self.task_id))

    # internals

    def _changes(self) -> dict[str, Any]:
        """Every field the user changed from the base, checked; raises before anything is
        recorded if one is not valid."""
        checks: dict[str, Callable[[str], Any]] = {
            "title": check.title,
            "notes": check.notes,
            "status": str,
            "priority": check.priority,
            "due": check.due,
            "assignee": check.assignee,
        }
        changed = {}
        for field in self.touched:
            value = checks[field](self.form[field])
            if value != self.base[field]:
                changed[field] = value
        return changed

    def _record(self, changed: dict[str, Any]) -> None:
        current = self.values or {}
        status = changed.pop("status", None)
        if status is not None and status != current.get("status"):
            self.device.move_task(self.task_id, status)  # to the end of its new column
        fields = {k: v for k, v in changed.items() if current.get(k, object()) != v}
        if fields:
            self.device.set_task(self.task_id, **fields)

    def _take_in(self, values: dict[str, Any], *fields: str) -> None:
        """The task as it is now, into the form: a field the user has not touched (or has
        typed the same into) follows it; one the user changed, and another device too, is
        a conflict."""
        for field in fields or FORM_FIELDS:
            now = values[field]
            fresh = field not in self.base  # the editor opened, or saved
            if fresh or self.form[field] in (_text(self.base[field]), _text(now)):
                self.base[field], self.form[field] = now, _text(now)
                self.conflicts.pop(field, None)
            elif now != self.base[field]:
                self.conflicts[field] = _text(now)
            else:
                self.conflicts.pop(field, None)

    def _open_then(self, action: Callable[..., None], *args: str) -> None:
        require_open(self._board)
        action(*args)

    def _load(self) -> None:
        found = self.device.entity("task", self.task_id)
        if found is None:
            self.values, self._board, self.comments, self._members = None, None, [], []
            self.base, self.conflicts = {}, {}
            return
        self.values = {k: v for k, v in found["values"].items() if k != "position"}
        self._take_in(self.values)
        board = self.device.entity("board", found["board"])
        self._board = None if board is None else dict(board["values"])
        self._members = self.device.members(found["board"])
        you = me(self.device)
        owner = None if self._board is None else self._board["owner"]
        self.comments = [
            {
                "id": c["id"],
                "body": c["body"],
                "author": c["author"],
                "time": self._format_time(c["created_at"] / 1000),
                "can_delete": you in (c["author"], owner),
            }
            for c in self.device.comments(self.task_id)
        ]


def _text(value: Any) -> str:
    """A field's value as the form shows it."""
    return "" if value is None else str(value)
