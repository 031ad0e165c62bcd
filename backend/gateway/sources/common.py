"""What every inbound source shares: the delivery, the events it writes, texts cut to fit.

Events a source writes are the backend's (``Writer.BACKEND``): version 5 ids derived from
the delivery id (so a redelivery derives the same events, and the writer's id record makes
it a ``duplicate``), the device ``outpost-gateway``, and an hlc from a time in the delivery's
body (never the time of arrival: a redelivery must write the same bytes). Tasks are named by
an id derived from (board, source, external key), so an update or a close of the same
outside item reaches the same task. Texts longer than the catalog allows are cut with a
marker (``…``), never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backend.gateway.errors import DeliveryUnreadable
from protocol import Event, EventRejected, Writer, validate_event
from protocol.hlc import format_hlc
from protocol.ids import derived_id
from protocol.positions import position_after

__all__ = [
    "DEVICE",
    "Delivery",
    "EventMaker",
    "Mapped",
    "Source",
    "cut",
    "parse_time_ms",
    "task_id",
]

DEVICE = "outpost-gateway"
"""The device (and hlc node) of every event the gateway writes."""
MARKER = "…"
TITLE_MAX = 500
NOTES_MAX = 20_000
LABEL_MAX = 50
LABELS_MAX = 50
FIRST_POSITION = position_after(None)
"""Where tasks from outside go in their column: ties sort by task id."""


@dataclass(frozen=True)
class Delivery:
    """One verified delivery: its id (the idempotency key), its event, its parsed body."""

    source: str
    board: str
    delivery_id: str
    kind: str
    """What happened, in the source's words (``task.created``, ``issues``...)."""
    body: Mapping[str, Any]
    usernames: Mapping[str, str] = field(default_factory=dict)
    """The board's map of outside logins to Outpost usernames (GitHub)."""


@dataclass(frozen=True)
class Mapped:
    """What a delivery becomes: events to write, or why nothing is written."""

    events: list[Event]
    ignored: str | None = None
    """Why the delivery writes nothing (an action no mapping knows): answered 202."""


@dataclass(frozen=True)
class Source:
    name: str
    verify: Callable[[str, bytes, Mapping[str, str]], str]
    """(secret, body, lowercase headers) -> the delivery id; SignatureRefused if it fails."""
    kind: Callable[[Mapping[str, Any], Mapping[str, str]], str]
    """(parsed body, lowercase headers) -> what happened, in the source's words."""
    translate: Callable[[Delivery], Mapped]


def cut(text: str, limit: int) -> str:
    """``text`` fitted into ``limit`` code points, a cut one ending with the marker."""
    if len(text) <= limit:
        return text
    return text[: limit - len(MARKER)] + MARKER


def task_id(board: str, source: str, key: str) -> str:
    """The task an outside item (an issue, an external key) is on this board."""
    return derived_id("gateway-task", f"{board}:{source}:{key}")


def parse_time_ms(value: object, what: str) -> int:
    """Milliseconds of an ISO 8601 time (``2026-11-29T12:00:00Z``) from a delivery body."""
    if not isinstance(value, str):
        raise DeliveryUnreadable(f"{what}: expected an ISO 8601 time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DeliveryUnreadable(f"{what}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise DeliveryUnreadable(f"{what}: {value!r} has no time zone")
    ms = int(parsed.timestamp() * 1000)
    if not 10**12 <= ms < 10**13:
        raise DeliveryUnreadable(f"{what}: {value!r} is out of range")
    return ms


class EventMaker:
    """The events of one delivery, in order: ids and hlc counters derived from it."""

    def __init__(self, delivery: Delivery, wall_ms: int) -> None:
        self.delivery = delivery
        self.wall_ms = wall_ms
        self.events: list[Event] = []

    def add(self, type_: str, entity: str, payload: dict[str, Any]) -> None:
        delivery = self.delivery
        index = len(self.events)
        raw = {
            "id": derived_id(
                f"gateway-{delivery.source}", f"{delivery.board}:{delivery.delivery_id}:{index}"
            ),
            "type": type_,
            "schema": 1,
            "board": delivery.board,
            "entity": entity,
            "hlc": format_hlc(self.wall_ms, index, DEVICE),
            "device": DEVICE,
            "payload": payload,
        }
        try:
            self.events.append(validate_event(raw, Writer.BACKEND))
        except EventRejected as rejected:
            raise DeliveryUnreadable(
                f"the delivery makes no valid {type_}: {rejected.detail}"
            ) from None

    def mapped(self) -> Mapped:
        return Mapped(self.events)
