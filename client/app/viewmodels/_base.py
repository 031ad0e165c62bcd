"""What every view model shares: the ``changed`` hook, and commands that never raise to
the UI. A ``ClientError`` (the store failed, the task is gone, the input is not valid)
becomes ``error`` in plain words; anything else is a programming error and propagates."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

from client.errors import ClientError

from ._text import plain_error

T = TypeVar("T")
Callback = Callable[[], None]


class ViewModel:
    def __init__(self) -> None:
        self.changed: list[Callback] = []
        self.error: str | None = None

    def subscribe(self, callback: Callback) -> Callback:
        """Call ``callback`` after every command and refresh; returns the unsubscribe."""
        self.changed.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.changed.remove(callback)

        return unsubscribe

    def refresh(self) -> None:
        """Read the device again (after a sync, say) and tell the subscribers."""
        self._reload()
        self._notify()

    def _load(self) -> None:
        """Read what this view model shows from the device (subclasses)."""

    def _reload(self) -> None:
        try:
            self._load()
        except ClientError as exc:
            self.error = plain_error(exc)

    def _notify(self) -> None:
        for callback in list(self.changed):
            callback()

    def _run(self, action: Callable[[], T]) -> tuple[bool, T | None]:
        """One command: clear the last error, act, reload, notify; never raise a
        ClientError."""
        self.error = None
        try:
            result: T | None = action()
            done = True
        except ClientError as exc:
            self.error = plain_error(exc)
            result, done = None, False
        self._reload()
        self._notify()
        return done, result

    def _do(self, action: Callable[[], object]) -> bool:
        return self._run(action)[0]
