"""The app side of ``board_scroll``: ``python -m outpost.bench.board_scroll_child
--data-dir PROFILE --out FILE --frames N --filters N`` runs the shipped ``OutpostApp`` on the
profile (its last board opens), then, a frame at a time:

1. scrolls the longest column (To do) from top to bottom and back in ``--frames`` steps,
   and the same on plain Kivy: a ScrollView of the same titles as Labels, in the same window;
2. types ``--filters`` searches into the board's filter (one that keeps about a tenth of
   the cards, then none again), each until the first frame that shows its result; and the
   same number of swaps of the plain list between those cards and all.

It writes the times (ms) as JSON to ``--out`` and quits. Kivy's frame cap is off, so the
time between two frames shown is what a frame costs.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SETTLE_FRAMES = 10
Step = Iterator[None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outpost.bench.board_scroll_child")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--filters", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("KIVY_NO_ARGS", "1")

    from kivy.config import Config  # type: ignore[import-untyped]

    Config.set("graphics", "maxfps", "0")  # a frame as soon as the last one is done

    from client.app.main import OutpostApp, run_app

    began = time.perf_counter()

    class BenchApp(OutpostApp):
        def build(self) -> Any:
            root = super().build()
            from kivy.clock import Clock  # type: ignore[import-untyped]

            script = _script(self, args.frames, args.filters, began, Path(args.out))
            Clock.schedule_interval(lambda _dt: _advance(script, self.stop), 0)
            return root

    return run_app(None, Path(args.data_dir), app_class=BenchApp)


def _advance(script: Step, stop: Callable[[], None]) -> bool:
    """One step a frame; stop the app when the script ends (or fails)."""
    try:
        next(script)
    except StopIteration:
        stop()
        return False
    except Exception:
        stop()
        raise
    return True


class _Frames:
    """When each frame was shown."""

    def __init__(self) -> None:
        from kivy.core.window import Window  # type: ignore[import-untyped]

        self.times: list[float] = []
        Window.bind(on_flip=lambda *_: self.times.append(time.perf_counter()))

    def costs(self, start: int) -> list[float]:
        """ms between the frames shown since frame ``start``."""
        shown = self.times[start:]
        return [(b - a) * 1000 for a, b in itertools.pairwise(shown)]


def _script(app: Any, frames: int, filters: int, began: float, out: Path) -> Step:
    from kivy.core.window import Window  # type: ignore[import-untyped]
    from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
    from kivy.uix.label import Label  # type: ignore[import-untyped]
    from kivy.uix.scrollview import ScrollView  # type: ignore[import-untyped]

    frames_shown = _Frames()
    screen = app.shell.ids.board_screen
    while app.shell.ids.screens.current != "board" or not _cards_shown(screen):
        yield
    opened = time.perf_counter() - began
    for _ in range(SETTLE_FRAMES):
        yield
    column = screen.ids.column_todo
    titles = [card.title for card in reversed(column.ids.cards.children)]

    # 1. the app: scrolling its column, then filtering the board
    scroll = yield from _scroll(column.ids.scroll, frames, frames_shown)
    filtered: list[float] = []
    for i in range(filters):
        text = "Task 1" if i % 2 == 0 else ""
        started = time.perf_counter()
        screen.ids.filter_input.text = text
        yield from _until(lambda: _shows_filter(screen))
        mark = len(frames_shown.times)
        Window.canvas.ask_update()  # the frame that shows it (the first after its widgets)
        yield
        yield
        filtered.append((frames_shown.times[mark] - started) * 1000)
    cards = sum(len(c.ids.cards.children) for c in screen._all_columns)

    # 2. plain Kivy alone in the window (the app's widgets taken out, so that they are not
    # drawn too): a ScrollView of the same titles as Labels where the column was
    position, size = column.to_window(*column.pos), tuple(column.size)
    Window.remove_widget(app.shell)
    plain = ScrollView(do_scroll_x=False, size_hint=(None, None), size=size, pos=position)
    items = BoxLayout(orientation="vertical", size_hint_y=None, spacing=8)
    items.bind(minimum_height=items.setter("height"))
    for title in titles:
        items.add_widget(_plain_label(Label, title))
    plain.add_widget(items)
    Window.add_widget(plain)
    for _ in range(SETTLE_FRAMES):
        yield
    scroll_plain = yield from _scroll(plain, frames, frames_shown)
    keep = [t for t in titles if t.startswith("Task 1")]
    filtered_plain: list[float] = []
    for i in range(filters):
        started = time.perf_counter()
        items.clear_widgets()
        for title in keep if i % 2 == 0 else titles:
            items.add_widget(_plain_label(Label, title))
        mark = len(frames_shown.times)
        Window.canvas.ask_update()
        yield
        yield
        filtered_plain.append((frames_shown.times[mark] - started) * 1000)
    Window.remove_widget(plain)
    Window.add_widget(app.shell)

    figures = {
        "open_s": opened,
        "cards": cards,
        "scroll": scroll,
        "scroll_plain": scroll_plain,
        "filter": filtered,
        "filter_plain": filtered_plain,
    }
    out.write_text(json.dumps(figures), encoding="utf-8")


def _scroll(view: Any, frames: int, frames_shown: _Frames) -> Iterator[None]:
    """Top to bottom and back, one step a frame; the frames' costs (ms)."""
    start = len(frames_shown.times)
    half = max(1, frames // 2)
    from kivy.core.window import Window

    for step in range(frames):
        Window.canvas.ask_update()  # a frame each step, even where the view is at its end
        down = step < half
        view.scroll_y = 1 - step / half if down else (step - half) / max(1, frames - half)
        yield
    yield
    return frames_shown.costs(start)


def _until(done: Callable[[], bool], limit: int = 10_000) -> Iterator[None]:
    for _ in range(limit):
        if done():
            return
        yield
    raise RuntimeError("the board never showed the filter's result")


def _cards_shown(screen: Any) -> bool:
    model = screen.model
    if model is None:
        return False
    wanted = sum(len(cards) for cards in model.columns.values())
    return wanted > 0 and wanted == sum(len(c.ids.cards.children) for c in screen._all_columns)


def _shows_filter(screen: Any) -> bool:
    """The model took the filter, and the columns show what it keeps."""
    model = screen.model
    typed = screen.ids.filter_input.text
    return bool((model.filter.text or "") == typed and _cards_shown_any(screen))


def _cards_shown_any(screen: Any) -> bool:
    model = screen.model
    wanted = sum(len(cards) for cards in model.columns.values())
    return wanted == sum(len(c.ids.cards.children) for c in screen._all_columns)


def _plain_label(label: Any, title: str) -> Any:
    return label(text=title, size_hint_y=None, height=56)


if __name__ == "__main__":
    raise SystemExit(main())
