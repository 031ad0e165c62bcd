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
its merged status becomes ``done`` (the grammar and the rule: ``protocol.recurrence``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "PROCESSES",
    "RECURRENCE",
    "REMINDER",
    "Transition",
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


def reminder_fire_ms(due: str, lead_s: float) -> int:
    """When a task due on ``due`` is reminded of: the due date's 00:00 UTC, less the lead."""
    start = datetime.datetime.combine(
        datetime.date.fromisoformat(due), datetime.time(), tzinfo=datetime.UTC
    )
    return int(start.timestamp() * 1000 - lead_s * 1000)
