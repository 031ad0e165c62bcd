"""Property tests: the merge rules converge whatever the order, duplicates or split.

Random event sets from three devices on one board, with hlc ties and ids drawn at random,
cover concurrent edits of the same and of different fields, delete against edit, restore,
label adds against removes, updates that arrive before their create, membership and
comments. Hypothesis runs at least 200 examples of each property (tests/conftest.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from protocol import Event
from protocol.merge import EntityKey, fold, from_change, keys_of, merge_all, meta, values
from tests.protocol.builders import BOARD, ev, hlc

DEVICES = {"d-a": "alice", "d-b": "bob", "d-c": "carol"}
TASKS = ["7a5c0000-0000-4000-8000-000000000001", "7a5c0000-0000-4000-8000-000000000002"]
COMMENTS = ["c0c0c0c0-0000-4000-8000-000000000001", "c0c0c0c0-0000-4000-8000-000000000002"]
LABELS = ["bug", "ui", "p1"]
TASK_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "title": st.sampled_from(["A", "B", "C"]),
    "notes": st.sampled_from(["", "n1", "n2"]),
    "status": st.sampled_from(["todo", "doing", "done"]),
    "priority": st.integers(0, 4),
    "due": st.sampled_from([None, "2026-12-01", "2027-01-31"]),
    "assignee": st.sampled_from([None, "alice", "bob"]),
    "position": st.sampled_from(["a0", "a1", "a0V"]),
}
TASK_TYPES = ["TaskUpdated", "TaskLabelAdded", "TaskLabelRemoved", "TaskDeleted", "TaskRestored"]
OTHER_TYPES = ["BoardUpdated", "MemberAdded", "MemberRemoved", "CommentAdded", "CommentDeleted"]


@st.composite
def event_sets(draw: st.DrawFn) -> list[Event]:
    """A set of distinct events on one board, as three devices could have made them."""
    count = draw(st.integers(1, 30))
    ids = [
        str(u)
        for u in draw(
            st.lists(st.uuids(version=4), min_size=count + 3, max_size=count + 3, unique=True)
        )
    ]
    adds: dict[tuple[str, str], list[str]] = defaultdict(list)
    events: list[Event] = []

    def make(type_: str, payload: dict[str, Any], entity: str | None = None) -> Event:
        device = draw(st.sampled_from(sorted(DEVICES)))
        at = hlc(draw(st.integers(0, 4)), draw(st.integers(0, 1)), node=device)
        event = ev(
            type_, payload, entity=entity, at=at, device=device, id=ids.pop(), actor=DEVICES[device]
        )
        events.append(event)
        return event

    if draw(st.booleans()):
        make("BoardCreated", {"name": "Board", "wip_limit": draw(st.sampled_from([None, 2]))})
    for task in TASKS:
        if draw(st.booleans()):  # sometimes never created: its events still count
            labels = draw(st.lists(st.sampled_from(LABELS), max_size=2, unique=True))
            create = make("TaskCreated", {"title": "T", "position": "a0", "labels": labels}, task)
            for label in labels:
                adds[(task, label)].append(create.id)
    for _ in range(count):
        type_ = draw(st.sampled_from(TASK_TYPES + OTHER_TYPES))
        task = draw(st.sampled_from(TASKS))
        label = draw(st.sampled_from(LABELS))
        if type_ == "TaskUpdated":
            names = draw(
                st.lists(st.sampled_from(sorted(TASK_FIELDS)), min_size=1, max_size=3, unique=True)
            )
            make(type_, {"fields": {n: draw(TASK_FIELDS[n]) for n in names}}, task)
        elif type_ == "TaskLabelAdded":
            adds[(task, label)].append(make(type_, {"label": label}, task).id)
        elif type_ == "TaskLabelRemoved":
            seen = (
                draw(st.lists(st.sampled_from(adds[(task, label)]), unique=True))
                if adds[(task, label)]
                else []
            )
            make(type_, {"label": label, "observed": seen}, task)
        elif type_ in ("TaskDeleted", "TaskRestored"):
            make(type_, {}, task)
        elif type_ == "BoardUpdated":
            fields = draw(
                st.sampled_from(
                    [{"name": "X"}, {"archived": True}, {"archived": False}, {"wip_limit": 3}]
                )
            )
            make(type_, {"fields": fields})
        elif type_ in ("MemberAdded", "MemberRemoved"):
            make(type_, {"username": draw(st.sampled_from(sorted(DEVICES.values())))})
        elif type_ == "CommentAdded":
            make(
                type_,
                {"task": task, "body": draw(st.sampled_from(["hi", "ok"]))},
                draw(st.sampled_from(COMMENTS)),
            )
        else:
            make(type_, {}, draw(st.sampled_from(COMMENTS)))
    return events


def _with_duplicates(events: list[Event], order: list[Event], doubled: list[bool]) -> list[Event]:
    return order + [e for e, twice in zip(events, doubled, strict=False) if twice]


@given(event_sets(), st.data())
def test_any_order_with_any_duplicates_folds_to_the_same_state(
    events: list[Event], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(events))
    doubled = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    assert fold(_with_duplicates(events, order, doubled)) == fold(events)


@given(event_sets(), st.data())
def test_merging_two_states_equals_folding_the_union_of_their_events(
    events: list[Event], data: st.DataObject
) -> None:
    sides = data.draw(
        st.lists(st.sampled_from(["a", "b", "both"]), min_size=len(events), max_size=len(events))
    )
    a = [e for e, s in zip(events, sides, strict=True) if s != "b"]
    b = [e for e, s in zip(events, sides, strict=True) if s != "a"]
    assert merge_all(fold(a), fold(b)) == fold(events)


@given(event_sets(), st.data())
def test_merge_is_commutative_associative_and_idempotent(
    events: list[Event], data: st.DataObject
) -> None:
    parts = data.draw(st.lists(st.integers(0, 2), min_size=len(events), max_size=len(events)))
    x, y, z = (fold([e for e, p in zip(events, parts, strict=True) if p == i]) for i in range(3))
    assert merge_all(x, y) == merge_all(y, x)
    assert merge_all(merge_all(x, y), z) == merge_all(x, merge_all(y, z))
    assert merge_all(x, x) == x
    assert merge_all(merge_all(x, y), y) == merge_all(x, y)


@given(event_sets())
def test_a_remove_never_deletes_an_add_it_did_not_observe(events: list[Event]) -> None:
    observed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in events:
        if e.type == "TaskLabelRemoved":
            observed[(e.entity, e.payload.label)].update(e.payload.observed)  # type: ignore[union-attr]
    states = fold(events)
    for e in events:
        labels = (
            e.payload.labels
            if e.type == "TaskCreated"
            # type: ignore[union-attr]
            else (
                [e.payload.label] if e.type == "TaskLabelAdded" else []  # type: ignore[union-attr]
            )
        )
        for label in labels:
            if e.id not in observed[(e.entity, label)]:
                assert label in states[EntityKey("task", e.entity)].labels()


@given(event_sets(), st.data())
def test_pending_events_on_a_pulled_change_give_what_the_server_will_fold(
    events: list[Event], data: st.DataObject
) -> None:
    """The client's view (a pulled change + its pending events) equals the server's fold."""
    pending_flags = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    confirmed = [e for e, p in zip(events, pending_flags, strict=True) if not p]
    pending = [e for e, p in zip(events, pending_flags, strict=True) if p]
    pending_ids = {e.id for e in pending}
    # A device can only observe adds it has: no confirmed remove observes a pending add.
    assume(
        not any(
            e.type == "TaskLabelRemoved" and pending_ids & set(e.payload.observed)  # type: ignore[union-attr]
            for e in confirmed
        )
    )
    pulled = {}
    for key, state in fold(confirmed).items():
        change_values = values(state)
        if change_values is not None:
            pulled[key] = from_change(key.kind, key.id, BOARD, change_values, meta(state))
    local = fold(pending, pulled)
    server = fold(events)
    # Entities the server holds but does not show yet (edits before their create) are not
    # pulled; a device cannot create one of those itself, as it cannot know its id.
    hidden = {k for e in confirmed for k in keys_of(e)} - pulled.keys()
    for key, state in local.items():
        if key not in hidden:
            assert values(state) == values(server[key])
