"""The one adapter between other threads and the UI thread.

The sync thread (sign-ins included) and the test-control channel never touch a
widget: they hand a function to ``on_ui``, which runs it on the UI thread at the next frame
(Kivy's clock is thread safe). Everything that reaches the screens from elsewhere comes
through here, so a screen's code always runs on the one thread that may draw.
"""

# mypy: no-warn-unused-ignores

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.clock import Clock  # type: ignore[import-untyped]


def on_ui(fn: Callable[[], object]) -> None:
    """Run ``fn()`` on the UI thread at the next frame; callable from any thread."""

    def run(_dt: float) -> None:
        fn()

    Clock.schedule_once(run, 0)


def ui_callback(fn: Callable[[], object]) -> Callable[..., None]:
    """``fn`` wrapped to run on the UI thread whatever thread calls it (for subscriptions)."""

    def call(*_args: Any) -> None:
        on_ui(fn)

    return call
