"""The github source: GitHub issue webhooks (``X-GitHub-Event: issues``).

Each issue is one task, named by the repository and the issue number. Actions:

| action | events |
| --- | --- |
| opened | TaskCreated: title, notes (the body), labels, assignee; status done if it is closed |
| edited | TaskUpdated: title and notes |
| closed, reopened | TaskUpdated: status done, or todo |
| labeled | TaskLabelAdded of the label |
| assigned, unassigned | TaskUpdated: assignee (the issue's first assignee, or none) |

Any other action or event (``ping`` included) is ignored (202). GitHub logins become
Outpost usernames through the board's login map (``outpost webhooks logins``); an unmapped
login is no assignee. The delivery id is ``X-GitHub-Delivery``; the hlc is the issue's
``updated_at``, so a redelivery writes the same events again (a ``duplicate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.gateway.errors import DeliveryUnreadable
from backend.gateway.signatures import verify_github
from backend.gateway.sources.common import (
    FIRST_POSITION,
    LABEL_MAX,
    LABELS_MAX,
    NOTES_MAX,
    TITLE_MAX,
    Delivery,
    EventMaker,
    Mapped,
    cut,
    parse_time_ms,
    task_id,
)

__all__ = ["ACTIONS", "kind_of", "translate", "verify"]

ACTIONS = ("opened", "edited", "closed", "reopened", "labeled", "assigned", "unassigned")


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    return verify_github(secret, body, headers)


def kind_of(body: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    action = body.get("action")
    return f"{headers.get('x-github-event', '')}.{action if isinstance(action, str) else ''}"


def translate(delivery: Delivery) -> Mapped:
    event, _, action = delivery.kind.partition(".")
    if event != "issues" or action not in ACTIONS:
        return Mapped([], ignored=f"GitHub {delivery.kind!r} is not an issue action we map")
    issue = _object(delivery.body, "issue")
    repository = _object(delivery.body, "repository")
    number = issue.get("number")
    name = repository.get("full_name")
    if not isinstance(number, int) or not isinstance(name, str):
        raise DeliveryUnreadable("issue.number and repository.full_name are required")
    maker = EventMaker(delivery, parse_time_ms(issue.get("updated_at"), "issue.updated_at"))
    task = task_id(delivery.board, delivery.source, f"{name}#{number}")
    if action == "opened":
        payload: dict[str, Any] = {"position": FIRST_POSITION, **_texts(issue)}
        labels = _labels(issue)
        if labels:
            payload["labels"] = labels
        assignee = _assignee(issue, delivery.usernames)
        if assignee is not None:
            payload["assignee"] = assignee
        if issue.get("state") == "closed":
            payload["status"] = "done"
        maker.add("TaskCreated", task, payload)
    elif action == "edited":
        maker.add("TaskUpdated", task, {"fields": _texts(issue)})
    elif action in ("closed", "reopened"):
        status = "done" if action == "closed" else "todo"
        maker.add("TaskUpdated", task, {"fields": {"status": status}})
    elif action == "labeled":
        label = _object(delivery.body, "label").get("name")
        if not isinstance(label, str) or not label:
            raise DeliveryUnreadable("label.name: expected the label's name")
        maker.add("TaskLabelAdded", task, {"label": cut(label, LABEL_MAX)})
    else:
        assignee = _assignee(issue, delivery.usernames)
        maker.add("TaskUpdated", task, {"fields": {"assignee": assignee}})
    return maker.mapped()


def _object(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = body.get(name)
    if not isinstance(value, Mapping):
        raise DeliveryUnreadable(f"{name}: expected an object")
    return value


def _texts(issue: Mapping[str, Any]) -> dict[str, Any]:
    title = issue.get("title")
    if not isinstance(title, str) or not title.strip():
        raise DeliveryUnreadable("issue.title: expected a non-empty string")
    notes = issue.get("body")
    return {
        "title": cut(title, TITLE_MAX),
        "notes": cut(notes if isinstance(notes, str) else "", NOTES_MAX),
    }


def _labels(issue: Mapping[str, Any]) -> list[str]:
    names = [
        cut(label["name"], LABEL_MAX)
        for label in issue.get("labels") or []
        if isinstance(label, Mapping) and isinstance(label.get("name"), str) and label["name"]
    ]
    return list(dict.fromkeys(names))[:LABELS_MAX]


def _assignee(issue: Mapping[str, Any], usernames: Mapping[str, str]) -> str | None:
    """The Outpost username of the issue's (first) assignee, or None when unmapped."""
    assignee = issue.get("assignee")
    if not isinstance(assignee, Mapping):
        assignees = issue.get("assignees") or []
        assignee = assignees[0] if assignees and isinstance(assignees[0], Mapping) else None
    login = assignee.get("login") if assignee is not None else None
    return usernames.get(login.lower()) if isinstance(login, str) else None
