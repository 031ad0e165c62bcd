"""Every error the protocol package raises.

    ProtocolError                 base of all of them
    ├── EventRejected             an event its writer may not send; carries the push
    │                             ``reason`` (invalid, unknown_type, unsupported_schema,
    │                             forbidden) and a detail that names the field
    ├── UnreadableEvent           no readable ``id``: the batch itself is malformed (HTTP 422)
    ├── ClockError                an hlc string that does not parse
    ├── PositionError             a fractional position that is not a key, or bounds out of order
    └── MergeError                states of different entities merged, or an event that cannot
                                  be folded (a BoardCreated without its actor)

The HTTP layer and the client turn these into answers and notices; nothing here does I/O.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ClockError",
    "EventRejected",
    "MergeError",
    "PositionError",
    "ProtocolError",
    "Reason",
    "UnreadableEvent",
]


class Reason(StrEnum):
    """Why a pushed event was rejected (SPEC section 6). Only ``CLOCK_SKEW`` is temporary."""

    INVALID = "invalid"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    FORBIDDEN = "forbidden"
    ARCHIVED = "archived"
    ID_CONFLICT = "id_conflict"
    CLOCK_SKEW = "clock_skew"

    @property
    def is_final(self) -> bool:
        return self is not Reason.CLOCK_SKEW


class ProtocolError(Exception):
    """Base class of every error of the protocol package."""


class EventRejected(ProtocolError):
    """An event that its writer may not send, with the push ``reason`` and a readable detail."""

    def __init__(self, reason: Reason, detail: str, event_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_id = event_id


class UnreadableEvent(ProtocolError):
    """An event without a readable ``id``: it cannot even be answered, so the batch is 422."""


class ClockError(ProtocolError, ValueError):
    """A hybrid logical clock string that is not ``<13 digits>:<5 digits>:<node>``."""


class PositionError(ProtocolError, ValueError):
    """A fractional position that is not a valid key, or bounds given out of order."""


class MergeError(ProtocolError, ValueError):
    """States of two different entities merged, or an event that cannot be folded."""
