"""One hand-written conflict case per merge rule (SPEC section 5), exact resulting values.

Every case folds its events in every order (and with each event doubled) and asserts the
same values each time, so each row also shows that the rule is order-independent.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from protocol import Event, MergeError, derived_id, saga_hlc
from protocol.merge import EntityKey, fold, from_change, merge, meta, values
from tests.protocol.builders import BOARD, COMMENT, TASK, ev, event_id, hlc

TASK_KEY = EntityKey("task", TASK)
BOARD_KEY = EntityKey("board", BOARD)
COMMENT_KEY = EntityKey("comment", COMMENT)


def member_key(username: str) -> EntityKey:
    return EntityKey("member", f"{BOARD}/{username}")


def folded(events: list[Event], key: EntityKey) -> dict[str, Any] | None:
    """The values of ``key`` after folding, the same for every order and with duplicates."""
    results = []
    for order in itertools.permutations(events):
        results.append(_values(list(order), key))
        results.append(_values([*order, *order[::-1]], key))
    assert all(r == results[0] for r in results), "the fold depends on the order"
    return results[0]


def _values(events: list[Event], key: EntityKey) -> dict[str, Any] | None:
    state = fold(events).get(key)
    return None if state is None else values(state)


def created(title: str = "Write spec", at: int = 0, **payload: Any) -> Event:
    return ev("TaskCreated", {"title": title, "position": "a0", **payload}, at=hlc(at))


def updated(at: int, node: str = "d-a", id: str | None = None, **fields: Any) -> Event:
    return ev("TaskUpdated", {"fields": fields}, at=hlc(at, node=node), device=node, id=id)


TASK_DEFAULT_VALUES = {
    "title": "Write spec",
    "notes": "",
    "status": "todo",
    "priority": 0,
    "due": None,
    "assignee": None,
    "position": "a0",
    "labels": [],
    "deleted": False,
}


def test_taskcreated_writes_every_field_with_its_defaults() -> None:
    assert folded([created()], TASK_KEY) == TASK_DEFAULT_VALUES


def test_scalar_fields_last_writer_wins_by_hlc() -> None:
    events = [created(), updated(20, title="Late"), updated(10, node="d-b", title="Early")]
    assert folded(events, TASK_KEY)["title"] == "Late"  # type: ignore[index]


def test_an_hlc_tie_is_broken_by_event_id() -> None:
    low, high = event_id(100), event_id(200)
    events = [
        created(),
        updated(10, id=high, title="Higher id"),
        updated(10, id=low, title="Lower id"),
    ]
    assert folded(events, TASK_KEY)["title"] == "Higher id"  # type: ignore[index]


def test_concurrent_edits_of_different_fields_both_survive() -> None:
    events = [created(), updated(10, title="New title"), updated(10, node="d-b", priority=3)]
    result = folded(events, TASK_KEY)
    assert result == {**TASK_DEFAULT_VALUES, "title": "New title", "priority": 3}


def test_null_clears_a_field() -> None:
    events = [created(due="2026-12-01", assignee="bob"), updated(10, due=None)]
    result = folded(events, TASK_KEY)
    assert (result["due"], result["assignee"]) == (None, "bob")  # type: ignore[index]


def test_the_create_writes_at_its_hlc_so_older_edits_lose_and_newer_win() -> None:
    events = [created(at=10), updated(5, notes="older"), updated(20, priority=2)]
    result = folded(events, TASK_KEY)
    assert (result["notes"], result["priority"]) == ("", 2)  # type: ignore[index]


def test_an_edit_before_its_create_is_kept_and_shows_once_created() -> None:
    edit = updated(20, title="Renamed early")
    assert fold([edit])[TASK_KEY].created is False
    assert values(fold([edit])[TASK_KEY]) is None
    assert folded([edit, created(at=10)], TASK_KEY)["title"] == "Renamed early"  # type: ignore[index]


def test_a_label_add_wins_over_a_remove_that_did_not_observe_it() -> None:
    first = ev("TaskLabelAdded", {"label": "bug"}, at=hlc(10))
    concurrent = ev("TaskLabelAdded", {"label": "bug"}, at=hlc(11, node="d-b"), device="d-b")
    remove = ev("TaskLabelRemoved", {"label": "bug", "observed": [first.id]}, at=hlc(20))
    result = folded([created(), first, concurrent, remove], TASK_KEY)
    assert result["labels"] == ["bug"]  # type: ignore[index]


def test_a_remove_deletes_every_add_it_observed_even_arriving_first() -> None:
    add = ev("TaskLabelAdded", {"label": "bug"}, at=hlc(10))
    remove = ev("TaskLabelRemoved", {"label": "bug", "observed": [add.id]}, at=hlc(5))
    assert folded([created(labels=["ui"]), remove, add], TASK_KEY)["labels"] == ["ui"]  # type: ignore[index]


def test_labels_of_a_create_are_tags_a_remove_can_observe() -> None:
    create = created(labels=["ui", "bug"])
    remove = ev("TaskLabelRemoved", {"label": "ui", "observed": [create.id]}, at=hlc(10))
    assert folded([create, remove], TASK_KEY)["labels"] == ["bug"]  # type: ignore[index]


def test_an_edit_of_a_deleted_task_is_kept_but_does_not_undelete_it() -> None:
    delete = ev("TaskDeleted", at=hlc(10))
    edit = updated(20, node="d-b", title="Edited meanwhile")
    result = folded([created(), delete, edit], TASK_KEY)
    assert (result["deleted"], result["title"]) == (True, "Edited meanwhile")  # type: ignore[index]


def test_delete_and_restore_are_last_writer_wins() -> None:
    delete = ev("TaskDeleted", at=hlc(10))
    restore = ev("TaskRestored", at=hlc(20, node="d-b"), device="d-b")
    late_delete = ev("TaskDeleted", at=hlc(30))
    assert folded([created(), delete, restore], TASK_KEY)["deleted"] is False  # type: ignore[index]
    assert folded([created(), delete, restore, late_delete], TASK_KEY)["deleted"] is True  # type: ignore[index]


def test_a_compensation_beats_its_cause_and_loses_to_later_edits() -> None:
    cause = updated(10, status="doing", assignee="alice")
    compensation = ev(
        "TaskUpdated",
        {
            "fields": {"status": "todo", "deleted": False},
            "compensates": cause.id,
            "reason": "WIP limit",
        },
        at=saga_hlc(cause.hlc),
        id=derived_id("compensation", cause.id),
    )
    assert folded([created(), cause, compensation], TASK_KEY)["status"] == "todo"  # type: ignore[index]
    later = updated(11, node="d-b", status="done")
    assert folded([created(), cause, compensation, later], TASK_KEY)["status"] == "done"  # type: ignore[index]


def board_created(at: int = 0, actor: str = "alice") -> Event:
    return ev("BoardCreated", {"name": "Launch", "wip_limit": 2}, at=hlc(at), actor=actor)


def test_board_fields_are_last_writer_wins_and_the_creator_owns_it() -> None:
    events = [
        board_created(),
        ev("BoardUpdated", {"fields": {"name": "Old", "archived": True}}, at=hlc(10)),
        ev("BoardUpdated", {"fields": {"name": "New", "wip_limit": None}}, at=hlc(20)),
    ]
    assert folded(events, BOARD_KEY) == {
        "name": "New",
        "wip_limit": None,
        "archived": True,
        "owner": "alice",
    }


def test_membership_is_last_writer_wins_per_username() -> None:
    added = ev("MemberAdded", {"username": "bob"}, at=hlc(10))
    removed = ev("MemberRemoved", {"username": "bob"}, at=hlc(20))
    late_old_add = ev("MemberAdded", {"username": "bob"}, at=hlc(15, node="d-b"), device="d-b")
    result = folded([board_created(), added, removed, late_old_add], member_key("bob"))
    assert result == {"username": "bob", "role": "member", "removed": True}


def test_the_owner_is_always_a_member() -> None:
    removed = ev("MemberRemoved", {"username": "alice"}, at=hlc(20))
    result = folded([board_created(), removed], member_key("alice"))
    assert result == {"username": "alice", "role": "owner", "removed": False}


def comment_added(at: int = 0, actor: str = "bob") -> Event:
    return ev("CommentAdded", {"task": TASK, "body": "Ship it"}, at=hlc(at), actor=actor)


def test_a_comment_keeps_its_author_and_time_and_a_delete_hides_it_whatever_its_hlc() -> None:
    added = comment_added(at=30)
    assert folded([added], COMMENT_KEY) == {
        "task": TASK,
        "body": "Ship it",
        "author": "bob",
        "created_at": 1_764_136_800_030,
        "deleted": False,
    }
    delete_with_older_clock = ev("CommentDeleted", at=hlc(10, node="d-b"), device="d-b")
    assert folded([added, delete_with_older_clock], COMMENT_KEY)["deleted"] is True  # type: ignore[index]


def test_a_saga_notice_changes_no_view() -> None:
    create = created()
    notice = ev("WipLimitExceeded", {"assignee": "alice", "limit": 1, "cause": event_id()})
    assert fold([create, notice]) == fold([create])


def test_the_pull_change_round_trips_for_pending_events_to_fold_on_top() -> None:
    add = ev("TaskLabelAdded", {"label": "bug"}, at=hlc(10))
    confirmed = fold([created(), add, updated(5, priority=1)])[TASK_KEY]
    change = from_change("task", TASK, BOARD, values(confirmed) or {}, meta(confirmed))
    assert values(change) == values(confirmed)
    assert meta(change) == meta(confirmed)
    pending = [updated(7, node="d-b", priority=4), updated(3, node="d-b", title="stale")]
    assert values(fold(pending, {TASK_KEY: change})[TASK_KEY]) == values(
        fold(pending, {TASK_KEY: confirmed})[TASK_KEY]
    )


def test_meta_names_the_winning_write_of_each_field_and_the_tags_of_each_label() -> None:
    create = created(labels=["ui"])
    edit = updated(10, title="T2")
    result = meta(fold([create, edit])[TASK_KEY])
    assert result["fields"]["title"] == {"hlc": edit.hlc, "id": edit.id}
    assert result["fields"]["notes"] == {"hlc": create.hlc, "id": create.id}
    assert result["labels"] == {"ui": [create.id]}


def test_states_of_different_entities_do_not_merge() -> None:
    states = fold([created(), board_created()])
    with pytest.raises(MergeError):
        merge(states[TASK_KEY], states[BOARD_KEY])


def test_a_boardcreated_needs_its_actor_to_name_the_owner() -> None:
    from protocol import Writer, validate_event
    from tests.protocol.builders import raw

    event = validate_event(raw("BoardCreated", {"name": "x"}), Writer.DEVICE)
    with pytest.raises(MergeError, match="no actor"):
        fold([event])
