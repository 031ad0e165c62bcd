"""The orchestrator's two business processes, declared as data (SPEC 6c).

Each process is a table of transitions: on this signal in this state, run these actions
and go to that state. A pair the table does not name changes nothing. The component
(``component.py``) derives the signals from each task's merged state before and after an
event (never from what one event says: a late ``done`` that loses the merge is no signal),
and runs the actions; ``backend/asyncapi.py`` prints these tables.

Due-date reminders: a task with a due date and an assignee, not done and not deleted, is
*armed*; its reminder is planned as a JetStream message schedule that fires at the due
date's start (00:00 UTC) less the lead time, re-planned when the due date or the assignee
changes, cancelled when it is disarmed (done, deleted, no due date or no assignee).

Recurring tasks: a task labelled ``every:<period>`` spawns its next occurrence once, when
its merged status becomes ``done``.

The recurrence grammar (a label, case-sensitive): ``every:day``, ``every:week``,
``every:month``, ``every:year``, or ``every:<n>d`` / ``every:<n>w`` / ``every:<n>m`` with
``n`` from 1 to 365 (days, weeks, months). The next due date is the finished task's due
date (or, without one, the day it was done, UTC) plus one period; a month step keeps the
day of the month, or takes the month's last day (31 January + 1 month = 28/29 February).
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "PROCESSES",
    "RECURRENCE",
    "REMINDER",
    "Recurrence",
    "Transition",
    "next_due",
    "parse_recurrence",
    "recurrence_of",
    "reminder_fire_ms",
    "step",
]


@dataclass(frozen=True)
class Transition:
    actions: tuple[str, ...]
    next_state: str


Table = Mapping[tuple[str, str], Transition]

REMINDER: Table = {
    ("idle", "armed"): Transition(("plan",), "planned"),
    ("planned", "armed"): Transition(("plan",), "planned"),  # due or assignee changed
    ("planned", "disarmed"): Transition(("cancel",), "idle"),
    ("planned", "fired"): Transition(("remind",), "sent"),
    ("sent", "armed"): Transition(("plan",), "planned"),  # a new due date after the reminder
    ("sent", "disarmed"): Transition((), "idle"),
}
"""Reminder states: idle (nothing planned), planned (a schedule waits), sent."""

RECURRENCE: Table = {
    ("open", "completed"): Transition(("spawn",), "spawned"),
}
"""Recurrence states: open, spawned (the next occurrence exists: for good, since its id is
derived from this task's, reopening and finishing again spawns nothing new)."""

PROCESSES: Mapping[str, Table] = {"reminder": REMINDER, "recurrence": RECURRENCE}
INITIAL = {"reminder": "idle", "recurrence": "open"}


def step(table: Table, state: str, signal: str) -> Transition:
    """The transition for ``signal`` in ``state``: the table's, or none (stay, no action)."""
    return table.get((state, signal), Transition((), state))


@dataclass(frozen=True)
class Recurrence:
    count: int
    unit: str
    """``d`` days, ``w`` weeks, ``m`` months."""


_NAMED = {"day": (1, "d"), "week": (1, "w"), "month": (1, "m"), "year": (12, "m")}
_COUNTED = re.compile(r"every:([1-9][0-9]{0,2})([dwm])")


def parse_recurrence(label: str) -> Recurrence | None:
    """The recurrence a label declares, or None if it declares none."""
    if not label.startswith("every:"):
        return None
    named = _NAMED.get(label.removeprefix("every:"))
    if named is not None:
        return Recurrence(*named)
    match = _COUNTED.fullmatch(label)
    if match is None or not 1 <= int(match.group(1)) <= 365:
        return None
    return Recurrence(int(match.group(1)), match.group(2))


def recurrence_of(labels: list[str]) -> Recurrence | None:
    """The task's recurrence: its first recurrence label in sorted order, if any."""
    for label in sorted(labels):
        found = parse_recurrence(label)
        if found is not None:
            return found
    return None


def next_due(due: datetime.date, recurrence: Recurrence) -> datetime.date:
    if recurrence.unit == "d":
        return due + datetime.timedelta(days=recurrence.count)
    if recurrence.unit == "w":
        return due + datetime.timedelta(weeks=recurrence.count)
    months = due.month - 1 + recurrence.count
    year, month = due.year + months // 12, months % 12 + 1
    day = min(due.day, calendar.monthrange(year, month)[1])
    return datetime.date(year, month, day)


def reminder_fire_ms(due: str, lead_s: float) -> int:
    """When a task due on ``due`` is reminded of: the due date's 00:00 UTC, less the lead."""
    start = datetime.datetime.combine(
        datetime.date.fromisoformat(due), datetime.time(), tzinfo=datetime.UTC
    )
    return int(start.timestamp() * 1000 - lead_s * 1000)
