"""The generic source: Standard Webhooks signed JSON that creates, updates and closes tasks
by an external key.

Body (the Standard Webhooks payload shape)::

    {"type": "task.created" | "task.updated" | "task.closed",
     "timestamp": "2026-11-29T12:00:00Z",
     "data": {"key": "TICKET-42", "title": "...", "notes": "...", "priority": 0..4,
              "due": "YYYY-MM-DD" | null, "labels": ["..."], "assignee": "username" | null}}

``key`` names the outside item (any string): every delivery with the same key reaches the
same task. ``task.created`` needs ``title``; ``task.updated`` sets the fields it names
(``status`` too); ``task.closed`` moves the task to done. Titles, notes and labels too long
for the catalog are cut with a marker. Any other ``type`` is ignored (202). The delivery id
is ``webhook-id``; the hlc is the body's ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.gateway.errors import DeliveryUnreadable
from backend.gateway.signatures import verify_standard
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

__all__ = ["ACTIONS", "translate", "verify"]

ACTIONS = ("task.created", "task.updated", "task.closed")
_FIELDS = ("title", "notes", "status", "priority", "due", "assignee")


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    return verify_standard(secret, body, headers)


def kind_of(body: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    kind = body.get("type")
    return kind if isinstance(kind, str) else ""


def translate(delivery: Delivery) -> Mapped:
    if delivery.kind not in ACTIONS:
        return Mapped([], ignored=f"type {delivery.kind!r} is not one of {', '.join(ACTIONS)}")
    body = delivery.body
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise DeliveryUnreadable("data: expected an object with a `key`")
    key = data.get("key")
    if not isinstance(key, str) or not key:
        raise DeliveryUnreadable("data.key: expected a non-empty string naming the outside item")
    maker = EventMaker(delivery, parse_time_ms(body.get("timestamp"), "timestamp"))
    task = task_id(delivery.board, delivery.source, key)
    if delivery.kind == "task.created":
        maker.add("TaskCreated", task, _created(data))
    elif delivery.kind == "task.updated":
        fields = _fields(data)
        if fields:
            maker.add("TaskUpdated", task, {"fields": fields})
        for label in _labels(data):
            maker.add("TaskLabelAdded", task, {"label": label})
        if not maker.events:
            return Mapped([], ignored="task.updated names no field to change")
    else:
        maker.add("TaskUpdated", task, {"fields": {"status": "done"}})
    return maker.mapped()


def _created(data: Mapping[str, Any]) -> dict[str, Any]:
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise DeliveryUnreadable("data.title: task.created needs a non-empty title")
    payload: dict[str, Any] = {"position": FIRST_POSITION, **_fields(data)}
    labels = _labels(data)
    if labels:
        payload["labels"] = labels
    return payload


def _fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The task fields the body names, texts cut to fit (the rest the catalog checks)."""
    fields = {name: data[name] for name in _FIELDS if name in data}
    if isinstance(fields.get("title"), str):
        fields["title"] = cut(fields["title"], TITLE_MAX)
    if isinstance(fields.get("notes"), str):
        fields["notes"] = cut(fields["notes"], NOTES_MAX)
    return fields


def _labels(data: Mapping[str, Any]) -> list[str]:
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DeliveryUnreadable("data.labels: expected a list of strings")
    fitted = [cut(label, LABEL_MAX) for label in labels if label]
    return list(dict.fromkeys(fitted))[:LABELS_MAX]
