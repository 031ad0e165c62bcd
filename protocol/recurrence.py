"""Recurring tasks (SPEC 6c): the label grammar and when a task spawns its next occurrence.

A task labelled with a recurrence spawns its next occurrence once, when its merged status
becomes ``done`` (``completes``): not on any event that says done, only when the merge
makes it so. The orchestrator writes it; ``outpost conflicts`` checks it with the same rule.

The grammar (a label, case-sensitive): ``every:day``, ``every:week``, ``every:month``,
``every:year``, or ``every:<n>d`` / ``every:<n>w`` / ``every:<n>m`` with ``n`` from 1 to 365
(days, weeks, months). The next due date is the finished task's due date (or, without one,
the day it was done, UTC) plus one period; a month step keeps the day of the month, or
takes the month's last day (31 January + 1 month = 28 or 29 February). A task with several
recurrence labels follows the first in sorted order.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.merge.state import EntityState

__all__ = ["Recurrence", "completes", "next_due", "parse_recurrence", "recurrence_of"]


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


def recurrence_of(labels: Iterable[str]) -> Recurrence | None:
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


def completes(before: EntityState | None, after: EntityState) -> Recurrence | None:
    """The recurrence a task's next occurrence follows if this fold (``before`` to
    ``after``) makes its merged status ``done``; None if it spawns nothing."""
    was_done = before is not None and before.created and before.value("status") == "done"
    done = after.created and after.value("status") == "done"
    if not done or was_done or after.value("deleted", False):
        return None
    return recurrence_of(after.labels())
