"""Bodies of the gateway's routes."""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol import patterns

Username = Annotated[str, msgspec.Meta(pattern=patterns.anchored(patterns.USERNAME))]


class EndpointRequest(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class EndpointCreated(msgspec.Struct):
    """A new endpoint, with its secret: shown this once, never again."""

    id: str
    board: str
    url: str
    secret: str
    created_at: int


class EndpointInfo(msgspec.Struct):
    id: str
    board: str
    url: str
    created_at: int
    pending: int
    delivered: int
    failed: int


class Try(msgspec.Struct):
    at: int
    status: int | None
    error: str | None
    duration_ms: int


class DeliveryInfo(msgspec.Struct):
    id: str
    """The ``webhook-id`` header of every try."""
    event_id: str
    event_type: str
    seq: int
    status: str
    attempts: int
    next_at: int | None
    created_at: int
    done_at: int | None
    last_status: int | None
    last_error: str | None
    tries: list[Try]


class SourceCreated(msgspec.Struct):
    """A source registered on a board, with its secret: shown this once, never again."""

    source: str
    board: str
    secret: str
    path: str
    """Where the outside system sends its deliveries (``POST``)."""


class SourceInfo(msgspec.Struct):
    source: str
    board: str
    owner: str
    created_at: int
    path: str


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Username


class LoginInfo(msgspec.Struct):
    login: str
    username: str


class WrittenEvent(msgspec.Struct, omit_defaults=True):
    id: str
    type: str
    status: str
    seq: int | None = None
    reason: str | None = None
    detail: str | None = None


class InboundResult(msgspec.Struct, omit_defaults=True):
    delivery: str
    status: str
    """``written`` (events accepted), ``duplicate`` (a redelivery: nothing new),
    ``ignored`` (an action no mapping knows) or ``rejected`` (the writer refused them)."""
    events: list[WrittenEvent] = msgspec.field(default_factory=list)
    detail: str | None = None
