"""Small widgets every screen uses: form fields, buttons, headings, plain-word errors, and
rows a test (or a screen reader) can name by their ``locator``."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from typing import Any

from kivy.properties import (  # type: ignore[import-untyped]
    BooleanProperty,
    ColorProperty,
    NumericProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
from kivy.uix.button import Button  # type: ignore[import-untyped]
from kivy.uix.label import Label  # type: ignore[import-untyped]
from kivy.uix.textinput import TextInput  # type: ignore[import-untyped]

from .base import load_kv
from .theme import Iconic, theme


class FormLabel(Label):
    pass


class Heading(Label):
    pass


class Note(Label):
    """A wrapped paragraph that grows to its text."""


class ErrorLabel(Note):
    pass


class FormInput(TextInput):
    pass


class ToolButton(Iconic, Button):
    """A button in the theme: 48 dp to tap, an optional icon (``icon: 'plus'``) beside its
    text or alone; ``primary`` fills it with the accent (the screen's main action)."""

    primary = BooleanProperty(False)


class Chip(Label):
    """A label's coloured chip: its colour comes from its name (``look.chip_colours``) and
    follows the scheme."""

    fill = ColorProperty((0, 0, 0, 0))
    ink = ColorProperty((0, 0, 0, 1))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        theme.bind(scheme=self._paint)
        self._paint()

    def on_text(self, *_args: Any) -> None:
        self._paint()

    def _paint(self, *_args: Any) -> None:
        self.fill, self.ink = theme.chip(self.text)


class FoldingBar(BoxLayout):
    """A bar that folds to 0 high when it has nothing to show (the undo snackbar, the deleted
    tasks). Folded, it takes no touch: its children keep their own height and stand out of
    it, and a disabled widget would take every touch that lands on it."""

    def on_touch_down(self, touch: Any) -> bool:
        if self.height <= 0:
            return False
        return bool(super().on_touch_down(touch))


class Row(BoxLayout):
    """A row of a list; ``locator`` names it (``card:Buy milk``, ``board:Launch``)."""

    locator = StringProperty("")
    selected = BooleanProperty(False)
    elevation = NumericProperty(0)
    """How far (dp) its shadow falls: 0 lies flat, a card is raised."""


def set_text(field: TextInput, text: str) -> None:
    """Show a value in a field without moving the cursor when it is already there."""
    if field.text != text:
        field.text = text


load_kv(__file__)
