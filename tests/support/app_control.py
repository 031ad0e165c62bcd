"""The app under test's control: lets an end-to-end test drive the running app as a user
would. It lives here, under tests/, and the shipped app knows nothing of it: the wrapper
``tests/support/app_under_test.py`` installs it once the app is built.

``install(path, ...)`` listens on a Unix socket for JSON lines, one command each, runs every
command on the UI thread (through ``on_ui``, the app's one adapter) and answers one JSON
line. Commands act through Kivy's own input paths, never through the view models:

- ``{"op": "tap", "target": NAME, "double": bool}``: a mouse click (touch down and up) at
  the widget's centre, through the event loop, as the mouse provider makes it (a double
  click: two, the second marked as Kivy's double-tap recognizer marks it);
- ``{"op": "type", "target": NAME, "text": ..., "replace": bool, "enter": bool}``: tap the
  field, Ctrl+A if replacing, the text as keyboard text input, then Enter;
- ``{"op": "drag", "target": NAME, "to": NAME, "at": [fx, fy], "hold": s, "pointer":
  "mouse" | "finger", "before_release": "escape", "screenshot": path}``: press at the
  target's centre, hold, move in steps to the point ``at`` (fractions of its width and height
  from its bottom left; default its centre) of ``to`` (or to ``"to_window": [x, y]``), then
  release (pressing Escape first if asked). It answers what showed just before the release:
  ``{"during": [locators of the dragged copy and the drop marker], "screenshot": ...}``;
- ``{"op": "key", "key": "n", "modifiers": ["ctrl"]}``: a key press on the window;
- ``{"op": "scroll", "target": NAME, "to": y}``: a scroll view moved as its scroll bar
  moves it, to ``y`` (1 its top, 0 its bottom);
- ``{"op": "query"}``: what the window shows, read from the widget tree;
- ``{"op": "screenshot", "path": ...}``: the window's pixels as a PNG, and the layout of
  that same frame: the screen, and each shown row or named widget's rectangle in window
  pixels and its text (``_layout``; a drag's ``screenshot`` answers the same);
- ``{"op": "audit"}``: the look, read from the whole widget tree (the open picker's sheet
  too): every shown touch target (button, toggle, tab, spinner and its options, picker
  field, text input) smaller than 48 dp either way, or whose text is drawn cut short or
  wider than itself, every
  widget still drawn with a stock Kivy background image, and the scheme on screen;
- ``{"op": "quit"}``.

A NAME is a kv id (``quick_add_input``), a row's locator (``card:Buy milk``), a locator and
an id inside that row (``board:Launch/open``), ``option:<text>`` for a spinner's or a
picker's choice, or ``day:YYYY-MM-DD`` for a day of the date picker.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import faulthandler
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socketserver
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kivy.base import EventLoop  # type: ignore[import-untyped]
from kivy.clock import Clock  # type: ignore[import-untyped]
from kivy.core.window import Keyboard, Window  # type: ignore[import-untyped]
from kivy.input.motionevent import MotionEvent  # type: ignore[import-untyped]
from kivy.input.providers.mouse import MouseMotionEvent  # type: ignore[import-untyped]
from kivy.uix.scrollview import ScrollView  # type: ignore[import-untyped]
from kivy.uix.spinner import SpinnerOption  # type: ignore[import-untyped]
from kivy.uix.stencilview import StencilView  # type: ignore[import-untyped]
from kivy.uix.widget import Widget  # type: ignore[import-untyped]

from client.app.ui_thread import on_ui

ANSWER_TIMEOUT_S = 60
SETTLE_S = 0.3
"""After a tap: a ScrollView hands a quick tap to its child 0.2 s after the touch ends."""

log = logging.getLogger(__name__)
_touch_ids = itertools.count(1)
_MARKUP = re.compile(r"\[/?(?:b|i|u|s|color|size|font|sub|sup|ref|anchor)[^\]]*\]")


def install(path: str, root: Callable[[], Widget], quit_app: Callable[[], None]) -> None:
    """Listen on the Unix socket ``path`` (on the UI thread, once the app is built)."""
    Path(path).unlink(missing_ok=True)
    if sys.__stderr__ is not None:  # a stuck test asks for the stacks (Kivy wraps stderr)
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    driver = _Driver(root, quit_app)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                answer = driver.answer(json.loads(line))
                self.wfile.write(json.dumps(answer).encode() + b"\n")
                self.wfile.flush()

    server = socketserver.ThreadingUnixStreamServer(path, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="outpost-test-control", daemon=True).start()
    log.warning("TEST CONTROL listening on %s", path)


class _Driver:
    def __init__(self, root: Callable[[], Widget], quit_app: Callable[[], None]) -> None:
        self._root = root
        self._quit = quit_app

    def answer(self, command: dict[str, Any]) -> dict[str, Any]:
        """On the socket's thread: run the command on the UI thread and wait for it."""
        done: Future[Any] = Future()

        def run() -> None:
            try:
                result = self._execute(command)
            except Exception as exc:
                log.warning("control: %s failed", command.get("op"), exc_info=True)
                done.set_exception(exc)
                return
            if isinstance(result, Future):
                result.add_done_callback(lambda later: _copy(later, done))
            else:
                done.set_result(result)

        on_ui(run)
        try:
            return {"ok": True, "result": done.result(ANSWER_TIMEOUT_S)}
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _execute(self, command: dict[str, Any]) -> Any:
        op = command["op"]
        if op == "tap":
            return self._tap(command["target"], double=bool(command.get("double")))
        if op == "type":
            return self._type(command)
        if op == "drag":
            return self._drag(command)
        if op == "key":
            _press(command["key"], command.get("modifiers", []))
            return _after_frames(None)
        if op == "scroll":
            view = self._find(command["target"])
            if not isinstance(view, ScrollView):
                raise RuntimeError(f"{command['target']} is no scroll view")
            view.scroll_y = float(command["to"])
            return _after_frames(None)
        if op == "query":
            return self._query()
        if op == "audit":
            return _audit(self._root())
        if op == "screenshot":
            return _after_frames(None, then=lambda: _screenshot(command["path"], self._root()))
        if op == "quit":
            Clock.schedule_once(lambda _dt: self._quit(), 0)
            return None
        raise ValueError(f"unknown op {op!r}")

    # acting

    def _tap(self, name: str, *, double: bool = False) -> Future[None]:
        widget = self._find(name)
        if widget.disabled:
            raise RuntimeError(f"{name} is disabled: a user could not tap it")
        _scroll_into_view(widget)
        # found again after the layout caught up: a sync may have redrawn the list
        return _after_frames(
            None, then=lambda: _click(self._find(name), double=double), settle=SETTLE_S
        )

    def _type(self, command: dict[str, Any]) -> Future[None]:
        done: Future[None] = Future()

        def keys(tapped: Future[None]) -> None:
            try:
                tapped.result()
                if not self._find(command["target"]).focus:
                    raise RuntimeError(f"{command['target']} did not take the focus")
                if command.get("replace", True):
                    _press("a", ["ctrl"])  # select all: the text typed replaces it
                else:
                    _press("end", [])
                Window.dispatch("on_textinput", command["text"])
                if command.get("enter"):
                    _press("enter", [])
            except Exception as exc:
                log.warning("control: %s failed", command.get("op"), exc_info=True)
                done.set_exception(exc)
                return
            _after_frames(None).add_done_callback(lambda settled: _copy(settled, done))

        self._tap(command["target"]).add_done_callback(keys)  # completed on the UI thread
        return done

    def _drag(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        """Down, hold, move a frame at a time, (Escape,) up: each step on a later frame."""
        done: Future[dict[str, Any]] = Future()
        source = self._find(command["target"])
        _scroll_into_view(source)
        steps = max(1, int(command.get("steps", 12)))
        finger = command.get("pointer", "mouse") == "finger"
        state: dict[str, Any] = {}

        def fail(exc: Exception) -> None:
            touch = state.get("touch")
            if touch is not None and touch.time_end < 0:  # never leave a touch down
                _pointer(touch, "end", *state["start"])
            if not done.done():
                done.set_exception(exc)

        def guarded(step: Callable[[], None]) -> Callable[[float], None]:
            def run(_dt: float) -> None:
                try:
                    step()
                except Exception as exc:
                    fail(exc)

            return run

        def press() -> None:
            start = _window_point(self._find(command["target"]), (0.5, 0.5))
            state["start"] = start
            state["touch"] = _pointer(None, "begin", *start, finger=finger)
            Clock.schedule_once(guarded(aim), float(command.get("hold", 0.5)))

        def aim() -> None:
            if "to_window" in command:
                state["end"] = tuple(float(v) for v in command["to_window"])
            else:
                at = command.get("at", [0.5, 0.5])
                state["end"] = _window_point(self._find(command["to"]), (at[0], at[1]))
            move(1)

        def move(step: int) -> None:
            (x0, y0), (x1, y1) = state["start"], state["end"]
            _pointer(
                state["touch"],
                "update",
                x0 + (x1 - x0) * step / steps,
                y0 + (y1 - y0) * step / steps,
            )
            if step < steps:
                Clock.schedule_once(guarded(lambda: move(step + 1)), 1 / 60)
            else:
                _after_frames(None, then=look).add_done_callback(release)

        def look() -> dict[str, Any]:
            seen: dict[str, Any] = {"during": [w.locator for w in self._visible() if _dragging(w)]}
            if command.get("screenshot"):
                seen["screenshot"] = _screenshot(command["screenshot"], self._root())
            if command.get("before_release") == "escape":
                _press("escape", [])
            return seen

        def release(looked: Future[Any]) -> None:
            try:
                seen = looked.result()
                _pointer(state["touch"], "end", *state["end"])
            except Exception as exc:
                fail(exc)
                return
            _after_frames(seen, settle=SETTLE_S).add_done_callback(lambda s: _copy(s, done))

        def pressed(started: Future[Any]) -> None:
            if started.exception() is not None:
                fail(Exception(started.exception()))

        _after_frames(None, then=press).add_done_callback(pressed)
        return done

    # finding

    def _visible(self) -> Iterator[Widget]:
        for top in reversed(Window.children):  # the root, then dropdowns and popups
            yield from _walk(top)

    def _find(self, name: str) -> Widget:
        locator, _, inner = name.partition("/")
        visible = list(self._visible())
        found: list[Widget] = []
        for widget in visible:
            if locator.startswith("option:") and isinstance(widget, SpinnerOption):
                if widget.text == locator.removeprefix("option:"):
                    found.append(widget)
            elif getattr(widget, "locator", None) == locator:
                found.append(widget.ids[inner] if inner else widget)
            elif not inner and locator in getattr(widget, "ids", {}):
                found.append(widget.ids[locator])
        shown = {id(widget) for widget in visible}
        real = (getattr(w, "__self__", w) for w in found)  # kv ids are weak proxies
        unique = [w for w in dict.fromkeys(real) if id(w) in shown and _shown(w)]
        if len(unique) != 1:
            raise LookupError(f"{len(unique)} visible widgets are named {name!r}")
        return unique[0]

    # reading

    def _query(self) -> dict[str, Any]:
        root = self._root()
        texts: dict[str, str] = {}
        rows: dict[str, list[str]] = {}
        for widget in self._visible():
            locator = getattr(widget, "locator", "")
            if locator and not locator.startswith("column:"):
                if _shown(widget):
                    rows[locator] = [_plain(w) for w in _walk(widget) if _is_label(w)]
                continue  # a row's own ids repeat in every row: its texts are above
            for name, child in getattr(widget, "ids", {}).items():
                if hasattr(child, "text") and _shown(child):
                    texts.setdefault(name, _plain(child))
        return {
            "screen": root.ids.screens.current,
            "window": list(Window.size),
            "texts": texts,
            "columns": self._columns(),
            "rows": rows,
            "focus": next((n for n, w in _named(root) if getattr(w, "focus", False)), None),
        }

    def _columns(self) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for widget in self._visible():
            if getattr(widget, "locator", "").startswith("column:"):
                cards = widget.card_views()  # in sight, top to bottom: the column recycles
                columns[widget.status] = {
                    "title": widget.ids["column_title"].text,
                    "empty": widget.ids["empty"].text,
                    "cards": [_card(card) for card in cards],
                }
        return columns


def _card(card: Widget) -> dict[str, Any]:
    ids = card.ids
    return {
        "title": ids["card_title"].text,
        "meta": _plain(ids["card_meta"]),
        "labels": "  ".join(f"#{chip.text}" for chip in reversed(ids["card_labels"].children)),
        "selected": bool(card.selected),
    }


TOUCH_DP = 48
STOCK_BACKGROUNDS = (
    "background",  # a ModalView's (the pickers' sheets)
    "background_image",  # a Bubble's (a text input's copy and paste)
    "background_normal",
    "background_down",
    "background_active",
    "background_disabled_normal",
    "background_disabled_down",
)


def _audit(root: Widget) -> dict[str, Any]:
    """What a designed look must hold (issue 16): no touch target under 48 dp, no stock
    background image left anywhere in the tree (shown or not)."""
    from kivy.metrics import dp  # type: ignore[import-untyped]
    from kivy.uix.behaviors import ButtonBehavior  # type: ignore[import-untyped]
    from kivy.uix.textinput import TextInput  # type: ignore[import-untyped]

    from client.app.screens.theme import theme

    small: list[str] = []
    stock: list[str] = []
    cut: list[str] = []
    targets = 0
    for top in reversed(Window.children):
        for widget in top.walk(restrict=True):
            name = _name_of(widget)
            for attribute in STOCK_BACKGROUNDS:
                if str(getattr(widget, attribute, "")).startswith("atlas://"):
                    stock.append(f"{name}.{attribute}")
            touchable = isinstance(widget, (ButtonBehavior, TextInput))
            if not touchable or not all(_shown(w) for w in _line_of(widget)):
                continue
            targets += 1
            if widget.width < dp(TOUCH_DP) - 0.5 or widget.height < dp(TOUCH_DP) - 0.5:
                small.append(f"{name}: {widget.width:.0f}x{widget.height:.0f}")
            if getattr(widget, "is_shortened", False) or _overflows(widget):  # "Any la…"
                cut.append(f"{name}: {widget.text!r} in {widget.width:.0f}")
    return {"targets": targets, "small": small, "stock": stock, "cut": cut, "scheme": theme.scheme}


def _overflows(widget: Widget) -> bool:
    """A button's one line of text (with its padding) wider than the button: drawn past
    its edges, under its neighbours."""
    text_size = getattr(widget, "text_size", (0, 0))
    unwrapped = text_size[0] is None
    return bool(
        unwrapped and getattr(widget, "text", "") and widget.texture_size[0] > widget.width + 1
    )


def _line_of(widget: Widget) -> Iterator[Widget]:
    """The widget and every parent up to the window."""
    while widget is not None and widget is not Window:
        yield widget
        widget = widget.parent


def _name_of(widget: Widget) -> str:
    """A widget as a failure names it: its kv id (or text) and class."""
    parent = widget.parent
    while parent is not None and parent is not Window:
        for name, child in getattr(parent, "ids", {}).items():
            if getattr(child, "__self__", child) is widget:
                return f"{name} ({type(widget).__name__})"
        parent = parent.parent
    text = getattr(widget, "text", "")
    return f"{type(widget).__name__} {text!r}" if text else type(widget).__name__


def _walk(widget: Widget) -> Iterator[Widget]:
    """The widget and its visible descendants in the order they were added (top to
    bottom); a hidden widget (opacity 0) hides all it holds."""
    if widget.opacity <= 0:
        return
    yield widget
    for child in reversed(widget.children):
        yield from _walk(child)


def _named(root: Widget) -> Iterator[tuple[str, Widget]]:
    for widget in _walk(root):
        yield from getattr(widget, "ids", {}).items()


def _shown(widget: Widget) -> bool:
    return bool(widget.opacity > 0 and widget.width > 0 and widget.height > 0)


def _is_label(widget: Widget) -> bool:
    return hasattr(widget, "texture_size") and bool(getattr(widget, "text", "")) and _shown(widget)


def _plain(widget: Widget) -> str:
    text = str(widget.text)
    return _MARKUP.sub("", text) if getattr(widget, "markup", False) else text


def _scroll_into_view(widget: Widget) -> None:
    """Scroll, as a user would, where the widget is out of its scroll view's sight."""
    parent = widget.parent
    while parent is not None and parent is not Window:
        if isinstance(parent, ScrollView) and not _inside(widget, parent):
            parent.scroll_to(widget, animate=False)
        parent = parent.parent


def _inside(widget: Widget, view: Widget) -> bool:
    left, bottom = widget.to_window(widget.x, widget.y)
    right, top = widget.to_window(widget.right, widget.top)
    view_left, view_bottom = view.to_window(view.x, view.y)
    view_right, view_top = view.to_window(view.right, view.top)
    return bool(
        view_left <= left and right <= view_right and view_bottom <= bottom and top <= view_top
    )


def _click(widget: Widget, *, double: bool = False) -> None:
    """A left click at the widget's centre, through the event loop like the mouse's."""
    x, y = widget.to_window(*widget.center)
    width, height = Window.size
    if not (0 <= x < width and 0 <= y < height):
        raise RuntimeError(f"{type(widget).__name__} is outside the window at {(x, y)}")
    position = [x / max(1, width - 1), y / max(1, height - 1), "left"]
    for second in (False, True) if double else (False,):
        touch = MouseMotionEvent(
            "mouse", f"test{next(_touch_ids)}", position, is_touch=True, type_id="touch"
        )
        touch.is_double_tap = second
        EventLoop.post_dispatch_input("begin", touch)
        touch.update_time_end()
        EventLoop.post_dispatch_input("end", touch)


class _Finger(MotionEvent):
    """A touch of a finger, as a touch screen's provider makes it: a position, no button."""

    def depack(self, args: list[float]) -> None:
        self.sx, self.sy = args[:2]
        self.profile = ["pos"]
        super().depack(args)


def _window_point(widget: Widget, at: tuple[float, float]) -> tuple[float, float]:
    x, y = widget.to_window(widget.x + widget.width * at[0], widget.y + widget.height * at[1])
    return float(x), float(y)


def _pointer(touch: Any, kind: str, x: float, y: float, *, finger: bool = False) -> Any:
    """A touch down (``touch`` None: a new one), moved, or up at a window point, through the
    event loop as an input provider posts it."""
    width, height = Window.size
    if not (0 <= x < width and 0 <= y < height):
        raise RuntimeError(f"a pointer cannot be at {(x, y)}: outside the window")
    position = [x / max(1, width - 1), y / max(1, height - 1)]
    if touch is None:
        ident = f"test{next(_touch_ids)}"
        if finger:
            touch = _Finger("test", ident, position, is_touch=True, type_id="touch")
        else:
            touch = MouseMotionEvent(
                "mouse", ident, [*position, "left"], is_touch=True, type_id="touch"
            )
    else:
        touch.move(position if isinstance(touch, _Finger) else [*position, "left"])
        if kind == "end":
            touch.update_time_end()
    EventLoop.post_dispatch_input(kind, touch)
    return touch


def _dragging(widget: Widget) -> bool:
    locator = str(getattr(widget, "locator", ""))
    return locator.startswith(("dragging:", "drop:")) and _shown(widget)


def _press(key: str, modifiers: list[str]) -> None:
    """A key down and up on the window, as the SDL2 window dispatches them."""
    code = Keyboard.keycodes[key] if len(key) > 1 else ord(key)
    codepoint = key if len(key) == 1 else None
    Window.dispatch("on_key_down", code, 0, codepoint, modifiers)
    Window.dispatch("on_key_up", code, 0)


def _screenshot(path: str, root: Widget) -> dict[str, Any]:
    """Draw the frame now, read the window's pixels back (Kivy names its own file), and
    read the layout of that same frame from the widget tree."""
    Window.dispatch("on_draw")
    layout = _layout(root)  # nothing runs between the draw and this: the same frame
    with tempfile.TemporaryDirectory() as folder:
        written = Window.screenshot(name=os.path.join(folder, "shot.png"))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, path)
    return {"path": path, "size": list(Window.size), "layout": layout}


def _layout(root: Widget) -> dict[str, Any]:
    """What the window shows, as regions: every shown row by its locator (``card:Milk``),
    and every shown named widget by its kv id (inside a row, ``card:Milk/card_title``).
    Each region has its rectangle in window pixels, ``[left, top, width, height]`` counted
    from the window's top left corner as in the picture (clipped to the scroll views it sits
    in; a widget scrolled out of sight is left out), and its text: its own, or else the
    texts of the labels it holds, one a line."""
    visible = [widget for top in reversed(Window.children) for widget in _walk(top)]
    shown = {id(widget) for widget in visible}
    regions: dict[str, dict[str, Any]] = {}

    def add(name: str, widget: Widget) -> None:
        rect = _window_rect(widget)
        if name in regions or rect is None:
            return
        if hasattr(widget, "text"):
            text = _plain(widget)
        else:
            text = "\n".join(_plain(w) for w in _walk(widget) if _is_label(w))
        regions[name] = {"rect": rect, "text": text}

    for widget in visible:
        locator = str(getattr(widget, "locator", ""))
        if locator and _shown(widget):
            add(locator, widget)
        for name, child in getattr(widget, "ids", {}).items():
            child = getattr(child, "__self__", child)  # kv ids are weak proxies
            if id(child) in shown and _shown(child):
                add(f"{locator}/{name}" if locator else name, child)
    return {
        "screen": root.ids.screens.current,
        "window": list(Window.size),
        "clearcolor": list(Window.clearcolor),
        "regions": regions,
    }


def _window_rect(widget: Widget) -> list[int] | None:
    """The widget's rectangle in window pixels from the top left, as far as the stencils
    (scroll views) it sits in let it show; None where nothing of it shows."""
    left, bottom = widget.to_window(widget.x, widget.y)
    right, top = widget.to_window(widget.right, widget.top)
    parent = widget.parent
    while isinstance(parent, Widget):
        if isinstance(parent, StencilView):
            clip_left, clip_bottom = parent.to_window(parent.x, parent.y)
            clip_right, clip_top = parent.to_window(parent.right, parent.top)
            left, bottom = max(left, clip_left), max(bottom, clip_bottom)
            right, top = min(right, clip_right), min(top, clip_top)
        parent = parent.parent
    if right <= left or top <= bottom:
        return None
    height = Window.size[1]
    x0, x1, y0, y1 = (round(v) for v in (left, right, height - top, height - bottom))
    return [x0, y0, x1 - x0, y1 - y0]


def _after_frames(
    value: Any, *, then: Callable[[], Any] | None = None, settle: float = 0.0
) -> Future[Any]:
    """Let the layout catch up (two frames), run ``then``, wait ``settle``, answer."""
    done: Future[Any] = Future()

    def finish(_dt: float, result: Any) -> None:
        done.set_result(result)

    def step(_dt: float) -> None:
        try:
            result = then() if then is not None else value
        except Exception as exc:
            done.set_exception(exc)
            return
        Clock.schedule_once(lambda dt: finish(dt, result), settle)

    Clock.schedule_once(lambda _dt: Clock.schedule_once(step, 0), 0)
    return done


def _copy(source: Future[Any], target: Future[Any]) -> None:
    if source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
