"""One task: edit every field, labels, comments; delete and restore.

``save`` takes what the form holds (text from text fields; "" clears the due date or the
assignee), checks it all before recording anything, and sends only the fields that
changed. A change of column goes through a move, so the task lands at the column's end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from client.device import STATUSES, Device

from . import _validation as check
from ._base import ViewModel
from ._identity import me, require_open
from ._text import TimeText


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
        self._board: dict[str, Any] | None = None
        self._reload()

    @property
    def deleted(self) -> bool:
        return bool(self.values and self.values["deleted"])

    # commands

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
        """Record the fields given (None: leave as is) that differ from the task's."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")

        def act() -> None:
            require_open(self._board)
            wanted: dict[str, Any] = {}
            if title is not None:
                wanted["title"] = check.title(title)
            if notes is not None:
                wanted["notes"] = check.notes(notes)
            if priority is not None:
                wanted["priority"] = check.priority(priority)
            if due is not None:
                wanted["due"] = check.due(due)
            if assignee is not None:
                wanted["assignee"] = check.assignee(assignee)
            self._record(wanted, status)

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
        return self._do(lambda: self._open_then(self.device.delete_task, self.task_id))

    def restore(self) -> bool:
        return self._do(lambda: self._open_then(self.device.restore_task, self.task_id))

    # internals

    def _record(self, wanted: dict[str, Any], status: str | None) -> None:
        current = self.values or {}
        changed = {k: v for k, v in wanted.items() if current.get(k, object()) != v}
        if status is not None and status != current.get("status"):
            self.device.move_task(self.task_id, status)  # to the end of its new column
        if changed:
            self.device.set_task(self.task_id, **changed)

    def _open_then(self, action: Callable[..., None], *args: str) -> None:
        require_open(self._board)
        action(*args)

    def _load(self) -> None:
        found = self.device.entity("task", self.task_id)
        if found is None:
            self.values, self._board, self.comments = None, None, []
            return
        self.values = {k: v for k, v in found["values"].items() if k != "position"}
        board = self.device.entity("board", found["board"])
        self._board = None if board is None else dict(board["values"])
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
