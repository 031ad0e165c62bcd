"""The orchestrator's processes as data (backend/orchestrator/rules.py)."""

from __future__ import annotations

import datetime

from backend.orchestrator.rules import (
    INITIAL,
    PROCESSES,
    RECURRENCE,
    REMINDER,
    reminder_fire_ms,
    step,
)
from backend.orchestrator.timers import at


def test_a_signal_the_table_does_not_name_changes_nothing() -> None:
    assert step(REMINDER, "idle", "fired").actions == ()
    assert step(REMINDER, "idle", "fired").next_state == "idle"
    assert step(RECURRENCE, "spawned", "completed").actions == (), "spawned once for good"


def test_the_reminder_process() -> None:
    state = INITIAL["reminder"]
    walk = []
    for signal in ("armed", "armed", "fired", "fired", "disarmed", "armed", "disarmed"):
        transition = step(REMINDER, state, signal)
        walk.append((signal, transition.actions, transition.next_state))
        state = transition.next_state
    assert walk == [
        ("armed", ("plan",), "planned"),
        ("armed", ("plan",), "planned"),
        ("fired", ("remind",), "sent"),
        ("fired", (), "sent"),
        ("disarmed", (), "idle"),
        ("armed", ("plan",), "planned"),
        ("disarmed", ("cancel",), "idle"),
    ]


def test_every_state_a_table_reaches_is_a_state_it_starts_from_or_ends_in() -> None:
    for name, table in PROCESSES.items():
        states = {s for s, _ in table} | {INITIAL[name]}
        assert {t.next_state for t in table.values()} <= states | {"spawned"}


def test_the_reminder_time_is_the_due_dates_start_less_the_lead() -> None:
    midnight = datetime.datetime(2026, 12, 24, tzinfo=datetime.UTC).timestamp() * 1000
    assert reminder_fire_ms("2026-12-24", 86400) == midnight - 86_400_000
    assert reminder_fire_ms("2026-12-24", 0.5) == midnight - 500


def test_a_schedule_is_never_early() -> None:
    assert at(1_764_136_800_000) == "@at 2025-11-26T06:00:00Z"
    assert at(1_764_136_800_001) == "@at 2025-11-26T06:00:01Z"
