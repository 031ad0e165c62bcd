"""One board: three columns of cards in ``position`` order, quick add, moves by buttons or
keys, filters, and the deleted tasks to restore.

Indexes a screen passes are in the column as it shows it (filtered); they are mapped to
the whole column, so a move among filtered cards lands next to the card the user saw.

Dragging a card: ``drop_target`` says which column and index a point falls at, given where
the columns and their cards are drawn; ``drop_line`` where to draw the marker showing it;
``BoardViewModel.drop`` moves the card there (nothing is recorded when it is already there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypedDict

from client.device import STATUSES, Device

from . import _validation as check
from ._base import ViewModel
from ._identity import require_open
from .undo import UndoOffer, offer_for, task_values, undo

COLUMN_TITLES = {"todo": "To do", "doing": "Doing", "done": "Done"}


class Card(TypedDict):
    id: str
    title: str
    assignee: str | None
    due: str | None
    overdue: bool
    """Due before today and not done."""
    priority: int
    labels: list[str]


@dataclass(frozen=True)
class CardFilter:
    label: str | None = None
    assignee: str | None = None
    text: str | None = None
    """Matches title or notes, ignoring case."""

    @property
    def active(self) -> bool:
        return any((self.label, self.assignee, self.text))

    def matches(self, task: dict[str, Any]) -> bool:
        if self.label and self.label not in task["labels"]:
            return False
        if self.assignee and task["assignee"] != self.assignee:
            return False
        needle = (self.text or "").strip().casefold()
        return not needle or needle in f"{task['title']}\n{task['notes']}".casefold()


Rect = tuple[float, float, float, float]
"""``x, y, width, height`` in window coordinates: ``y`` grows upwards, as in Kivy."""


@dataclass(frozen=True)
class ColumnArea:
    """Where a column is drawn, and each of its cards as shown, top to bottom."""

    status: str
    rect: Rect
    cards: tuple[tuple[str, Rect], ...] = ()
    """``(task id, rect)`` of each card shown; scrolled out of sight ones too."""


@dataclass(frozen=True)
class DropTarget:
    status: str
    index: int
    """In the column as shown, without the card dragged (what ``BoardViewModel.move``
    takes)."""


def drop_target(
    columns: Iterable[ColumnArea], x: float, y: float, dragging: str | None = None
) -> DropTarget | None:
    """The column the point ``(x, y)`` is in, and the index a card dropped there takes: after
    every card whose middle is above the point. None outside every column (a cancel)."""
    for column in columns:
        if _inside(column.rect, x, y):
            above = sum(
                1
                for task, (_, bottom, _, height) in column.cards
                if task != dragging and bottom + height / 2 > y
            )
            return DropTarget(column.status, above)
    return None


def drop_line(
    column: ColumnArea,
    index: int,
    *,
    dragging: str | None = None,
    gap: float = 0.0,
    empty: float | None = None,
) -> float:
    """The height at which to draw the marker for a drop at ``index`` of ``column``: between
    the cards that will be either side of it (``gap`` apart), at ``empty`` (default: the
    column's top) when the column shows no other card; always within the column."""
    _, bottom, _, height = column.rect
    top = bottom + height
    others = [rect for task, rect in column.cards if task != dragging]
    index = max(0, min(index, len(others)))
    if not others:
        line = top if empty is None else empty
    elif index == 0:
        line = others[0][1] + others[0][3] + gap / 2
    elif index == len(others):
        line = others[-1][1] - gap / 2
    else:
        line = (others[index - 1][1] + others[index][1] + others[index][3]) / 2
    return max(bottom, min(top, line))


def _inside(rect: Rect, x: float, y: float) -> bool:
    left, bottom, width, height = rect
    return left <= x < left + width and bottom <= y < bottom + height


class BoardViewModel(ViewModel):
    column_titles = COLUMN_TITLES

    def __init__(
        self, device: Device, board_id: str, *, today: Callable[[], date] = date.today
    ) -> None:
        super().__init__()
        self.device = device
        self.board_id = board_id
        self._today = today
        self.board: dict[str, Any] | None = None
        self.columns: dict[str, list[Card]] = {status: [] for status in STATUSES}
        self.filter = CardFilter()
        self.labels_in_use: list[str] = []
        self.assignees_in_use: list[str] = []
        self.show_deleted = False
        self.deleted_cards: list[Card] = []
        """Deleted tasks, listed while ``show_deleted`` is on, to restore."""
        self._tasks: list[dict[str, Any]] = []
        self.undo_offer: UndoOffer | None = None
        """After a delete or a move: the snackbar's text and its "Undo" (None: no snackbar)."""
        self.undo_result: str | None = None
        """After ``undo``: "Undone", or what changed elsewhere and was kept."""
        self._reload()

    @property
    def name(self) -> str:
        return "" if self.board is None else str(self.board["name"])

    # commands

    def quick_add(self, title: str, status: str = "todo") -> str | None:
        """A new task at the end of a column; its id, or None (see ``error``)."""
        _check_status(status)

        def act() -> str:
            require_open(self.board)
            return self.device.add_task(self.board_id, check.title(title), status=status)

        return self._run(act)[1]

    def move(self, task: str, status: str, index: int | None = None) -> bool:
        """To ``index`` of the ``status`` column as shown (default: its end)."""
        _check_status(status)

        def act() -> None:
            require_open(self.board)
            whole = None if index is None else self._whole_index(task, status, index)
            self._undoable(task, _moved, lambda: self.device.move_task(task, status, whole))

        return self._do(act)

    def drop(self, task: str, target: DropTarget) -> bool:
        """A card dragged to ``target``: moved there, or nothing recorded when that is where it
        already is."""
        shown = [card["id"] for card in self.columns.get(target.status, [])]
        if task in shown and shown.index(task) == target.index:
            return True  # dropped where it was picked up
        return self.move(task, target.status, target.index)

    def move_left(self, task: str) -> bool:
        return self._move_beside(task, -1)

    def move_right(self, task: str) -> bool:
        return self._move_beside(task, +1)

    def move_up(self, task: str) -> bool:
        return self._move_within(task, -1)

    def move_down(self, task: str) -> bool:
        return self._move_within(task, +1)

    def delete(self, task: str) -> bool:
        def act() -> None:
            require_open(self.board)
            self._undoable(task, "Task deleted", lambda: self.device.delete_task(task))

        return self._do(act)

    def undo(self) -> bool:
        """Undo the action the snackbar offers: the inverse events for every field that
        still holds what it set; ``undo_result`` says what was done."""
        offer = self.undo_offer
        if offer is None:
            return False

        def act() -> None:
            require_open(self.board)
            self.undo_offer = None
            self.undo_result = undo(self.device, offer)

        return self._do(act)

    def dismiss_undo(self) -> None:
        """The snackbar timed out or was closed: nothing more to undo."""
        self.undo_offer = self.undo_result = None
        self._notify()

    def restore(self, task: str) -> bool:
        return self._do(lambda: self._open_then(self.device.restore_task, task))

    def set_filter(
        self, label: str | None = None, assignee: str | None = None, text: str | None = None
    ) -> None:
        """Show only cards matching all the given criteria (None: any)."""
        self.filter = CardFilter(label or None, assignee or None, text or None)
        self.refresh()

    def clear_filter(self) -> None:
        self.set_filter()

    def set_show_deleted(self, show: bool) -> None:
        self.show_deleted = show
        self.refresh()

    def toggle_show_deleted(self) -> None:
        self.set_show_deleted(not self.show_deleted)

    # moves

    def _move_beside(self, task: str, step: int) -> bool:
        """To the neighbouring column, at its end; False at the edge."""
        status = self._status_of(task)
        if status is None:
            return self._gone()
        target = STATUSES.index(status) + step
        if not 0 <= target < len(STATUSES):
            return False
        return self.move(task, STATUSES[target])

    def _move_within(self, task: str, step: int) -> bool:
        """One place up or down among the cards shown; False at the top or bottom."""
        status = self._status_of(task)
        if status is None:
            return self._gone()
        shown = [card["id"] for card in self.columns[status]]
        here = shown.index(task) if task in shown else -1
        if here < 0 or not 0 <= here + step < len(shown):
            return False
        return self.move(task, status, here + step)

    def _whole_index(self, task: str, status: str, index: int) -> int:
        """The index in the whole column (without ``task``) of a place in the shown one."""
        shown = [card["id"] for card in self.columns[status] if card["id"] != task]
        whole = [t["id"] for t in self.device.column(self.board_id, status) if t["id"] != task]
        index = max(0, index)
        if index < len(shown) and shown[index] in whole:
            return whole.index(shown[index])  # just before the card shown there
        if index >= len(shown) and shown and shown[-1] in whole:
            return whole.index(shown[-1]) + 1  # just after the last card shown
        return min(index, len(whole))  # what was shown is stale: near enough

    def _status_of(self, task: str) -> str | None:
        found = next((t for t in self._tasks if t["id"] == task and not t["deleted"]), None)
        return None if found is None else str(found["status"])

    def _gone(self) -> bool:
        self.error = "That task is no longer on this board: a sync may have removed it"
        self.refresh()
        return False

    def _undoable(
        self, task: str, text: str | Callable[[Any], str], action: Callable[[], None]
    ) -> None:
        before = task_values(self.device, task)
        action()
        self.undo_offer, self.undo_result = offer_for(self.device, task, text, before), None

    def _open_then(self, action: Callable[[str], None], task: str) -> None:
        require_open(self.board)
        action(task)

    # reading

    def _load(self) -> None:
        found = self.device.entity("board", self.board_id)
        self.board = None if found is None else dict(found["values"])
        self._tasks = self.device.tasks(self.board_id, include_deleted=True)
        live = [t for t in self._tasks if not t["deleted"]]
        shown = [t for t in live if self.filter.matches(t)]
        self.columns = {
            status: [self._card(t) for t in shown if t["status"] == status] for status in STATUSES
        }
        self.labels_in_use = sorted({label for t in live for label in t["labels"]})
        self.assignees_in_use = sorted({t["assignee"] for t in live if t["assignee"]})
        deleted = [t for t in self._tasks if t["deleted"]] if self.show_deleted else []
        self.deleted_cards = [self._card(t) for t in deleted]

    def _card(self, task: dict[str, Any]) -> Card:
        today = self._today().isoformat()
        due = task["due"]
        return {
            "id": task["id"],
            "title": task["title"],
            "assignee": task["assignee"],
            "due": due,
            "overdue": due is not None and due < today and task["status"] != "done",
            "priority": task["priority"],
            "labels": sorted(task["labels"]),
        }


def _moved(after: Any) -> str:
    """The snackbar's text after a move: to which column, or within its own."""
    status = after.get("status")
    return f"Moved to {COLUMN_TITLES[status]}" if status else "Moved"


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
