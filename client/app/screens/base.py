"""What the screens share: their kv files, the app's navigation, and one way to act."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from kivy.lang import Builder  # type: ignore[import-untyped]
from kivy.uix.screenmanager import Screen  # type: ignore[import-untyped]

T = TypeVar("T")


def load_kv(module_file: str) -> None:
    """Load the ``.kv`` file beside a screen's module (once: modules import once)."""
    Builder.load_file(str(Path(module_file).with_suffix(".kv")))


class Navigation(Protocol):
    """What a screen may ask of the app."""

    def open_boards(self) -> None: ...

    def open_board(self, board_id: str) -> None: ...

    def open_task(self, task_id: str) -> None: ...

    def show_sign_in(self) -> None: ...

    def signed_in(self) -> None: ...

    def continued_offline(self) -> None: ...

    def sync_now(self) -> None: ...

    def open_account(self) -> None: ...

    def signed_out(self, message: str) -> None:
        """The account signed out: back to the sign-in screen, saying what was kept."""
        ...

    def switch_profile(self, folder: Path, message: str | None, username: str | None) -> None:
        """Reopen the app on another account's profile folder (``username``'s)."""
        ...

    def changed_locally(self) -> None:
        """A command recorded something: the pending count moves and the sync wakes."""
        ...


class AppScreen(Screen):
    """A screen of the app; ``nav`` is set by the app before the screen is shown."""

    nav: Navigation

    def act(self, command: Callable[[], T]) -> T:
        """Run one view-model command, then tell the app something may be pending."""
        result = command()
        self.nav.changed_locally()
        return result

    def on_shortcut(self, name: str) -> bool:
        """A keyboard shortcut (``new``, ``search``, ``back``, ``left``...); True if used."""
        return False
