"""The task editor: every field, labels, comments; delete and restore.

The form is saved as a whole (only the fields that differ are recorded) when the user
presses Save, and also on the way back to the board, so nothing typed is lost. While the
form holds unsaved edits, a sync that changes the task does not overwrite them.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kivy.properties import StringProperty  # type: ignore[import-untyped]

from client.app.viewmodels import COLUMN_TITLES, CommentItem, TaskViewModel

from ..ui_thread import ui_callback
from .base import AppScreen, load_kv
from .common import Row, set_text

STATUS_BY_TITLE = {title: status for status, title in COLUMN_TITLES.items()}
FORM_FIELDS = ("title_input", "notes_input", "due_input", "assignee_input")


class LabelChip(Row):
    label = StringProperty("")


class CommentRow(Row):
    heading = StringProperty("")
    body = StringProperty("")


class TaskScreen(AppScreen):
    heading = StringProperty("Task")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: TaskViewModel | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._rendering = False
        self._drawn: object = None
        self.dirty = False
        """The form holds edits not saved yet."""

    def attach(self, model: TaskViewModel) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.model, self.dirty, self._drawn = model, False, None
        self._unsubscribe = model.subscribe(ui_callback(self.render))
        self.render()

    # commands

    def edited(self) -> None:
        if not self._rendering:
            self.dirty = True

    def save(self) -> bool:
        model, ids = self._model(), self.ids
        saved = self.act(
            lambda: model.save(
                title=ids.title_input.text,
                notes=ids.notes_input.text,
                status=STATUS_BY_TITLE[ids.status_spinner.text],
                priority=ids.priority_spinner.text,
                due=ids.due_input.text,
                assignee=ids.assignee_input.text,
            )
        )
        if saved:
            self.dirty = False
            self.render()
        return saved

    def back(self) -> None:
        """Back to the board, saving the form first; a form that is not valid stays."""
        model = self._model()
        if model.values is None or model.deleted or not self.dirty or self.save():
            self._to_board()

    def add_label(self) -> None:
        model = self._model()
        if self.act(lambda: model.add_label(self.ids.new_label_input.text)):
            self.ids.new_label_input.text = ""

    def remove_label(self, label: str) -> None:
        model = self._model()
        self.act(lambda: model.remove_label(label))

    def add_comment(self) -> None:
        model = self._model()
        if self.act(lambda: model.add_comment(self.ids.comment_input.text)):
            self.ids.comment_input.text = ""

    def delete_comment(self, comment: str) -> None:
        model = self._model()
        self.act(lambda: model.delete_comment(comment))

    def toggle_deleted(self) -> None:
        model = self._model()
        self.act(model.restore if model.deleted else model.delete)

    def on_shortcut(self, name: str) -> bool:
        if name == "back":
            self.back()
        elif name == "save":
            self.save()
        else:
            return False
        return True

    def _to_board(self) -> None:
        model = self._model()
        task = model.device.entity("task", model.task_id)
        if task is None:
            self.nav.open_boards()
        else:
            self.nav.open_board(task["board"])

    def _model(self) -> TaskViewModel:
        assert self.model is not None, "the task screen shows no task"
        return self.model

    # drawing

    def render(self) -> None:
        model = self.model
        if model is None:
            return
        values = model.values
        if values is None:
            self.nav.open_boards()  # gone from this device (the board was lost)
            return
        ids = self.ids
        self.heading = "Task (deleted)" if model.deleted else "Task"
        ids.delete_task_button.text = "Restore" if model.deleted else "Delete"
        ids.task_error.text = model.error or ""
        if not self.dirty:
            self._fill_form(values)
        drawn = (sorted(values["labels"]), model.comments)
        if drawn == self._drawn:
            return  # keep the widgets (and a tap in progress)
        self._drawn = copy.deepcopy(drawn)
        ids.label_list.clear_widgets()
        for label in sorted(values["labels"]):
            chip = LabelChip(locator=f"label:{label}", label=label)
            chip.ids.remove_button.bind(on_release=lambda *_, name=label: self.remove_label(name))
            ids.label_list.add_widget(chip)
        ids.comment_list.clear_widgets()
        for comment in model.comments:
            ids.comment_list.add_widget(self._comment(comment))
        ids.no_comments.text = "" if model.comments else "No comments yet"

    def _fill_form(self, values: dict[str, Any]) -> None:
        ids = self.ids
        self._rendering = True
        try:
            set_text(ids.title_input, values["title"])
            set_text(ids.notes_input, values["notes"])
            set_text(ids.due_input, values["due"] or "")
            set_text(ids.assignee_input, values["assignee"] or "")
            ids.status_spinner.text = COLUMN_TITLES[values["status"]]
            ids.priority_spinner.text = str(values["priority"])
        finally:
            self._rendering = False

    def _comment(self, comment: CommentItem) -> CommentRow:
        row = CommentRow(
            locator=f"comment:{comment['body'][:40]}",
            heading=f"{comment['author']} · {comment['time']}",
            body=comment["body"],
        )
        row.ids.delete_button.disabled = not comment["can_delete"]
        row.ids.delete_button.bind(on_release=lambda *_: self.delete_comment(comment["id"]))
        return row


load_kv(__file__)
