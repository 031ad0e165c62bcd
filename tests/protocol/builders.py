"""Readable event construction for protocol tests."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from protocol import Event, Writer, validate_event

BOARD = "0b0b0b0b-0000-4000-8000-000000000001"
TASK = "7a5c0000-0000-4000-8000-000000000001"
COMMENT = "c0c0c0c0-0000-4000-8000-000000000001"
T0 = 1_764_136_800_000

_serial = itertools.count(1)


def event_id(n: int | None = None) -> str:
    """A v4 id; with ``n``, a fixed one whose order follows ``n``."""
    number = next(_serial) if n is None else n
    return str(uuid.UUID(f"00000000-0000-4000-8000-{number:012x}"))


def hlc(ms_after_t0: int, counter: int = 0, node: str = "d-a") -> str:
    return f"{T0 + ms_after_t0:013d}:{counter:05d}:{node}"


def raw(
    type_: str,
    payload: dict[str, Any] | None = None,
    *,
    entity: str | None = None,
    board: str = BOARD,
    at: str | None = None,
    id: str | None = None,
    device: str = "d-a",
    **extra: Any,
) -> dict[str, Any]:
    """The JSON object of an event, as a device would send it."""
    default_entity = {"Board": board, "Membe": board, "Comme": COMMENT}.get(type_[:5], TASK)
    return {
        "id": id or event_id(),
        "type": type_,
        "schema": 1,
        "board": board,
        "entity": entity or default_entity,
        "hlc": at or hlc(0, node=device),
        "device": device,
        "payload": payload if payload is not None else {},
        **extra,
    }


def ev(
    type_: str, payload: dict[str, Any] | None = None, *, actor: str = "alice", **kw: Any
) -> Event:
    """A validated event as the backend stores it (with its actor)."""
    return validate_event(raw(type_, payload, actor=actor, **kw), Writer.BACKEND)
