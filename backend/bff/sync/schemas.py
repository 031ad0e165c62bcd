"""Bodies of the sync routes (SPEC section 6)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from protocol import patterns


class PushRequest(msgspec.Struct, forbid_unknown_fields=True):
    device: Annotated[str, msgspec.Meta(pattern=patterns.anchored(patterns.DEVICE_ID))]
    protocol: int
    events: list[msgspec.Raw]
    """Kept raw: each event is validated on its own, so one bad event is only that
    event's ``invalid`` and the canonical hash sees exactly what the device sent."""


class PushResult(msgspec.Struct, omit_defaults=True):
    id: str
    status: str
    seq: int | None = None
    reason: str | None = None
    detail: str | None = None


class PushResponse(msgspec.Struct):
    results: list[PushResult]
    server_time: int
    watermark: int
    generation: str


class Change(msgspec.Struct, omit_defaults=True):
    """One entity's current state in a pull (SPEC section 6); a board the user lost comes
    with ``removed`` and no values."""

    kind: str
    id: str
    board: str
    version: int
    values: dict[str, Any] | None
    meta: dict[str, Any] | None = None
    removed: bool = False


class PullResponse(msgspec.Struct):
    """A pull page, as documented: the handler writes the same shape from stored JSON."""

    changes: list[Change]
    cursor: str
    has_more: bool
    watermark: int
    server_time: int
    generation: str
    reset: bool


class SyncInfo(msgspec.Struct):
    protocols: list[int]
    max_batch_events: int
    max_batch_bytes: int
    generation: str
