"""The window's frame: the screens above, the notices and the status bar always below."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]

from . import account, board, boards, notices, signin, statusbar, task  # noqa: F401  (kv rules)
from .base import load_kv


class Shell(BoxLayout):
    pass


load_kv(__file__)
