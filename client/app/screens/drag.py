"""Dragging a card to another column or place: the same for a finger and a mouse.

A press on a card selects it (as before). It becomes a drag when the pointer then travels
``START_DISTANCE`` from where it went down, or stays down ``HOLD_S`` (the card lifts under a
finger that hides it). A column whose cards overflow keeps Kivy's ScrollView rule: a quick
swipe (``scroll_distance`` within ``scroll_timeout``) scrolls it and never reaches the card,
so a finger scrolls a long column and lifts a card by resting on it first; a column whose
cards fit has nothing to scroll and hands the press to the card at once.

While dragging, a copy of the card follows the pointer above the board (a child of the
window, holding the touch), the card itself is dimmed, and a marker shows where it will
land; near the top or bottom of a long column the column scrolls. Releasing over a column
drops it there (``BoardViewModel.drop``); releasing outside every column, or Escape, puts
it back. Which column and index a point falls at is ``drop_target``, a plain function.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kivy.clock import Clock  # type: ignore[import-untyped]
from kivy.core.window import Window  # type: ignore[import-untyped]
from kivy.metrics import dp  # type: ignore[import-untyped]
from kivy.properties import StringProperty  # type: ignore[import-untyped]
from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
from kivy.uix.recycleview import RecycleView  # type: ignore[import-untyped]
from kivy.uix.widget import Widget  # type: ignore[import-untyped]

from client.app.viewmodels.board import ColumnArea, DropTarget, Rect, drop_line, drop_target

from .base import load_kv

HOLD_S = 0.45
"""A press held this long without moving lifts the card."""
START_DISTANCE_DP = 8
"""A press that travels this far (after the column let it go) drags the card."""
DIMMED = 0.35
EDGE_DP = 40
"""Dragging this near a long column's top or bottom scrolls it ..."""
SCROLL_DP_PER_S = 480
"""... at this speed."""
PRESS = "outpost.card_press"
"""A touch's ``ud`` key while it is a press on a card that may become a drag."""


class CardScroll(RecycleView):
    """A column's scroll view, which recycles its cards' widgets. While its cards fit there
    is nothing to scroll: a press goes straight to the card under it (a drag needs no wait),
    not after ``scroll_timeout``."""

    def on_touch_down(self, touch: Any) -> bool:
        wheel = "button" in touch.profile and str(touch.button).startswith("scroll")
        fits = self._viewport is None or self._viewport.height <= self.height
        if fits and not wheel and self.collide_point(*touch.pos):
            return bool(self.simulate_touch_down(touch))
        return bool(super().on_touch_down(touch))


class DragGhost(BoxLayout):
    """The floating copy of a card that follows the pointer; it holds the touch."""

    locator = StringProperty("")

    def __init__(self, drag: CardDrag, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drag = drag

    def on_touch_down(self, touch: Any) -> bool:
        return False  # only the touch it was handed

    def on_touch_move(self, touch: Any) -> bool:
        if touch.grab_current is not self:
            return False
        self.drag.moved(touch.pos)  # the ghost is the window's child: window coordinates
        return True

    def on_touch_up(self, touch: Any) -> bool:
        if touch.grab_current is not self:
            return False
        touch.ungrab(self)
        self.drag.released(touch.pos)
        return True


class DropMarker(Widget):
    """The line where the card will land; its locator says where: ``drop:doing:1``."""

    locator = StringProperty("")


class CardDrag:
    """One board's card drags.

    ``columns()``: the column widgets, each with ``status``, ``ids.scroll`` (its
    ``CardScroll``), ``ids.cards`` (its layout), ``card_views()`` (the card widgets in sight,
    with their ``task_id``: the column recycles them) and ``card_rects()`` (every card's task
    and window rectangle, out of sight too); ``copy(card)``: the content of the floating
    copy; ``dropped(task, target)``: what a drop does.
    """

    def __init__(
        self,
        columns: Callable[[], list[Widget]],
        copy: Callable[[Widget], Widget],
        dropped: Callable[[str, DropTarget], None],
    ) -> None:
        self._columns, self._copy, self._dropped = columns, copy, dropped
        self.task = ""
        """The task being dragged, or ""."""
        self._press: tuple[Widget, Any] | None = None
        self._pressed_task = ""
        """The task the pressed card showed: a card scrolled away shows another one."""
        self._hold: Any = None
        self._ghost: DragGhost | None = None
        self._marker: DropMarker | None = None
        self._offset = (0.0, 0.0)
        self._point = (0.0, 0.0)
        self._scrolling: Any = None

    @property
    def active(self) -> bool:
        return bool(self.task)

    # a press on a card (the card forwards its touch while it holds it)

    def pressed(self, card: Widget, touch: Any) -> bool:
        """A press on ``card`` that may become a drag; True if the card should hold it."""
        if self.active or self._press is not None or touch.time_end >= 0:
            return False  # one drag at a time; a tap the column hands over when it is over
        touch.grab(card)
        touch.ud[PRESS] = True
        self._press, self._pressed_task = (card, touch), card.task_id
        self._point = card.to_window(*touch.pos)
        wait = max(0.0, touch.time_start + HOLD_S - time.time())
        self._hold = Clock.schedule_once(lambda _dt: self._lift(), wait)
        if _travelled(touch) >= dp(START_DISTANCE_DP):  # moved sideways while the column waited
            self._lift()
        return True

    def press_moved(self, card: Widget, touch: Any) -> None:
        if self._press is None or self._press[1] is not touch:
            return
        self._point = card.to_window(*touch.pos)
        if _travelled(touch) >= dp(START_DISTANCE_DP):
            self._lift()

    def press_ended(self, touch: Any) -> None:
        """Released before it became a drag: a tap (the card was selected on the press)."""
        if not self.active and self._press is not None and self._press[1] is touch:
            self._forget_press()

    # the drag

    def moved(self, point: tuple[float, float]) -> None:
        self._point = (float(point[0]), float(point[1]))
        if self._ghost is None or self._marker is None:
            return
        x, y = self._point
        self._ghost.pos = (x - self._offset[0], y - self._offset[1])
        areas = {area.status: area for area in self._areas()}
        target = drop_target(areas.values(), x, y, self.task)
        self._ghost.opacity = 1 if target else 0.6  # dropping here would put it back
        self._show_marker(target, areas)

    def released(self, point: tuple[float, float]) -> None:
        if not self.active:
            return
        task = self.task
        target = drop_target(self._areas(), float(point[0]), float(point[1]), task)
        self._finish()
        if target is not None:
            self._dropped(task, target)

    def cancel(self) -> None:
        """Escape, or the board went away: the card stays where it was."""
        if self._ghost is not None and self._press is not None:
            self._press[1].ungrab(self._ghost)
        self._finish()

    def dim(self, card: Widget) -> None:
        """A card drawn again while it is dragged stays dimmed."""
        card.opacity = DIMMED if self.active and card.task_id == self.task else 1

    # inside

    def _lift(self) -> None:
        if self._press is None or self.active:
            return
        card, touch = self._press
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if card.get_root_window() is None or card.task_id != self._pressed_task:
            # redrawn, or scrolled away and showing another card meanwhile: nothing to lift
            self._forget_press()
            return
        touch.ungrab(card)
        self.task = card.task_id
        left, bottom = card.to_window(card.x, card.y)
        self._offset = (self._point[0] - left, self._point[1] - bottom)
        ghost = DragGhost(self, locator=f"dragging:{card.title}", size=card.size)
        ghost.add_widget(self._copy(card))
        self._ghost = ghost
        self._marker = DropMarker(opacity=0)
        Window.add_widget(self._marker)
        Window.add_widget(ghost)
        touch.grab(ghost)
        card.opacity = DIMMED
        self._scrolling = Clock.schedule_interval(self._scroll_near_edge, 1 / 30)
        self.moved(self._point)

    def _finish(self) -> None:
        for widget in (self._ghost, self._marker):
            if widget is not None and widget.parent is not None:
                widget.parent.remove_widget(widget)
        if self._scrolling is not None:
            self._scrolling.cancel()
        self._ghost = self._marker = self._scrolling = None
        task, self.task = self.task, ""
        for column in self._columns():
            for card in column.card_views():
                if card.task_id == task:
                    card.opacity = 1
        self._forget_press()

    def _forget_press(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
        if self._press is not None:
            self._press[1].ud.pop(PRESS, None)
        self._press = self._hold = None

    def _areas(self) -> list[ColumnArea]:
        return [
            ColumnArea(
                column.status,
                _window_rect(column),
                column.card_rects(),
            )
            for column in self._columns()
            if column.get_root_window() is not None and column.width > 0 and column.height > 0
        ]

    def _show_marker(self, target: DropTarget | None, areas: dict[str, ColumnArea]) -> None:
        marker = self._marker
        assert marker is not None
        if target is None:
            marker.opacity, marker.locator = 0, ""
            return
        column = next(c for c in self._columns() if c.status == target.status)
        area = areas[target.status]
        scroll = column.ids.scroll
        gap = column.ids.cards.spacing
        empty = scroll.to_window(scroll.x, scroll.top)[1] - gap / 2
        line = drop_line(area, target.index, dragging=self.task, gap=gap, empty=empty)
        left, _, width, _ = area.rect
        inset = column.padding[0] if column.padding else 0
        marker.size = (width - 2 * inset, dp(4))
        marker.pos = (left + inset, line - dp(2))
        marker.opacity = 1
        marker.locator = f"drop:{target.status}:{target.index}"

    def _scroll_near_edge(self, dt: float) -> None:
        """A long column scrolls while the card is held near its top or bottom."""
        x, y = self._point
        for column in self._columns():
            scroll = column.ids.scroll
            viewport = scroll._viewport
            if viewport is None or viewport.height <= scroll.height:
                continue
            left, bottom, width, height = _window_rect(scroll)
            if not left <= x < left + width:
                continue
            edge = dp(EDGE_DP)
            if bottom + height - edge <= y < bottom + height:
                step = 1.0
            elif bottom <= y < bottom + edge:
                step = -1.0
            else:
                continue
            distance = step * dp(SCROLL_DP_PER_S) * dt / (viewport.height - scroll.height)
            scroll.scroll_y = max(0.0, min(1.0, scroll.scroll_y + distance))
            self.moved(self._point)  # the cards moved under the pointer


def _travelled(touch: Any) -> float:
    return float(((touch.x - touch.ox) ** 2 + (touch.y - touch.oy) ** 2) ** 0.5)


def _window_rect(widget: Widget) -> Rect:
    left, bottom = widget.to_window(widget.x, widget.y)
    return (float(left), float(bottom), float(widget.width), float(widget.height))


load_kv(__file__)
