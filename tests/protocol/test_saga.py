"""The saga's pure rules: what can be a cause, what a compensation restores and how it is
stamped, and that the backend's own events pass the backend's validation."""

from __future__ import annotations

import msgspec
import pytest

from protocol import EventRejected, Writer, decode_event, encode_event, merge
from protocol.merge import EntityKey
from protocol.saga import (
    PossibleCause,
    compensation,
    could_cause,
    is_cause,
    is_compensation,
    possible_cause,
    prior_values,
    rejection_message,
    wip_assignee,
    wip_limit,
    wip_limit_exceeded,
    won_saga_field,
)
from tests.protocol.builders import BOARD, TASK, ev, hlc

CREATE = {"title": "t", "position": "a0", "assignee": "carol"}


def fold(*events: object) -> merge.EntityState:
    state = merge.new_state(EntityKey("task", TASK), events[0].board)  # type: ignore[attr-defined]
    for event in events:
        state = merge.apply(state, event)  # type: ignore[arg-type]
    return state


def test_only_device_writes_of_status_assignee_or_deleted_can_cause() -> None:
    assert could_cause(ev("TaskCreated", CREATE))
    assert could_cause(ev("TaskUpdated", {"fields": {"status": "doing"}}))
    assert could_cause(ev("TaskDeleted")) and could_cause(ev("TaskRestored"))
    assert not could_cause(ev("TaskUpdated", {"fields": {"title": "x"}}))
    assert not could_cause(ev("TaskLabelAdded", {"label": "x"}))
    undo = ev(
        "TaskUpdated",
        {"fields": {"status": "todo"}, "compensates": TASK, "reason": "over"},
    )
    assert is_compensation(undo) and not could_cause(undo)


def test_a_task_counts_against_its_assignee_only_in_doing_and_not_deleted() -> None:
    created = ev("TaskCreated", {**CREATE, "status": "doing"}, at=hlc(1))
    assert wip_assignee(fold(created)) == "carol"
    assert wip_assignee(fold(created, ev("TaskDeleted", at=hlc(2)))) is None
    unassigned = ev("TaskUpdated", {"fields": {"assignee": None}}, at=hlc(3))
    assert wip_assignee(fold(created, unassigned)) is None
    early = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(1))
    assert wip_assignee(fold(early)) is None, "not created yet: counts for no one"


def test_a_cause_that_lost_the_merge_did_not_win_a_saga_field() -> None:
    created = ev("TaskCreated", CREATE, at=hlc(1))
    newer = ev("TaskUpdated", {"fields": {"status": "done"}}, at=hlc(9))
    late_loser = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(5))
    assert not won_saga_field(fold(created, newer, late_loser), late_loser)
    assert won_saga_field(fold(created, late_loser), late_loser)


def test_a_move_to_doing_that_won_is_a_cause_only_past_the_limit() -> None:
    created = ev("TaskCreated", CREATE, at=hlc(1))
    moved = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(2))
    before, after = fold(created), fold(created, moved)
    assert possible_cause(moved, before, after, 1) == PossibleCause("carol", 1)
    assert is_cause(moved, before, after, limit=1, load=2)
    assert not is_cause(moved, before, after, limit=1, load=1), "at the limit is not over it"
    assert not is_cause(moved, before, after, limit=None, load=9), "no limit, no cause"


def test_a_created_restored_or_reassigned_task_can_take_its_assignee_over() -> None:
    doing = ev("TaskCreated", {**CREATE, "status": "doing"}, at=hlc(1))
    assert is_cause(doing, None, fold(doing), limit=1, load=2)
    deleted = ev("TaskDeleted", at=hlc(2))
    restored = ev("TaskRestored", at=hlc(3))
    state = fold(doing, deleted)
    assert is_cause(restored, state, fold(doing, deleted, restored), limit=1, load=2)
    to_dave = ev("TaskUpdated", {"fields": {"assignee": "dave"}}, at=hlc(4))
    assert possible_cause(to_dave, fold(doing), fold(doing, to_dave), 1) == PossibleCause("dave", 1)


def test_no_cause_without_a_new_assignee_a_won_merge_or_a_device_write() -> None:
    doing = ev("TaskCreated", {**CREATE, "status": "doing"}, at=hlc(1))
    again = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(2))
    assert not is_cause(again, fold(doing), fold(doing, again), 1, 9), "already counted"
    newer = ev("TaskUpdated", {"fields": {"status": "done"}}, at=hlc(9))
    late = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(5))
    before = fold(doing, newer)
    assert not is_cause(late, before, fold(doing, newer, late), 1, 9), "lost the merge"
    title = ev("TaskUpdated", {"fields": {"title": "x"}}, at=hlc(3))
    todo = ev("TaskCreated", CREATE, at=hlc(1))
    assert not is_cause(title, fold(todo), fold(todo, title), 1, 9)
    undo = ev(
        "TaskUpdated",
        {"fields": {"status": "doing"}, "compensates": TASK, "reason": "over"},
        at=hlc(3),
    )
    assert not is_cause(undo, fold(todo), fold(todo, undo), 1, 9), "never a compensation"
    early = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(1))
    assert not is_cause(early, None, fold(early), 1, 9), "a task not yet created counts not"


def test_the_limit_is_the_boards_wip_limit_when_it_has_one() -> None:
    board = EntityKey("board", BOARD)
    with_limit = ev("BoardCreated", {"name": "b", "wip_limit": 2}, entity=BOARD)
    without = ev("BoardCreated", {"name": "b", "wip_limit": None}, entity=BOARD)
    assert wip_limit(merge.fold([with_limit])[board]) == 2
    assert wip_limit(merge.fold([without])[board]) is None
    assert wip_limit(None) is None


@pytest.mark.parametrize(
    ("before", "cause", "restored"),
    [
        (None, ("TaskCreated", {**CREATE, "status": "doing"}), {
            "status": "todo", "assignee": None, "deleted": False}),
        ({"status": "todo"}, ("TaskUpdated", {"fields": {"status": "doing"}}), {
            "status": "todo"}),
        ({"status": "done"}, ("TaskUpdated", {"fields": {"status": "doing"}}), {
            "status": "done"}),
        ({"status": "doing"}, ("TaskUpdated", {"fields": {"assignee": "dave"}}), {
            "assignee": "carol", "status": "todo"}),
        ({"status": "doing", "deleted": True}, ("TaskRestored", {}), {
            "deleted": True, "status": "todo"}),
    ],
    ids=["created", "moved-from-todo", "moved-from-done", "reassigned", "restored"],
)  # fmt: skip
def test_a_compensation_restores_what_the_cause_changed_and_leaves_doing(
    before: dict[str, object] | None, cause: tuple[str, dict[str, object]], restored: object
) -> None:
    state = None
    if before is not None:
        events = [ev("TaskCreated", CREATE, at=hlc(1))]
        fields = {k: v for k, v in before.items() if k != "deleted"}
        events.append(ev("TaskUpdated", {"fields": fields}, at=hlc(2)))
        if before.get("deleted"):
            events.append(ev("TaskDeleted", at=hlc(3)))
        state = fold(*events)
    assert prior_values(state, ev(*cause, at=hlc(10))) == restored


def test_the_backend_events_are_stamped_as_spec_5_says_and_pass_backend_validation() -> None:
    cause = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(10, 3, "d-bob"))
    exceeded = wip_limit_exceeded(cause, "carol", 2, now_ms=1)
    undo = compensation(exceeded, cause.hlc, {"status": "todo"}, now_ms=2)
    assert undo.hlc == cause.hlc + "~saga" > cause.hlc
    assert undo.hlc < hlc(10, 4, "d-alice"), "any later edit wins over it"
    assert undo.payload.compensates == cause.id  # type: ignore[union-attr]
    assert undo.payload.reason == (  # type: ignore[union-attr]
        "Moved back to To do: carol already has 2 tasks in Doing, the board's limit"
    )
    again = compensation(wip_limit_exceeded(cause, "carol", 2, now_ms=5), cause.hlc, {
        "status": "todo"}, now_ms=6)  # fmt: skip
    assert (again.id, exceeded.id) == (undo.id, wip_limit_exceeded(cause, "carol", 2, 9).id)
    for event in (exceeded, undo):
        decoded = decode_event(encode_event(event), Writer.BACKEND)
        assert msgspec.structs.asdict(decoded) == msgspec.structs.asdict(event)
    with pytest.raises(EventRejected, match="version 5 is reserved for the backend"):
        decode_event(encode_event(undo), Writer.DEVICE)


def _notice_of(cause: object, before: merge.EntityState | None, assignee: str = "carol") -> str:
    exceeded = wip_limit_exceeded(cause, assignee, 1, now_ms=1)  # type: ignore[arg-type]
    undo = compensation(exceeded, cause.hlc, prior_values(before, cause), now_ms=2)  # type: ignore[arg-type, attr-defined]
    return str(undo.payload.reason)  # type: ignore[union-attr]


def test_a_notice_names_the_assignee_it_cleared_when_the_same_save_set_it() -> None:
    unassigned = fold(ev("TaskCreated", {"title": "t", "position": "a0"}, at=hlc(1)))
    save = ev("TaskUpdated", {"fields": {"status": "doing", "assignee": "carol"}}, at=hlc(5))
    assert _notice_of(save, unassigned) == (
        "Moved back to To do and no longer assigned to carol: carol already has 1 task in "
        "Doing, the board's limit"
    )


def test_a_notice_names_the_assignee_it_gave_back() -> None:
    doing = fold(
        ev("TaskCreated", CREATE, at=hlc(1)),
        ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(2)),
    )
    reassign = ev("TaskUpdated", {"fields": {"assignee": "dave"}}, at=hlc(5))
    assert _notice_of(reassign, doing, "dave") == (
        "Moved back to To do and assigned back to carol: dave already has 1 task in Doing, "
        "the board's limit"
    )


def test_a_notice_of_a_new_task_names_its_assignee_and_a_restore_its_deletion() -> None:
    created = ev("TaskCreated", {**CREATE, "status": "doing"}, at=hlc(1))
    assert _notice_of(created, None) == (
        "Moved back to To do and no longer assigned to carol: carol already has 1 task in "
        "Doing, the board's limit"
    )
    deleted = fold(
        ev("TaskCreated", {**CREATE, "status": "doing"}, at=hlc(1)),
        ev("TaskDeleted", at=hlc(2)),
    )
    assert _notice_of(ev("TaskRestored", at=hlc(5)), deleted) == (
        "Deleted again and moved back to To do: carol already has 1 task in Doing, "
        "the board's limit"
    )


def test_a_notice_of_a_move_alone_names_the_column_only() -> None:
    todo = fold(ev("TaskCreated", CREATE, at=hlc(1)))
    move = ev("TaskUpdated", {"fields": {"status": "doing"}}, at=hlc(5))
    assert _notice_of(move, todo) == (
        "Moved back to To do: carol already has 1 task in Doing, the board's limit"
    )


@pytest.mark.parametrize(
    ("event_type", "detail", "message"),
    [
        ("MemberAdded", "payload.username: no user named 'nosuchuser'",
         "Your change (sharing) was not saved: there is no user named 'nosuchuser'."),
        ("TaskUpdated", "payload.fields.deleted: written by the backend only (send TaskDeleted)",
         "Your change (task edit) was not saved: the task's deletion: written by the backend only "
         "(send TaskDeleted)."),
        ("BoardUpdated", "payload.fields.wip_limit: Expected `int` >= 1",
         "Your change (board change) was not saved: the limit on tasks in Doing: Expected "
         "`int` >= 1."),
        ("TaskCreated", "board b1 is not shared with you",
         "Your change (new task) was not saved: board b1 is not shared with you."),
    ],
)  # fmt: skip
def test_a_rejection_notice_names_no_field_path(event_type: str, detail: str, message: str) -> None:
    assert rejection_message(event_type, detail) == message
    assert "payload." not in message
