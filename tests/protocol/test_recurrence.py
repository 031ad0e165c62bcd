"""The recurrence grammar and rule (protocol/recurrence.py), shared by the orchestrator and
the conflict oracle."""

from __future__ import annotations

import datetime

import pytest

from protocol import Event, merge
from protocol.catalog import TaskCreated, TaskFields, TaskUpdated
from protocol.merge import EntityKey
from protocol.recurrence import Recurrence, completes, next_due, parse_recurrence, recurrence_of

TASK = "0190f1e2-0000-7000-8000-000000000001"
BOARD = "0190f1e2-0000-7000-8000-000000000002"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("every:day", Recurrence(1, "d")),
        ("every:week", Recurrence(1, "w")),
        ("every:month", Recurrence(1, "m")),
        ("every:year", Recurrence(12, "m")),
        ("every:3d", Recurrence(3, "d")),
        ("every:2w", Recurrence(2, "w")),
        ("every:365m", Recurrence(365, "m")),
    ],
)
def test_labels_that_declare_a_recurrence(label: str, expected: Recurrence) -> None:
    assert parse_recurrence(label) == expected


@pytest.mark.parametrize(
    "label",
    ["bug", "every:", "every:0d", "every:366d", "every:07d", "every:2x", "Every:week",
     "every:week ", "every:1d\n", "every:\uff11d"],
)  # fmt: skip
def test_other_labels_declare_none(label: str) -> None:
    assert parse_recurrence(label) is None


def test_the_first_recurrence_label_in_sorted_order_wins() -> None:
    assert recurrence_of(["urgent", "every:week", "every:day"]) == Recurrence(1, "d")
    assert recurrence_of(["urgent"]) is None


@pytest.mark.parametrize(
    ("due", "label", "expected"),
    [
        ("2026-01-31", "every:month", "2026-02-28"),
        ("2028-01-31", "every:month", "2028-02-29"),
        ("2026-12-15", "every:month", "2027-01-15"),
        ("2026-02-28", "every:week", "2026-03-07"),
        ("2026-12-31", "every:day", "2027-01-01"),
        ("2028-02-29", "every:year", "2029-02-28"),
        ("2026-11-30", "every:3m", "2027-02-28"),
    ],
)
def test_the_next_due_date(due: str, label: str, expected: str) -> None:
    recurrence = parse_recurrence(label)
    assert recurrence is not None
    assert next_due(datetime.date.fromisoformat(due), recurrence).isoformat() == expected


def _event(id_: str, hlc: str, payload: TaskCreated | TaskUpdated) -> Event:
    return Event(
        id=id_, type=type(payload).__name__, schema=1, board=BOARD, entity=TASK, hlc=hlc,
        device="d-1", payload=payload, actor="alice",
    )  # fmt: skip


def test_only_the_merged_status_becoming_done_completes() -> None:
    created = _event(
        "0190f1e2-0000-7000-8000-000000000010",
        "1764136800000:00000:d-1",
        TaskCreated(title="t", position="a0", labels=["every:week"]),
    )
    late_done = _event(
        "0190f1e2-0000-7000-8000-000000000011",
        "1764136800001:00000:d-1",
        TaskUpdated(fields=TaskFields(status="done")),
    )
    todo = _event(
        "0190f1e2-0000-7000-8000-000000000012",
        "1764136800002:00000:d-1",
        TaskUpdated(fields=TaskFields(status="todo")),
    )
    key = EntityKey("task", TASK)
    state = merge.apply(merge.new_state(key, BOARD), created)
    after_todo = merge.apply(state, todo)
    after_late = merge.apply(after_todo, late_done)
    assert completes(after_todo, after_late) is None, "a done that loses the merge"
    done = merge.apply(state, late_done)
    assert completes(state, done) == Recurrence(1, "w")
    assert completes(done, merge.apply(done, late_done)) is None, "already done"
    unlabelled = merge.apply(
        merge.new_state(key, BOARD),
        _event(created.id, created.hlc, TaskCreated(title="t", position="a0")),
    )
    assert completes(unlabelled, merge.apply(unlabelled, late_done)) is None
