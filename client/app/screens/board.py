"""One board: three columns of cards, quick add, moves by dragging (``drag.py``), buttons
or keys, filters, and the deleted tasks to restore."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

from kivy.core.text import Label as CoreLabel  # type: ignore[import-untyped]
from kivy.metrics import dp, sp  # type: ignore[import-untyped]
from kivy.properties import (  # type: ignore[import-untyped]
    BooleanProperty,
    ListProperty,
    OptionProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
from kivy.uix.gridlayout import GridLayout  # type: ignore[import-untyped]
from kivy.uix.label import Label  # type: ignore[import-untyped]
from kivy.uix.recycleview.views import RecycleDataViewBehavior  # type: ignore[import-untyped]
from kivy.uix.togglebutton import ToggleButton  # type: ignore[import-untyped]

from client.app.viewmodels import BoardViewModel, Card
from client.app.viewmodels.board import DropTarget, Rect

from ..ui_thread import ui_callback
from .base import AppScreen, load_kv
from .common import Chip, FoldingBar, Row  # noqa: F401  (FoldingBar: kv)
from .drag import CardDrag, CardScroll
from .theme import theme

ANY_LABEL = "Any label"
ANYONE = "Anyone"
MOVES = {"left": "move_left", "right": "move_right", "up": "move_up", "down": "move_down"}
STATUSES = ("todo", "doing", "done")
SWIPE_DP = 64
"""How far (dp) a finger must travel sideways, more than it went up or down, to swipe."""
HEIGHTS_KEPT = 20_000
"""Card heights measured and kept (``CardList``): past this many they are measured again."""
_MARKUP = re.compile(r"\[/?[a-z]+[^\]]*\]")


class CardView(RecycleDataViewBehavior, Row):
    """A card: its title, who and when, priority and labels. Tap selects, double tap opens,
    press and move (or hold) drags it.

    A column's ``CardList`` recycles it: only the cards in sight exist as widgets, and one
    that scrolls out of sight shows another card next (``refresh_view_attrs`` sets every
    field from the card's data, its chips included). Its height follows its content at its
    width (``fit``), measured at once, so the list lays it out right in the same frame."""

    task_id = StringProperty("")
    title = StringProperty("")
    meta = StringProperty("")
    labels = ListProperty([])
    """Its labels, each shown as a coloured chip (``card_labels``)."""
    overdue = BooleanProperty(False)
    on_choose: Callable[[str, bool], None] | None = None
    drag: CardDrag | None = None

    def __init__(self, **kwargs: Any) -> None:
        self._spare_chips: list[Chip] = []
        self._fitted: tuple[Any, ...] | None = None
        self._fitted_height = 0.0
        super().__init__(**kwargs)

    def on_labels(self, *_args: Any) -> None:
        chips = self.ids.get("card_labels")
        if chips is None:
            return  # set before the kv rule made the card: on_kv_post draws them
        shown = list(reversed(chips.children))  # children are last-added first
        for chip, label in zip(shown, self.labels, strict=False):
            chip.text = label
        for chip in shown[len(self.labels) :]:
            chips.remove_widget(chip)
            self._spare_chips.append(chip)  # kept: a chip stays bound to the theme
        for label in self.labels[len(shown) :]:
            chip = self._spare_chips.pop() if self._spare_chips else Chip()
            chip.text = label
            chips.add_widget(chip)

    def on_kv_post(self, _base: Any) -> None:
        self.on_labels()

    def refresh_view_attrs(self, rv: Any, index: int, data: dict[str, Any]) -> None:
        """Another card in this widget (or the same one again): every field from ``data``."""
        self.on_choose, self.drag = rv.choose, rv.drag
        super().refresh_view_attrs(rv, index, data)
        self.selected = rv.is_selected(self.task_id)
        if self.drag is not None:
            self.drag.dim(self)

    def refresh_view_layout(self, rv: Any, index: int, layout: Any, viewport: Any) -> None:
        super().refresh_view_layout(rv, index, layout, viewport)
        self.fit()
        rv.remember_height(self)

    def fit(self) -> None:
        """As high as its content at its width, now: its labels drawn at once (not a frame
        later), so that the list places the cards below it right in this frame."""
        if self.width < dp(48):
            return  # not laid out yet: nothing to measure against
        key = (self.title, self.meta, tuple(self.labels), self.width)
        if key == self._fitted:
            self.height = self._fitted_height
            return
        ids = self.ids
        left, top, right, bottom = self.padding
        inner = max(1.0, self.width - left - right)
        for note in (ids.card_title, ids.card_meta):
            note.text_size = (inner, None)
            _draw_now(note)
        chips = ids.card_labels
        for chip in chips.children:
            _draw_now(chip)
        chips.width = inner
        chips.do_layout()
        height = top + bottom + self.spacing * 2
        height += ids.card_title.height + ids.card_meta.height + chips.height
        self._fitted, self._fitted_height = key, height
        self.height = height

    def on_touch_down(self, touch: Any) -> bool:
        # where the touch went down: a column hands a press over after it waited, maybe
        # after the pointer already left the card sideways
        if self.on_choose is None or not self.collide_point(touch.ox, touch.oy):
            return bool(super().on_touch_down(touch))
        self.on_choose(self.task_id, bool(touch.is_double_tap))
        if self.drag is not None and not touch.is_double_tap:
            self.drag.pressed(self, touch)  # holds the touch until it is a drag or a tap
        return True

    def on_touch_move(self, touch: Any) -> bool:
        if touch.grab_current is self and self.drag is not None:
            self.drag.press_moved(self, touch)
            return True
        return bool(super().on_touch_move(touch))

    def on_touch_up(self, touch: Any) -> bool:
        if touch.grab_current is self:
            touch.ungrab(self)
            if self.drag is not None:
                self.drag.press_ended(touch)
            return True
        return bool(super().on_touch_up(touch))


def _draw_now(label: Label) -> None:
    """Draw a label's text now (for its size), not before the next frame as it would."""
    label.texture_update()
    label._trigger_texture.cancel()  # drawn: no need to draw it again


@functools.cache
def _text_metrics() -> tuple[float, float, float]:
    """A title's average character width and line height, and a meta line's height (px)."""
    sample = "Write the announcement for the launch of 1,000 cards"
    width, title_line = CoreLabel(text=sample, font_size=sp(15), bold=True).render()
    meta_line = CoreLabel(text=sample, font_size=sp(13)).render()[1]
    return width / len(sample), float(title_line), float(meta_line)


def estimate_height(item: dict[str, Any], width: float) -> float:
    """A card's height before it was ever shown at this width (``CardView.fit`` measures it
    when it comes into sight): its title's lines from its length, a meta line, the chips."""
    return _estimate(len(item["title"]), item["meta"], bool(item["labels"]), width)


@functools.lru_cache(maxsize=4096)
def _estimate(title_length: int, meta: str, labels: bool, width: float) -> float:
    char, title_line, meta_line = _text_metrics()
    inner = max(dp(48), width - 2 * dp(12))
    lines = max(1, math.ceil(title_length * char / inner))
    height = 2 * dp(8) + 2 * dp(4) + lines * title_line
    meta = _MARKUP.sub("", meta)
    if meta:
        height += max(1, math.ceil(len(meta) * char * 13 / 15 / inner)) * meta_line
    if labels:
        height += dp(24) + dp(4)  # a row of chips, and the stack's spacing below it
    return float(height)


class CardList(CardScroll):
    """A column's cards as a ``RecycleView``: its ``data`` is one dict per card (the
    ``CardView``'s fields and its height), and only the cards in sight exist as widgets,
    laid out by a ``RecycleBoxLayout`` (``ids.cards``). A filter or an edit sets the data
    again: no widget is made or dropped per card.

    A card's height is known once it was shown at the column's width (kept here, by the
    card's content); before that it is estimated (``estimate_height``)."""

    choose: Callable[[str, bool], None] | None = None
    drag: CardDrag | None = None
    is_selected: Callable[[str], bool] = staticmethod(lambda _task: False)

    def __init__(self, **kwargs: Any) -> None:
        self._heights: dict[tuple[Any, ...], float] = {}
        super().__init__(**kwargs)

    def show(self, cards: list[Card]) -> None:
        """These cards, top to bottom."""
        self.data = [self._sized(_card_item(card)) for card in cards]

    def remember_height(self, view: CardView) -> None:
        if len(self._heights) > HEIGHTS_KEPT:
            self._heights.clear()
        self._heights[_height_key(view.title, view.meta, view.labels, view.width)] = view.height

    def on_width(self, *_args: Any) -> None:
        """Another width: the heights of the cards not in sight are those at this width."""
        if self.data:
            self.data = [self._sized(item) for item in self.data]

    def views(self) -> list[CardView]:
        """The cards in sight, top to bottom."""
        layout = self.layout_manager
        shown = [] if layout is None else list(layout.children)
        return sorted(shown, key=lambda view: -view.y)

    def card_rects(self) -> tuple[tuple[str, Rect], ...]:
        """Every card's task and rectangle in the window, top to bottom, the ones scrolled
        out of sight too (from the layout: they have no widget)."""
        layout = self.layout_manager
        opts = [] if layout is None else layout.view_opts
        if len(opts) != len(self.data) or any(o is None or o["pos"] is None for o in opts):
            return tuple((v.task_id, _window_rect(v)) for v in self.views())  # not laid out
        left, bottom = layout.to_window(0, 0)  # the layout only moves (scrolls): no scale
        return tuple(
            (item["task_id"], (left + o["pos"][0], bottom + o["pos"][1], *map(float, o["size"])))
            for item, o in zip(self.data, opts, strict=True)
        )

    def _sized(self, item: dict[str, Any]) -> dict[str, Any]:
        width = self.width
        known = self._heights.get(_height_key(item["title"], item["meta"], item["labels"], width))
        return {**item, "height": known if known is not None else estimate_height(item, width)}


def _height_key(title: str, meta: str, labels: list[str], width: float) -> tuple[Any, ...]:
    return (title, meta, tuple(labels), round(width))


def _card_item(card: Card) -> dict[str, Any]:
    """A card's data for its ``CardView``."""
    return {
        "locator": f"card:{card['title']}",
        "task_id": card["id"],
        "title": card["title"],
        "meta": describe(card),
        "labels": list(card["labels"]),
        "overdue": card["overdue"],
    }


def _window_rect(widget: Any) -> Rect:
    left, bottom = widget.to_window(widget.x, widget.y)
    return (float(left), float(bottom), float(widget.width), float(widget.height))


class DeletedRow(Row):
    title = StringProperty("")


class ColumnView(BoxLayout):
    """A column: its header, its empty state and its cards (``ids.scroll``, a ``CardList``)."""

    status = StringProperty("")
    title = StringProperty("")
    locator = StringProperty("")

    def card_views(self) -> list[CardView]:
        """The cards in sight, top to bottom (only these exist as widgets)."""
        views: list[CardView] = self.ids.scroll.views()
        return views

    def card_rects(self) -> tuple[tuple[str, Rect], ...]:
        rects: tuple[tuple[str, Rect], ...] = self.ids.scroll.card_rects()
        return rects


class ColumnTab(ToggleButton):
    """A column's tab on a phone: its title and count."""

    status = StringProperty("")


class SwipeColumns(GridLayout):
    """The columns; on a phone a sideways swipe over them asks for the next or the previous
    column (``on_swipe``: +1 or -1). A card being dragged is not a swipe."""

    __events__ = ("on_swipe",)
    swipe_enabled = BooleanProperty(False)
    dragging: Callable[[], bool] = staticmethod(lambda: False)

    def on_touch_down(self, touch: Any) -> bool:
        if self.swipe_enabled and self.collide_point(*touch.pos):
            touch.ud["swipe_from"] = touch.pos
        return bool(super().on_touch_down(touch))

    def on_touch_up(self, touch: Any) -> bool:
        start = touch.ud.pop("swipe_from", None)
        if start is not None and self.swipe_enabled and not self.dragging():
            across, along = touch.x - start[0], touch.y - start[1]
            if abs(across) > dp(SWIPE_DP) and abs(across) > 2 * abs(along):
                self.dispatch("on_swipe", -1 if across > 0 else 1)
        return bool(super().on_touch_up(touch))

    def on_swipe(self, step: int) -> None:
        pass


def describe(card: Card) -> str:
    """The card's second line: who, when, how urgent."""
    parts = []
    if card["assignee"]:
        parts.append(f"@{card['assignee']}")
    if card["due"]:
        due = f"due {card['due']}"
        overdue = f"[color={theme.ink_hex('danger')}]{due} · overdue[/color]"
        parts.append(overdue if card["overdue"] else due)
    if card["priority"]:
        parts.append(f"{card['priority_name']} priority")
    if card["has_notes"]:
        parts.append("notes")
    if card["comments"]:
        parts.append(f"{card['comments']} comment{'s' if card['comments'] != 1 else ''}")
    return " · ".join(parts)


class BoardScreen(AppScreen):
    board_name = StringProperty("")
    selected_task = StringProperty("")
    wide = BooleanProperty(True)
    phone = BooleanProperty(False)
    """Below 600 dp: one column at a time, under tabs that show each column's count."""
    current_column = OptionProperty("todo", options=list(STATUSES))
    undo_shown = BooleanProperty(False)
    """The snackbar: what was just done and its Undo, or what undoing did."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: BoardViewModel | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._drawn: dict[str, list[Card]] = {}
        self.drag = CardDrag(self._column_views, _copy_card, self._dropped)
        self._all_columns: list[ColumnView] = []
        theme.bind(scheme=lambda *_: self._repaint())

    def on_kv_post(self, _base: Any) -> None:
        ids = self.ids
        # held strongly (kv ids are weak proxies): a phone shows one, the others wait here
        self._all_columns = [ids[f"column_{status}"].__self__ for status in STATUSES]
        for column in self._all_columns:
            cards = column.ids.scroll
            cards.choose, cards.drag = self.choose, self.drag
            cards.is_selected = lambda task: bool(task) and task == self.selected_task
        ids.columns.dragging = lambda: self.drag.active
        self._lay_out_columns()

    def on_phone(self, *_args: Any) -> None:
        self._lay_out_columns()

    def on_current_column(self, *_args: Any) -> None:
        self._lay_out_columns()

    def swiped(self, step: int) -> None:
        index = STATUSES.index(self.current_column) + step
        if 0 <= index < len(STATUSES):
            self.current_column = STATUSES[index]

    def _lay_out_columns(self) -> None:
        """Side by side, or (on a phone) only the chosen column."""
        if not self._all_columns:
            return
        self.drag.cancel()
        grid = self.ids.columns
        grid.swipe_enabled = self.phone
        shown = [c for c in self._all_columns if not self.phone or c.status == self.current_column]
        if list(reversed(grid.children)) != shown:
            grid.clear_widgets()
            for column in shown:
                grid.add_widget(column)

    def _repaint(self) -> None:
        """A new scheme: the cards' markup colours are drawn again."""
        self._drawn = {}
        self.render()

    def attach(self, model: BoardViewModel) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        same_board = self.model is not None and self.model.board_id == model.board_id
        self.drag.cancel()
        self.model = model
        self._drawn = {}
        if same_board:  # back from one of its tasks: keep the selection and the filter
            self.filter_changed()
        else:
            self.selected_task = ""
            for field in ("filter_input", "quick_add_input"):
                self.ids[field].text = ""
            self.ids.show_deleted.state = "normal"
        self._unsubscribe = model.subscribe(ui_callback(self.render))
        self.render()

    # commands

    def quick_add(self) -> None:
        model = self._model()
        task = self.act(lambda: model.quick_add(self.ids.quick_add_input.text))
        if task is not None:
            self.ids.quick_add_input.text = ""
            self.selected_task = task
            self.ids.quick_add_input.focus = True  # ready for the next one

    def choose(self, task: str, open_it: bool = False) -> None:
        self.selected_task = task
        self._redraw_selection()
        if open_it:
            self.nav.open_task(task)

    def _dropped(self, task: str, target: DropTarget) -> None:
        model = self._model()
        self.selected_task = task
        self.act(lambda: model.drop(task, target))

    def on_pre_leave(self, *_args: Any) -> None:
        self.drag.cancel()

    def move(self, direction: str) -> None:
        model, task = self._model(), self.selected_task
        if task:
            self.act(lambda: getattr(model, MOVES[direction])(task))

    def open_selected(self) -> None:
        if self.selected_task:
            self.nav.open_task(self.selected_task)

    def delete_selected(self) -> None:
        model, task = self._model(), self.selected_task
        if task and self.act(lambda: model.delete(task)):
            self.selected_task = ""

    def restore(self, task: str) -> None:
        model = self._model()
        self.act(lambda: model.restore(task))

    def filter_changed(self) -> None:
        ids = self.ids
        label = ids.label_filter.text
        assignee = ids.assignee_filter.text
        model = self._model()
        before = model.filter
        model.set_filter(
            label=None if label == ANY_LABEL else label,
            assignee=None if assignee == ANYONE else assignee.removeprefix("@"),
            text=ids.filter_input.text,
        )
        if model.filter != before:  # another filter: its first cards, from the top
            for column in self._all_columns:
                column.ids.scroll.scroll_y = 1
            self.render()  # in this frame, not after the model's news reaches the UI thread

    def clear_filter(self) -> None:
        ids = self.ids
        ids.filter_input.text = ""
        ids.label_filter.text, ids.assignee_filter.text = ANY_LABEL, ANYONE
        self._model().clear_filter()

    def show_deleted(self, show: bool) -> None:
        self._model().set_show_deleted(show)

    def on_shortcut(self, name: str) -> bool:
        ids = self.ids
        if name == "new":
            ids.quick_add_input.focus = True
        elif name == "search":
            ids.filter_input.focus = True
        elif name in MOVES:
            self.move(name)
        elif name == "open":
            self.open_selected()
        elif name == "delete":
            self.delete_selected()
        elif name == "back" and self.drag.active:
            self.drag.cancel()  # Escape puts a dragged card back
        elif name == "back":
            self.nav.open_boards()
        else:
            return False
        return True

    def _column_views(self) -> list[ColumnView]:
        """The columns on screen (a phone shows one): where a dragged card may land."""
        return list(reversed(self.ids.columns.children))

    def _model(self) -> BoardViewModel:
        assert self.model is not None, "the board screen shows no board"
        return self.model

    # drawing

    def render(self) -> None:
        model = self.model
        if model is None:
            return
        if model.board is None:
            self.nav.open_boards()  # the board went away (access lost): the notice says why
            return
        ids = self.ids
        self.board_name = model.name + ("  (archived)" if model.board["archived"] else "")
        ids.board_error.text = model.error or ""
        self._render_undo(model)
        ids.label_filter.values = [ANY_LABEL, *model.labels_in_use]
        ids.assignee_filter.values = [ANYONE, *(f"@{a}" for a in model.assignees_in_use)]
        shown = {card["id"] for cards in model.columns.values() for card in cards}
        if self.selected_task not in shown:
            self.selected_task = ""
        for column in self._all_columns:
            self._render_column(column, model.columns[column.status], model)
        self._render_deleted(model.show_deleted, model.deleted_cards)
        self._redraw_selection()

    def undo(self) -> None:
        model = self._model()
        self.act(model.undo)

    def dismiss_undo(self) -> None:
        self._model().dismiss_undo()

    def _render_undo(self, model: BoardViewModel) -> None:
        offer, result = model.undo_offer, model.undo_result
        self.undo_shown = offer is not None or result is not None
        self.ids.undo_text.text = offer.text if offer is not None else (result or "")
        self.ids.undo_button.opacity = 1 if offer is not None else 0
        self.ids.undo_button.disabled = offer is None

    def _render_column(self, column: ColumnView, cards: list[Card], model: BoardViewModel) -> None:
        column.title = model.headers[column.status]
        column.ids.empty.text = model.empty_texts[column.status]
        if self._drawn.get(column.status) == cards:
            return  # nothing changed: keep the widgets (and the scroll position)
        self._drawn[column.status] = [Card(**card) for card in cards]
        column.ids.scroll.show(cards)  # new data: the cards in sight take it, none is made

    def _render_deleted(self, show: bool, cards: list[Card]) -> None:
        ids = self.ids
        ids.deleted_panel.height = ids.deleted_panel.open_height if show else 0
        ids.deleted_panel.opacity = 1 if show else 0
        if self._drawn.get("deleted") == cards:
            return  # keep the widgets (and a tap in progress)
        self._drawn["deleted"] = [Card(**card) for card in cards]
        ids.deleted_list.clear_widgets()
        for card in cards:
            row = DeletedRow(locator=f"deleted:{card['title']}", title=card["title"])
            row.ids.restore_button.bind(on_release=lambda *_, task=card["id"]: self.restore(task))
            ids.deleted_list.add_widget(row)
        ids.deleted_title.text = f"Deleted tasks  ·  {len(cards)}" if cards else "No deleted tasks"

    def _redraw_selection(self) -> None:
        ids = self.ids
        for column in self._all_columns:
            for view in column.card_views():
                view.selected = bool(self.selected_task) and view.task_id == self.selected_task
        title = ""
        if self.selected_task and self.model is not None:  # maybe scrolled out of sight
            cards = (card for cards in self.model.columns.values() for card in cards)
            title = next((c["title"] for c in cards if c["id"] == self.selected_task), "")
        ids.selection_label.text = f"Selected: {title}" if title else "Tap a card to select it"
        for button in ("move_left", "move_right", "move_up", "move_down", "edit", "delete"):
            ids[f"{button}_button"].disabled = not title


def _copy_card(card: CardView) -> CardView:
    """What the floating copy of a dragged card shows: the card, as selected."""
    return CardView(
        title=card.title,
        meta=card.meta,
        labels=list(card.labels),
        overdue=card.overdue,
        selected=True,
        size=card.size,
    )


load_kv(__file__)
