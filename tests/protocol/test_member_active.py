"""``is_active_member``: the one rule for "is this user on the board" (SPEC section 5), which
the BFF's authority, the projector's memberships, the pull's ``removed`` and the conflict
oracle all use."""

from __future__ import annotations

import itertools

import pytest

from protocol import Event
from protocol.merge import EntityKey, fold, is_active_member, values
from tests.protocol.builders import BOARD, ev, hlc


def member(username: str, *events: Event) -> bool:
    """Whether ``username`` is active after ``events``, the same in every order."""
    key = EntityKey("member", f"{BOARD}/{username}")
    answers = {is_active_member(fold(order).get(key)) for order in itertools.permutations(events)}
    assert len(answers) == 1, "the answer depends on the order"
    return answers.pop()


def created() -> Event:
    return ev("BoardCreated", {"name": "Launch", "wip_limit": 2}, at=hlc(0), actor="alice")


def added(at: int, username: str = "bob", node: str = "d-a") -> Event:
    return ev("MemberAdded", {"username": username}, at=hlc(at, node=node), device=node)


def removed(at: int, username: str = "bob") -> Event:
    return ev("MemberRemoved", {"username": username}, at=hlc(at))


def test_no_member_state_is_no_member() -> None:
    assert not is_active_member(None)
    assert not member("bob", created())


def test_the_owner_is_a_member_from_the_board_on_and_cannot_be_removed() -> None:
    assert member("alice", created())
    assert member("alice", created(), removed(20, "alice"))


def test_an_added_member_is_active_until_a_newer_remove() -> None:
    assert member("bob", created(), added(10))
    assert not member("bob", created(), added(10), removed(20))
    assert member("bob", created(), added(10), removed(20), added(30))


def test_a_late_add_with_an_older_hlc_does_not_undo_a_newer_remove() -> None:
    assert not member("bob", created(), added(10), removed(20), added(15, node="d-b"))


@pytest.mark.parametrize(
    "events",
    [
        [created()],
        [created(), removed(20, "alice")],
        [created(), added(10)],
        [created(), added(10), removed(20)],
        [added(10)],
    ],
    ids=["owner", "owner-removed", "added", "removed", "added-before-the-board"],
)
def test_the_pulled_removed_value_is_the_rule_negated(events: list[Event]) -> None:
    for state in fold(events).values():
        if state.kind == "member":
            assert values(state) is not None
            assert values(state)["removed"] is not is_active_member(state)  # type: ignore[index]
