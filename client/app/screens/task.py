"""The task editor: every field, labels, comments; delete and restore.

Every keystroke goes to the view model's form (``TaskViewModel.edit``), which knows what
the user changed since the editor opened. Save (and the way back to the board, so nothing
typed is lost) records only those fields. A sync that changes the task refreshes the view
model: the fields the user has not touched follow it on screen, and a field the user is
editing that another device changed shows a hint under it with the other value.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kivy.metrics import dp  # type: ignore[import-untyped]
from kivy.properties import NumericProperty, StringProperty  # type: ignore[import-untyped]

from client.app.viewmodels import CommentItem, TaskViewModel

from ..ui_thread import ui_callback
from .base import AppScreen, load_kv
from .common import Row, set_text
from .pickers import ChoiceSheet, DateSheet, Pick, Sheet

INPUTS = {
    "title": "title_input",
    "notes": "notes_input",
    "status": "status_picker",
    "priority": "priority_picker",
    "due": "due_picker",
    "assignee": "assignee_picker",
}
"""The form's widget for each field of the view model's form."""
IN_GRID = ("status", "priority", "due", "assignee")


class LabelChip(Row):
    label = StringProperty("")


class CommentRow(Row):
    heading = StringProperty("")
    body = StringProperty("")


class TaskScreen(AppScreen):
    heading = StringProperty("Task")
    hint_room = NumericProperty(0)
    """Room under the grid's fields when one of them shows a hint (the cells stay level)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: TaskViewModel | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._rendering = False
        self._drawn: object = None
        self.sheet: Sheet | None = None
        """The picker open over the editor, if one is."""

    @property
    def dirty(self) -> bool:
        """The form holds edits not saved yet."""
        return self.model is not None and bool(self.model.touched)

    def attach(self, model: TaskViewModel) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.model, self._drawn = model, None
        self._unsubscribe = model.subscribe(ui_callback(self.render))
        self.render()

    # commands

    def edited(self, field: str, text: str) -> None:
        """The user changed a field (a redraw setting it is no edit)."""
        if self._rendering or self.model is None:
            return
        self.model.edit(field, text)

    # the pickers: each sets its field through the view model's form, as typing did

    def pick_status(self) -> None:
        model = self._model()
        choices = [(c.value, c.name, c.selected) for c in model.status_choices]
        self._open(ChoiceSheet("Column", choices, self._picked(model.pick_status)))

    def pick_priority(self) -> None:
        model = self._model()
        choices = [(str(c.value), c.name, c.selected) for c in model.priority_choices]
        self._open(
            ChoiceSheet("Priority", choices, self._picked(lambda v: model.pick_priority(int(v))))
        )

    def pick_due(self) -> None:
        model = self._model()
        self._open(DateSheet(model.date_picker(), self._picked(model.pick_due)))

    def pick_assignee(self) -> None:
        model = self._model()
        choices = [(c.username, c.label, c.selected) for c in model.assignee_choices]
        self._open(ChoiceSheet("Assignee", choices, self._picked(model.pick_assignee)))

    def _open(self, sheet: Sheet) -> None:
        self.close_picker()
        self.sheet = sheet
        sheet.bind(on_dismiss=lambda *_: self._closed(sheet))
        sheet.open()

    def _closed(self, sheet: Sheet) -> None:
        if self.sheet is sheet:
            self.sheet = None

    def _picked(self, pick: Pick) -> Pick:
        def picked(value: str) -> None:
            pick(value)
            self.render()  # an edit of the form tells no one: draw it

        return picked

    def close_picker(self) -> bool:
        """Close the picker open over the editor (nothing picked); False if none was."""
        sheet, self.sheet = self.sheet, None
        if sheet is None:
            return False
        sheet.dismiss(animation=False)
        return True

    def on_leave(self, *_args: object) -> None:
        self.close_picker()

    def save(self) -> bool:
        model = self._model()
        saved = self.act(model.save)
        if saved:
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
            if not self.close_picker():  # Escape closes the picker first
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
        self._fill_form(model)
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

    def _fill_form(self, model: TaskViewModel) -> None:
        """The form as the view model holds it (the fields the user has not touched follow
        the task), and a hint under each field another device changed meanwhile."""
        ids = self.ids
        self._rendering = True
        try:
            shown = {
                "status": model.status_name,
                "priority": model.priority_name,
                "due": model.due_text,
                "assignee": model.assignee_text,
            }
            for field, name in INPUTS.items():
                set_text(ids[name], shown.get(field, model.form[field]))
                ids[f"{field}_changed"].text = model.hint(field)
            self.hint_room = dp(18) if any(model.hint(f) for f in IN_GRID) else 0
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
