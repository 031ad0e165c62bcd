"""Which reminders must exist at the end of a run, and which were pulled (SPEC 6c).

A task is reminded of its due date once its fire time (the due date's 00:00 UTC less the
backend's lead, ``backend.orchestrator.rules.reminder_fire_ms``) has come, if it is armed:
created, not deleted, not done, with a due date and an assignee. The reminder is a
``notice`` with ``reason: "reminder"`` for the assignee, whose ``cause`` is the task's last
due-date event (the event that wrote the merged ``due`` register).

From the final merged states of the users' pulls, ``expected`` names the reminders that
must exist: each armed task whose fire time is at or before ``cutoff_ms`` (when the run
had healed), on a board that is not archived, with an assignee who is an active member
(a notice is pulled only from the boards its user is a member of), as (assignee, task,
cause). Reminders that fired for an older due date, or before a task was finished, are
legitimate and not expected: only what is provable at the end is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from backend.orchestrator.rules import reminder_fire_ms
from protocol import merge
from protocol.merge import EntityKey, EntityState

__all__ = ["REMINDER_LEAD_S", "Expected", "expected", "missing", "pulled"]

REMINDER_LEAD_S = 24 * 3600.0
"""The lead the tool gives its own backend (``OUTPOST_REMINDER_LEAD_S``): the scenarios'
due dates are in 2026, so most are reminded at once and a few (December's) are not yet."""

Expected = tuple[str, str, str]
"""(assignee, task, cause)."""


def final_states(pulls: Sequence[list[dict[str, Any]]]) -> dict[EntityKey, EntityState]:
    """Every entity's merged state as the users' pulls show it (notices aside)."""
    states: dict[EntityKey, EntityState] = {}
    for changes in pulls:
        for change in changes:
            if change.get("removed") or change["values"] is None or change["kind"] == "notice":
                continue
            state = merge.from_change(
                change["kind"], change["id"], change["board"], change["values"], change["meta"]
            )
            states[state.key] = state
    return states


def expected(
    states: dict[EntityKey, EntityState], cutoff_ms: int, lead_s: float
) -> dict[Expected, int]:
    """The reminders that must exist at the end, with their fire times."""
    found: dict[Expected, int] = {}
    for key, task in states.items():
        if key.kind != "task" or not task.created:
            continue
        if task.value("deleted", False) or task.value("status") == "done":
            continue
        due, assignee = task.value("due"), task.value("assignee")
        if not isinstance(due, str) or not isinstance(assignee, str):
            continue
        board = states.get(EntityKey("board", task.board))
        if board is None or board.value("archived", False):
            continue
        member = states.get(EntityKey("member", merge.member_id(task.board, assignee)))
        if not merge.is_active_member(member):
            continue
        fire_ms = reminder_fire_ms(due, lead_s)
        if fire_ms <= cutoff_ms:
            found[(assignee, task.id, task.fields["due"].id)] = fire_ms
    return found


def pulled(pulls: Sequence[list[dict[str, Any]]], usernames: Sequence[str]) -> Counter[Expected]:
    """How many reminders each user pulled, by (user, task, cause)."""
    return Counter(
        (usernames[user], change["values"]["task"], change["values"]["cause"])
        for user, changes in enumerate(pulls)
        for change in changes
        if change["kind"] == "notice"
        and change["values"] is not None
        and change["values"]["reason"] == "reminder"
    )


def missing(
    pulls: Sequence[list[dict[str, Any]]], usernames: Sequence[str], cutoff_ms: int, lead_s: float
) -> list[Expected]:
    """The expected reminders no pull shows yet."""
    got = pulled(pulls, usernames)
    return sorted(r for r in expected(final_states(pulls), cutoff_ms, lead_s) if not got[r])
