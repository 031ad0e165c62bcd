"""Pickers: named priorities, a date picker's month grid, the board's members as assignees.

Plain data for the screens: the stored values stay what the catalog says (priority 0..4, a
due date ``YYYY-MM-DD`` or none, an assignee's username or none); the names and the grid are
how they are shown and chosen.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from . import _validation as check
from ._base import ViewModel

PRIORITY_NAMES = check.PRIORITY_NAMES
"""Priority 0..4 by name: what the app shows wherever a priority is (the stored value stays
the number)."""

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def priority_name(value: int) -> str:
    """``3`` -> ``High``; a value out of range (a newer client's?) as its number."""
    return PRIORITY_NAMES[value] if 0 <= value < len(PRIORITY_NAMES) else str(value)


@dataclass(frozen=True)
class PriorityChoice:
    value: int
    name: str
    selected: bool


@dataclass(frozen=True)
class StatusChoice:
    value: str
    """``todo``, ``doing``, ``done``: what the form's status holds."""
    name: str
    """The column's title: ``To do``."""
    selected: bool


def status_choices(current: str | None, titles: dict[str, str]) -> list[StatusChoice]:
    """The board's columns by title (``titles``: status to title, in the board's order),
    the current one selected."""
    return [StatusChoice(value, name, value == current) for value, name in titles.items()]


def priority_choices(current: int | None) -> list[PriorityChoice]:
    """None, Low, Medium, High, Urgent, with the current one selected."""
    return [
        PriorityChoice(value, name, value == current) for value, name in enumerate(PRIORITY_NAMES)
    ]


@dataclass(frozen=True)
class DayCell:
    """One cell of the month grid."""

    date: str
    """``YYYY-MM-DD``: what picking it sets."""
    day: int
    in_month: bool
    """False for the days of the months before and after that fill the first and last week."""
    today: bool
    selected: bool


class DatePicker(ViewModel):
    """A month grid to pick a due date from, weeks from Monday; it opens on the date it is
    given (or today's month), and gives back ``YYYY-MM-DD`` or "" for no due date."""

    def __init__(self, value: str | None = None, *, today: Callable[[], date] = date.today) -> None:
        super().__init__()
        self._today = today
        self.selected: date | None = None
        if value:
            try:
                self.selected = date.fromisoformat(check.due(value) or "")
            except check.Refused as exc:
                self.error = str(exc)
        shown = self.selected or today()
        self.year, self.month = shown.year, shown.month

    @property
    def value(self) -> str:
        """What the form's due field holds: the date picked, or "" for none."""
        return "" if self.selected is None else self.selected.isoformat()

    @property
    def title(self) -> str:
        """``March 2025``."""
        return f"{calendar.month_name[self.month]} {self.year}"

    @property
    def weekdays(self) -> tuple[str, ...]:
        return WEEKDAYS

    @property
    def weeks(self) -> list[list[DayCell]]:
        """The month's weeks (4 to 6), each of 7 days from Monday; days of the neighbouring
        months fill the first and the last week."""
        today = self._today()
        month = calendar.Calendar(firstweekday=0).monthdatescalendar(self.year, self.month)
        return [
            [
                DayCell(
                    day.isoformat(),
                    day.day,
                    day.month == self.month,
                    day == today,
                    day == self.selected,
                )
                for day in week
            ]
            for week in month
        ]

    def next_month(self) -> None:
        self.year, self.month = (
            (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        )
        self._notify()

    def previous_month(self) -> None:
        self.year, self.month = (
            (self.year - 1, 12) if self.month == 1 else (self.year, self.month - 1)
        )
        self._notify()

    def show_today(self) -> None:
        today = self._today()
        self.year, self.month = today.year, today.month
        self._notify()

    def pick(self, day: str) -> bool:
        """Pick a day (``YYYY-MM-DD``, a cell's ``date``); False with ``error`` if it is not
        a date on the calendar."""
        try:
            picked = check.due(day)
        except check.Refused as exc:
            self.error = str(exc)
            self._notify()
            return False
        self.error = None
        if picked is None:
            return self.clear()
        self.selected = date.fromisoformat(picked)
        self.year, self.month = self.selected.year, self.selected.month
        self._notify()
        return True

    def clear(self) -> bool:
        """No due date."""
        self.selected, self.error = None, None
        self._notify()
        return True


@dataclass(frozen=True)
class AssigneeChoice:
    username: str
    """"" for nobody (clearing the assignee)."""
    label: str
    """``Nobody``, ``alice (you)``, ``bob``, ``carol (not on the board)``."""
    selected: bool


def assignee_choices(
    members: list[dict[str, Any]], current: str | None, you: str
) -> list[AssigneeChoice]:
    """Nobody first, then the board's members (the owner first); the current assignee, if
    no longer a member, last, so the picker still shows who it is. The owner of a board made
    before this profile had an account is "(you)", no username a task can be assigned to
    (saving would refuse it): not offered."""
    current = current or None
    choices = [AssigneeChoice("", "Nobody", current is None)]
    names = [m["username"] for m in members]
    for name in names:
        if not _assignable(name):
            continue
        label = f"{name} (you)" if name == you else name
        choices.append(AssigneeChoice(name, label, name == current))
    if current is not None and current not in names:
        choices.append(AssigneeChoice(current, f"{current} (not on the board)", True))
    return choices


def _assignable(name: str) -> bool:
    try:
        return check.assignee(name) is not None
    except check.Refused:
        return False
