"""The inbound mapping modules alone (pure functions): a delivery becomes the events SPEC's
catalog takes, with ids derived from the delivery, and texts cut instead of refused."""

from __future__ import annotations

from typing import Any

import pytest

from backend.gateway.errors import DeliveryUnreadable
from backend.gateway.sources import generic, github
from backend.gateway.sources.common import MARKER, Delivery, task_id
from protocol import Writer, encode_event, uuid_version, validate_event
from protocol.catalog import TaskCreated, TaskLabelAdded, TaskUpdated

BOARD = "0190f7a0-0000-7000-8000-000000000001"


def issue(**fields: Any) -> dict[str, Any]:
    return {
        "number": 7,
        "title": "Crash on start",
        "body": "It crashes.",
        "state": "open",
        "labels": [{"name": "bug"}],
        "assignee": {"login": "Octocat"},
        "updated_at": "2026-11-29T12:00:00Z",
        **fields,
    }


def github_delivery(action: str, delivery: str = "d-1", **body: Any) -> Delivery:
    return Delivery(
        source="github",
        board=BOARD,
        delivery_id=delivery,
        kind=f"issues.{action}",
        body={
            "action": action,
            "issue": issue(),
            "repository": {"full_name": "acme/rocket"},
            **body,
        },
        usernames={"octocat": "alice"},
    )


def test_an_opened_issue_is_a_task_created_with_its_labels_and_mapped_assignee() -> None:
    [event] = github.translate(github_delivery("opened")).events
    assert event.type == "TaskCreated"
    assert event.entity == task_id(BOARD, "github", "acme/rocket#7")
    payload = event.payload
    assert isinstance(payload, TaskCreated)
    assert (payload.title, payload.notes, payload.labels) == (
        "Crash on start",
        "It crashes.",
        ["bug"],
    )
    assert payload.assignee == "alice"
    assert uuid_version(event.id) == 5
    assert event.hlc == "1795953600000:00000:outpost-gateway"
    # what the writer takes: the backend's validation accepts it as it is
    validate_event(__import__("json").loads(encode_event(event)), Writer.BACKEND)


def test_an_unmapped_login_is_no_assignee() -> None:
    delivery = github_delivery("opened")
    unmapped = Delivery(**{**delivery.__dict__, "usernames": {}})
    [event] = github.translate(unmapped).events
    assert isinstance(event.payload, TaskCreated)
    assert event.payload.assignee is None
    [assigned] = github.translate(
        Delivery(**{**unmapped.__dict__, "kind": "issues.assigned"})
    ).events
    assert isinstance(assigned.payload, TaskUpdated)
    assert assigned.payload.fields.items() == {"assignee": None}


def test_labeled_closed_and_reopened_reach_the_same_task() -> None:
    labeled = github_delivery("labeled", "d-2", label={"name": "p1"})
    closed = github_delivery("closed", "d-3")
    reopened = github_delivery("reopened", "d-4")
    [label] = github.translate(labeled).events
    [close] = github.translate(closed).events
    [reopen] = github.translate(reopened).events
    assert isinstance(label.payload, TaskLabelAdded) and label.payload.label == "p1"
    assert isinstance(close.payload, TaskUpdated) and close.payload.fields.items() == {
        "status": "done"
    }
    assert isinstance(reopen.payload, TaskUpdated)
    assert reopen.payload.fields.items() == {"status": "todo"}
    assert label.entity == close.entity == reopen.entity
    assert len({label.id, close.id, reopen.id}) == 3


def test_a_redelivery_derives_the_same_events_and_another_delivery_other_ids() -> None:
    first = github.translate(github_delivery("opened", "d-1")).events
    again = github.translate(github_delivery("opened", "d-1")).events
    other = github.translate(github_delivery("opened", "d-9")).events
    assert [encode_event(e) for e in first] == [encode_event(e) for e in again]
    assert first[0].id != other[0].id


def test_texts_too_long_are_cut_with_a_marker_never_refused() -> None:
    long = github_delivery(
        "opened",
        issue=issue(title="t" * 900, body="b" * 30_000, labels=[{"name": "l" * 80}]),
    )
    [event] = github.translate(long).events
    payload = event.payload
    assert isinstance(payload, TaskCreated)
    assert len(payload.title) == 500 and payload.title.endswith(MARKER)
    assert len(payload.notes) == 20_000 and payload.notes.endswith(MARKER)
    assert payload.labels == ["l" * 49 + MARKER]


@pytest.mark.parametrize("kind", ["issues.deleted", "issues.milestoned", "ping.", "push."])
def test_an_unknown_action_writes_nothing(kind: str) -> None:
    mapped = github.translate(Delivery(**{**github_delivery("opened").__dict__, "kind": kind}))
    assert mapped.events == [] and mapped.ignored


def test_a_github_body_without_an_issue_is_unreadable() -> None:
    delivery = Delivery(
        source="github",
        board=BOARD,
        delivery_id="d",
        kind="issues.opened",
        body={"action": "opened"},
    )
    with pytest.raises(DeliveryUnreadable, match="issue"):
        github.translate(delivery)


def generic_delivery(kind: str, data: dict[str, Any], delivery: str = "msg_1") -> Delivery:
    return Delivery(
        source="generic",
        board=BOARD,
        delivery_id=delivery,
        kind=kind,
        body={"type": kind, "timestamp": "2026-11-29T12:00:00.250Z", "data": data},
    )


def test_generic_creates_updates_and_closes_a_task_by_its_key() -> None:
    [created] = generic.translate(
        generic_delivery("task.created", {"key": "T-1", "title": "Call", "labels": ["ops"]})
    ).events
    updated = generic.translate(
        generic_delivery("task.updated", {"key": "T-1", "priority": 3, "labels": ["x"]}, "msg_2")
    ).events
    [closed] = generic.translate(generic_delivery("task.closed", {"key": "T-1"}, "msg_3")).events
    assert isinstance(created.payload, TaskCreated) and created.payload.labels == ["ops"]
    assert created.hlc.startswith("1795953600250:00000:")
    assert [e.type for e in updated] == ["TaskUpdated", "TaskLabelAdded"]
    assert updated[1].hlc.split(":")[1] == "00001"
    assert isinstance(closed.payload, TaskUpdated)
    assert closed.payload.fields.items() == {"status": "done"}
    assert {created.entity, closed.entity, *(e.entity for e in updated)} == {
        task_id(BOARD, "generic", "T-1")
    }


def test_generic_ignores_other_types() -> None:
    mapped = generic.translate(generic_delivery("invoice.paid", {"key": "T-1"}))
    assert mapped.events == [] and "invoice.paid" in (mapped.ignored or "")


@pytest.mark.parametrize(
    ("kind", "data", "why"),
    [
        ("task.created", {"title": "No key"}, "data.key"),
        ("task.created", {"key": "T"}, "data.title"),
        ("task.updated", {"key": "T", "priority": 9}, "TaskUpdated"),
        ("task.updated", {"key": "T", "labels": "bug"}, "data.labels"),
    ],
)
def test_generic_bodies_it_cannot_read_are_refused(
    kind: str, data: dict[str, Any], why: str
) -> None:
    with pytest.raises(DeliveryUnreadable, match=why):
        generic.translate(generic_delivery(kind, data))


def test_a_generic_body_without_a_timestamp_is_refused() -> None:
    delivery = Delivery(
        source="generic",
        board=BOARD,
        delivery_id="m",
        kind="task.closed",
        body={"type": "task.closed", "data": {"key": "T"}},
    )
    with pytest.raises(DeliveryUnreadable, match="timestamp"):
        generic.translate(delivery)
