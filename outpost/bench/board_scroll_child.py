"""The app side of ``board_scroll``: ``python -m outpost.bench.board_scroll_child
--data-dir PROFILE --out FILE --frames N --filters N`` runs the shipped ``OutpostApp`` on the
profile (its last board opens), then, a frame at a time:

0. draws ``IDLE_FRAMES`` frames with nothing new (what drawing the window costs);
1. scrolls the longest column (To do) from top to bottom and back in ``--frames`` steps
   (the board recycles its cards' widgets: only those in sight exist);
2. types ``--filters`` searches into the board's filter (one that keeps about a tenth of
   the cards, then none again), each until the first frame that shows its result;
3. the same on plain Kivy alone in the window, where the column was: a RecycleView of the
   same titles as Labels (the baseline), the same scroll and the same swaps of its data
   between those cards and all; then a ScrollView of them as Labels (every label a widget),
   over at most ``PLAIN_SCROLLVIEW_FRAMES`` frames and 2 swaps (it is slow).

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
IDLE_FRAMES = 30
"""Frames drawn with nothing new: what a frame of the window costs without scrolling."""
PLAIN_SCROLLVIEW_FRAMES = 30
"""The ScrollView of Labels draws every label each frame: slow, so fewer frames of it."""
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

    frames_shown = _Frames()
    screen = app.shell.ids.board_screen
    while app.shell.ids.screens.current != "board" or not _cards_shown(screen):
        yield
    opened = time.perf_counter() - began
    for _ in range(SETTLE_FRAMES):
        yield
    column = screen.ids.column_todo
    titles = [item["title"] for item in column.ids.scroll.data]

    # 1. the app: a frame with nothing new (what drawing the window costs), scrolling its
    # column, then filtering the board
    idle = yield from _idle(IDLE_FRAMES, frames_shown)
    scroll = yield from _scroll(column.ids.scroll, frames, frames_shown)
    widgets = max(len(c.card_views()) for c in screen._all_columns)
    filtered: list[float] = []
    for i in range(filters):
        text = "Task 1" if i % 2 == 0 else ""
        started = time.perf_counter()
        screen.ids.filter_input.text = text
        yield from _until(lambda: _shows_filter(screen))
        filtered.append(((yield from _next_frame(frames_shown)) - started) * 1000)
    cards = sum(len(c.ids.scroll.data) for c in screen._all_columns)

    # 2. plain Kivy alone in the window (the app's widgets taken out, so that they are not
    # drawn too), where the column was: a RecycleView of the same titles as Labels (the
    # baseline of a recycling board), then a ScrollView of them (every Label a widget)
    position, size = column.to_window(*column.pos), tuple(column.size)
    Window.remove_widget(app.shell)
    plain = {}
    for kind, steps, swaps in (
        ("recycle", frames, filters),
        ("scrollview", min(frames, PLAIN_SCROLLVIEW_FRAMES), min(filters, 2)),
    ):
        view, show = _plain_list(kind, size, position)
        show(titles)
        Window.add_widget(view)
        for _ in range(SETTLE_FRAMES):
            yield
        if kind == "recycle":
            plain["idle"] = yield from _idle(IDLE_FRAMES, frames_shown)
        plain[kind] = yield from _scroll(view, steps, frames_shown)
        keep = [t for t in titles if t.startswith("Task 1")]
        swapped: list[float] = []
        for i in range(swaps):
            started = time.perf_counter()
            show(keep if i % 2 == 0 else titles)
            swapped.append(((yield from _next_frame(frames_shown)) - started) * 1000)
        plain[f"{kind}_filter"] = swapped
        Window.remove_widget(view)
    Window.add_widget(app.shell)

    figures = {
        "open_s": opened,
        "cards": cards,
        "card_widgets": widgets,
        "idle": idle,
        "idle_plain": plain["idle"],
        "scroll": scroll,
        "scroll_plain": plain["recycle"],
        "scroll_scrollview": plain["scrollview"],
        "filter": filtered,
        "filter_plain": plain["recycle_filter"],
        "filter_scrollview": plain["scrollview_filter"],
    }
    out.write_text(json.dumps(figures), encoding="utf-8")


def _next_frame(frames_shown: _Frames) -> Iterator[None]:
    """Ask for a frame and wait for it: when it was shown (``perf_counter``, s)."""
    from kivy.core.window import Window

    mark = len(frames_shown.times)
    Window.canvas.ask_update()  # the frame that shows it (the first after its widgets)
    yield
    yield
    return frames_shown.times[mark]


def _plain_list(kind: str, size: tuple[float, float], position: Any) -> tuple[Any, Any]:
    """Plain Kivy: a RecycleView or a ScrollView of Labels, and how to show titles in it."""
    from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
    from kivy.uix.label import Label  # type: ignore[import-untyped]
    from kivy.uix.recycleboxlayout import RecycleBoxLayout  # type: ignore[import-untyped]
    from kivy.uix.recycleview import RecycleView  # type: ignore[import-untyped]
    from kivy.uix.scrollview import ScrollView  # type: ignore[import-untyped]

    common = {"do_scroll_x": False, "size_hint": (None, None), "size": size, "pos": position}
    if kind == "recycle":
        recycle = RecycleView(viewclass="Label", **common)
        layout = RecycleBoxLayout(
            orientation="vertical", size_hint_y=None, spacing=8, default_size=(None, 56)
        )
        layout.default_size_hint = (1, None)
        layout.bind(minimum_height=layout.setter("height"))
        recycle.add_widget(layout)

        def show_recycled(titles: list[str]) -> None:
            recycle.data = [{"text": title} for title in titles]

        return recycle, show_recycled
    scroll = ScrollView(**common)
    items = BoxLayout(orientation="vertical", size_hint_y=None, spacing=8)
    items.bind(minimum_height=items.setter("height"))
    scroll.add_widget(items)

    def show_all(titles: list[str]) -> None:
        items.clear_widgets()
        for title in titles:
            items.add_widget(Label(text=title, size_hint_y=None, height=56))

    return scroll, show_all


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


def _idle(frames: int, frames_shown: _Frames) -> Iterator[None]:
    """Frames drawn with nothing changed: their costs (ms)."""
    from kivy.core.window import Window

    start = len(frames_shown.times)
    for _ in range(frames):
        Window.canvas.ask_update()
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
    """The board is drawn: each column's list holds its cards, and cards are in sight."""
    model = screen.model
    if model is None:
        return False
    wanted = sum(len(cards) for cards in model.columns.values())
    return wanted > 0 and _cards_shown_any(screen)


def _shows_filter(screen: Any) -> bool:
    """The model took the filter, and the columns show what it keeps."""
    model = screen.model
    typed = screen.ids.filter_input.text
    return bool((model.filter.text or "") == typed and _cards_shown_any(screen))


def _cards_shown_any(screen: Any) -> bool:
    """Every column's list holds the model's cards, and shows the first of them."""
    model = screen.model
    for column in screen._all_columns:
        cards = model.columns[column.status]
        data = column.ids.scroll.data
        if [item["task_id"] for item in data] != [card["id"] for card in cards]:
            return False
        if cards and column.get_root_window() is not None and not column.card_views():
            return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
