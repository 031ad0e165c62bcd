"""Outpost's shared contract: events, the clock, validation, merge rules, positions.

Pure: no I/O, no framework. The client and the backend import the same functions, so a
device and the server fold the same events to the same state.
"""

from protocol import merge
from protocol.catalog import CATALOG, TASK_DEFAULTS, EventSpec, Payload
from protocol.envelope import (
    Envelope,
    Event,
    Writer,
    canonical_bytes,
    decode_event,
    decode_stored_event,
    decode_typed,
    encode_event,
    event_hash,
    read_event_id,
    validate_event,
)
from protocol.errors import (
    ClockError,
    EventRejected,
    MergeError,
    PositionError,
    ProtocolError,
    Reason,
    UnreadableEvent,
)
from protocol.hlc import HybridLogicalClock, Timestamp, format_hlc, parse_hlc, saga_hlc
from protocol.ids import derived_id, is_uuid, new_device_id, new_id, uuid_version
from protocol.positions import (
    is_valid_position,
    position_after,
    position_before,
    position_between,
    positions_between,
)

PROTOCOL_VERSIONS = (1, 1)
"""The sync protocol versions this code speaks, as (lowest, highest)."""

__all__ = [
    "CATALOG",
    "PROTOCOL_VERSIONS",
    "TASK_DEFAULTS",
    "ClockError",
    "Envelope",
    "Event",
    "EventRejected",
    "EventSpec",
    "HybridLogicalClock",
    "MergeError",
    "Payload",
    "PositionError",
    "ProtocolError",
    "Reason",
    "Timestamp",
    "UnreadableEvent",
    "Writer",
    "canonical_bytes",
    "decode_event",
    "decode_stored_event",
    "decode_typed",
    "derived_id",
    "encode_event",
    "event_hash",
    "format_hlc",
    "is_uuid",
    "is_valid_position",
    "merge",
    "new_device_id",
    "new_id",
    "parse_hlc",
    "position_after",
    "position_before",
    "position_between",
    "positions_between",
    "read_event_id",
    "saga_hlc",
    "uuid_version",
    "validate_event",
]
