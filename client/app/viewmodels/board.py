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
from ._identity import me, require_open, require_owner
from .pickers import priority_name
from .undo import UndoOffer, offer_for, task_values, undo

COLUMN_TITLES = {"todo": "To do", "doing": "Doing", "done": "Done"}

EMPTY_BOARD = {
    "todo": "No tasks yet: add the first one above",
    "doing": "Move a task here when work on it starts",
    "done": "Finished tasks land here",
}
"""What each column says on a board with no task at all."""

EMPTY_COLUMN = {
    "todo": "Nothing to do: add a task above",
    "doing": "Nothing in progress: drag a task here to start it",
    "done": "Nothing done yet",
}
"""What an empty column says on a board with tasks elsewhere (no filter hiding any here)."""


class Card(TypedDict):
    id: str
    title: str
    assignee: str | None
    due: str | None
    overdue: bool
    """Due before today and not done."""
    priority: int
    priority_name: str
    """``None``, ``Low``, ``Medium``, ``High``, ``Urgent``: how the priority is shown."""
    labels: list[str]
    has_notes: bool
    """The task has notes (the card shows a sign of them)."""
    comments: int
    """How many comments the task has (not deleted)."""


@dataclass(frozen=True)
class WipHeader:
    """Doing's header on a board with a WIP limit. The limit is per assignee (SPEC 5), so
    the header counts one assignee's tasks in Doing against it: the assignee the board is
    filtered by, else you. ``text`` is ``1/3``; ``label`` names whose (``you 1/3``,
    ``carol 2/3``); all of Doing's cards are counted by the header as usual."""

    limit: int
    assignee: str
    load: int
    """The assignee's tasks in Doing (not deleted), whatever the filter shows."""
    is_you: bool

    @property
    def text(self) -> str:
        return f"{self.load}/{self.limit}"

    @property
    def label(self) -> str:
        return f"{'you' if self.is_you else self.assignee} {self.text}"

    @property
    def full(self) -> bool:
        """At the limit: one more task in Doing for this assignee would be undone."""
        return self.load >= self.limit

    @property
    def over(self) -> bool:
        return self.load > self.limit


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
        self._comment_counts: dict[str, int] = {}
        self.members: list[str] = []
        """The board's members, the owner first: the assignee picker's and filter's choices."""
        self.wip: WipHeader | None = None
        """Doing's WIP count against the limit; None on a board without a limit."""
        self.headers: dict[str, str] = {}
        """Each column's header: ``To do · 4``, ``Doing · 5 · you 1/3`` (see ``WipHeader``)."""
        self.empty_texts: dict[str, str] = {}
        """What an empty column says, by status: what to do on an empty board, that the
        filter hides a column's cards, or what the column is for; "" when it shows cards."""
        self.undo_offer: UndoOffer | None = None
        """After a delete or a move: the snackbar's text and its "Undo" (None: no snackbar)."""
        self.undo_result: str | None = None
        """After ``undo``: "Undone", or what changed elsewhere and was kept."""
        self._reload()

    @property
    def name(self) -> str:
        return "" if self.board is None else str(self.board["name"])

    @property
    def is_owner(self) -> bool:
        return self.board is not None and self.board["owner"] == me(self.device)

    @property
    def can_set_wip_limit(self) -> bool:
        """Only the owner sets the limit (the backend refuses anyone else's)."""
        return self.is_owner

    @property
    def wip_limit(self) -> int | None:
        limit = None if self.board is None else self.board.get("wip_limit")
        return limit if isinstance(limit, int) else None

    @property
    def is_empty(self) -> bool:
        """The board has no tasks at all (deleted ones aside)."""
        return not any(not t["deleted"] for t in self._tasks)

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

    def set_wip_limit(self, limit: int | str | None) -> bool:
        """The most tasks in Doing per assignee (1..100), or none ("", "none", 0, None);
        the board's owner only."""

        def act() -> None:
            require_owner(self.device, self.board, "set its limit on tasks in Doing")
            self.device.set_wip_limit(self.board_id, check.wip_limit(limit))

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
        self._comment_counts = self.device.comment_counts(self.board_id)
        live = [t for t in self._tasks if not t["deleted"]]
        shown = [t for t in live if self.filter.matches(t)]
        self.columns = {
            status: [self._card(t) for t in shown if t["status"] == status] for status in STATUSES
        }
        self.labels_in_use = sorted({label for t in live for label in t["labels"]})
        self.assignees_in_use = sorted({t["assignee"] for t in live if t["assignee"]})
        deleted = [t for t in self._tasks if t["deleted"]] if self.show_deleted else []
        self.deleted_cards = [self._card(t) for t in deleted]
        self.members = [m["username"] for m in self.device.members(self.board_id)]
        self.wip = self._wip_header(live)
        self.headers = {status: self._header(status) for status in STATUSES}
        self.empty_texts = {status: self._empty_text(status, live) for status in STATUSES}

    def _wip_header(self, live: list[dict[str, Any]]) -> WipHeader | None:
        limit = self.wip_limit
        if limit is None:
            return None
        you = me(self.device)
        assignee = self.filter.assignee or you
        load = sum(1 for t in live if t["status"] == "doing" and t["assignee"] == assignee)
        return WipHeader(limit, assignee, load, assignee == you)

    def _header(self, status: str) -> str:
        header = f"{COLUMN_TITLES[status]} · {len(self.columns[status])}"
        if status == "doing" and self.wip is not None:
            header += f" · {self.wip.label}"
        return header

    def _empty_text(self, status: str, live: list[dict[str, Any]]) -> str:
        if self.columns[status]:
            return ""
        if not live:
            return EMPTY_BOARD[status]
        if self.filter.active and any(t["status"] == status for t in live):
            return "No card here matches the filter: clear it to see them all"
        return EMPTY_COLUMN[status]

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
            "priority_name": priority_name(task["priority"]),
            "labels": sorted(task["labels"]),
            "has_notes": bool(task["notes"].strip()),
            "comments": self._comment_counts.get(task["id"], 0),
        }


def _moved(after: Any) -> str:
    """The snackbar's text after a move: to which column, or within its own."""
    status = after.get("status")
    return f"Moved to {COLUMN_TITLES[status]}" if status else "Moved"


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
