"""The pickers as widgets: a date picker drawn from the month grid's view model
(``viewmodels/pickers.py``), and a list of choices to pick one from (the board's members,
the priorities, the columns).

Each opens over the task editor as a sheet in the app's theme (a ``ModalView`` whose stock
background is gone; ``pickers.kv`` draws it), hands what was picked to the editor through
``on_pick``, and closes. Cancel, Escape or a tap outside it change nothing. The editor's
fields that open them are ``PickerField`` buttons: they look like a form field, show the
value picked, and take 48 dp to tap.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kivy.properties import (  # type: ignore[import-untyped]
    BooleanProperty,
    NumericProperty,
    StringProperty,
)
from kivy.uix.button import Button  # type: ignore[import-untyped]
from kivy.uix.label import Label  # type: ignore[import-untyped]
from kivy.uix.modalview import ModalView  # type: ignore[import-untyped]

from client.app.viewmodels.pickers import DatePicker

from .base import load_kv
from .theme import Iconic

Pick = Callable[[str], None]
"""What a picker calls with the value picked (``""`` for none)."""


class PickerField(Iconic, Button):
    """A form field whose value is picked, not typed: the value, an icon at its end."""


class Sheet(ModalView):
    """A picker's frame: a card over the dimmed window, its heading on top."""

    heading = StringProperty("")
    body_height = NumericProperty(0)
    """How high its body wants to be (the sheet is at most the window's height less 32 dp)."""


class ChoiceRow(Iconic, Button):
    """One choice of a ``ChoiceSheet``; ``locator`` names it (``option:High``)."""

    locator = StringProperty("")
    selected = BooleanProperty(False)


class ChoiceSheet(Sheet):
    """Pick one of ``choices``: (value, what it shows, selected) each; the selected one is
    marked with a check."""

    def __init__(
        self, heading: str, choices: Sequence[tuple[str, str, bool]], on_pick: Pick, **kwargs: Any
    ) -> None:
        super().__init__(heading=heading, **kwargs)
        self._on_pick = on_pick
        for value, label, selected in choices:
            row = ChoiceRow(
                locator=f"option:{label}",
                text=label,
                selected=selected,
                icon="check" if selected else "",
            )
            row.bind(on_release=lambda _row, value=value: self.choose(value))
            self.ids.choice_list.add_widget(row)

    def choose(self, value: str) -> None:
        self.dismiss(animation=False)  # gone at once: the next tap reaches the editor
        self._on_pick(value)


class DayButton(Button):
    """One day of the month grid; ``locator`` is ``day:YYYY-MM-DD``."""

    locator = StringProperty("")
    date = StringProperty("")
    today = BooleanProperty(False)
    selected = BooleanProperty(False)
    in_month = BooleanProperty(True)


class DateSheet(Sheet):
    """The month grid of a ``DatePicker``: the month's title between previous and next,
    the weekdays, the days (today ringed, the day picked filled), Clear (no due date) and
    Cancel; on a wide window, a field to type the date in too (Enter picks it)."""

    def __init__(self, picker: DatePicker, on_pick: Pick, **kwargs: Any) -> None:
        super().__init__(heading="Due date", **kwargs)
        self.picker = picker
        self._on_pick = on_pick
        self._unsubscribe = picker.subscribe(self.render)
        self._shown: tuple[int, int] | None = None
        for name in picker.weekdays:
            self.ids.weekday_row.add_widget(WeekdayLabel(text=name))
        self.render()

    # what the user does

    def previous_month(self) -> None:
        self.picker.previous_month()

    def next_month(self) -> None:
        self.picker.next_month()

    def choose(self, day: str) -> None:
        if self.picker.pick(day):
            self._done(self.picker.value)

    def typed(self, text: str) -> None:
        """A date typed in (``YYYY-MM-DD``); one not on the calendar is refused in words."""
        if text.strip() and self.picker.pick(text.strip()):
            self._done(self.picker.value)

    def clear(self) -> None:
        self.picker.clear()
        self._done("")

    def _done(self, value: str) -> None:
        self.dismiss(animation=False)
        self._on_pick(value)

    def on_dismiss(self) -> None:
        self._unsubscribe()

    # drawing

    def render(self) -> None:
        picker, ids = self.picker, self.ids
        ids.date_title.text = picker.title
        ids.date_error.text = picker.error or ""
        grid = ids.day_grid
        shown = (picker.year, picker.month)
        if shown == self._shown:  # the same month: mark the days again, keep the buttons
            cells = [cell for week in picker.weeks for cell in week]
            for button, cell in zip(reversed(grid.children), cells, strict=True):
                button.today, button.selected = cell.today, cell.selected
            return
        self._shown = shown
        grid.clear_widgets()
        for week in picker.weeks:
            for cell in week:
                button = DayButton(
                    locator=f"day:{cell.date}",
                    date=cell.date,
                    text=str(cell.day),
                    today=cell.today,
                    selected=cell.selected,
                    in_month=cell.in_month,
                )
                button.bind(on_release=lambda b: self.choose(b.date))
                grid.add_widget(button)


class WeekdayLabel(Label):
    """A weekday's name over its column of days."""


load_kv(__file__)
