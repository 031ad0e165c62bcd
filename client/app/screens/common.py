"""Small widgets every screen uses: form fields, buttons, headings, plain-word errors, and
rows a test (or a screen reader) can name by their ``locator``."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from kivy.properties import BooleanProperty, StringProperty  # type: ignore[import-untyped]
from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
from kivy.uix.button import Button  # type: ignore[import-untyped]
from kivy.uix.label import Label  # type: ignore[import-untyped]
from kivy.uix.textinput import TextInput  # type: ignore[import-untyped]

from .base import load_kv


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


class ToolButton(Button):
    pass


class Row(BoxLayout):
    """A row of a list; ``locator`` names it (``card:Buy milk``, ``board:Launch``)."""

    locator = StringProperty("")
    selected = BooleanProperty(False)


def set_text(field: TextInput, text: str) -> None:
    """Show a value in a field without moving the cursor when it is already there."""
    if field.text != text:
        field.text = text


load_kv(__file__)
