"""Which reminders the conflict tool's oracle expects at the end of a run, from the final
pulls (``outpost.conflicts.reminders``), and what it reports when one is missing or twice.

The oracle's whole run on real parts, reminders included, is ``tests/test_conflicts.py``
(the sweep) and ``tests/test_conflicts_oracle.py`` (the ``reminders-off`` broken build it
must catch)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from backend.orchestrator.rules import reminder_fire_ms
from outpost.conflicts.oracle import Oracle
from outpost.conflicts.orchestrator import Execution
from outpost.conflicts.reminders import REMINDER_LEAD_S, expected, final_states, missing, pulled

LEAD = REMINDER_LEAD_S
DUE = "2026-03-10"
FIRE = reminder_fire_ms(DUE, LEAD)
NOW = FIRE + 1000  # the run healed a second after the reminder was due


def _change(kind: str, id: str, values: dict[str, Any], board: str = "b1") -> dict[str, Any]:
    stamp = {"hlc": "0000000000001-0000-n", "id": f"e-{id}"}
    fields = {
        name: {**stamp, "id": f"due-{id}" if name == "due" else stamp["id"]} for name in values
    }
    return {
        "kind": kind,
        "id": id,
        "board": board,
        "values": values,
        "meta": {"fields": fields, "labels": {}},
    }


def _board(archived: bool = False) -> list[dict[str, Any]]:
    return [
        _change("board", "b1", {"name": "B", "archived": archived, "owner": "ann"}),
        _change("member", "b1/ann", {"username": "ann", "role": "owner", "removed": False}),
        _change("member", "b1/bob", {"username": "bob", "role": "editor", "removed": False}),
        _change("member", "b1/cy", {"username": "cy", "role": "editor", "removed": True}),
    ]


def _task(id: str = "t1", **values: Any) -> dict[str, Any]:
    base = {"title": "t", "status": "todo", "due": DUE, "assignee": "bob", "deleted": False}
    return _change("task", id, {**base, **values})


def _notice(task: str, cause: str) -> dict[str, Any]:
    values = {"task": task, "cause": cause, "reason": "reminder", "message": "m"}
    return {**_change("notice", f"n-{task}-{cause}", values), "values": values}


def test_an_armed_task_due_by_the_end_is_expected_with_its_last_due_date_event() -> None:
    states = final_states([[*_board(), _task()]])
    assert expected(states, NOW, LEAD) == {("bob", "t1", "due-t1"): FIRE}
    assert expected(states, FIRE, LEAD) == {("bob", "t1", "due-t1"): FIRE}  # at: included


@pytest.mark.parametrize(
    ("task", "board", "why"),
    [
        (_task(status="done"), _board(), "done"),
        (_task(deleted=True), _board(), "deleted"),
        (_task(due=None), _board(), "no due date"),
        (_task(assignee=None), _board(), "no assignee"),
        (_task(assignee="cy"), _board(), "the assignee was removed from the board"),
        (_task(assignee="dee"), _board(), "the assignee was never a member"),
        (_task(due="2026-03-12"), _board(), "not due yet"),
        (_task(), _board(archived=True), "the board is archived"),
    ],
)
def test_what_is_not_expected(task: dict[str, Any], board: list[dict[str, Any]], why: str) -> None:
    assert expected(final_states([[*board, task]]), NOW, LEAD) == {}, why


def test_the_owner_is_a_member_and_missing_counts_per_assignee() -> None:
    pulls = [[*_board(), _task(assignee="ann"), _task("t2")], [*_board(), _task("t2")]]
    users = ["ann", "bob"]
    assert missing(pulls, users, NOW, LEAD) == [("ann", "t1", "due-t1"), ("bob", "t2", "due-t2")]
    pulls[1].append(_notice("t2", "due-t2"))
    pulls[0].append(_notice("t2", "due-t2"))  # ann was reminded of t2: not bob's reminder
    assert missing(pulls, users, NOW, LEAD) == [("ann", "t1", "due-t1")]
    assert pulled(pulls, users) == Counter({("ann", "t2", "due-t2"): 1, ("bob", "t2", "due-t2"): 1})


def _oracle(pulls: list[list[dict[str, Any]]], cutoff: int | None) -> Oracle:
    run = Execution(["ann", "bob"], [])
    run.reminder_cutoff_ms, run.reminder_lead_s = cutoff, LEAD
    return Oracle(run, {"pulls": pulls, "device_ids": {}, "ledger": None}, [])


def test_the_oracle_reports_a_reminder_never_pulled_and_one_pulled_twice() -> None:
    pulls = [[*_board(), _task(assignee="ann")], [*_board(), _task("t2"), _task("t3")]]
    pulls[1] += [_notice("t2", "due-t2"), _notice("t3", "due-t3"), _notice("t3", "due-t3")]
    oracle = _oracle(pulls, NOW)
    oracle.check_reminders()
    verdict = oracle.verdict
    assert (verdict.reminders_expected, verdict.reminders_fired_once) == (3, 1)
    assert verdict.invariants == [
        "bob was reminded 2 times of task t3 due by due-t3",
        "ann was never reminded of task t1 due by due-t1 (its reminder was due 1 s before the "
        "run healed)",
    ]


def test_an_older_due_dates_reminder_is_legitimate_and_unknown_leads_are_not_checked() -> None:
    pulls = [[*_board()], [*_board(), _task("t2"), _notice("t2", "due-t2"), _notice("t2", "old")]]
    oracle = _oracle(pulls, NOW)
    oracle.check_reminders()
    assert oracle.verdict.invariants == []
    assert (oracle.verdict.reminders_expected, oracle.verdict.reminders_fired_once) == (1, 1)
    unchecked = _oracle([[*_board(), _task(assignee="ann")], []], None)
    unchecked.check_reminders()
    assert unchecked.verdict.invariants == [] and unchecked.verdict.reminders_expected == 0
