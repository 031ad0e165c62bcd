"""Identifiers: the canonical UUID form, the versions each writer may use, new ids.

Every id is a lowercase canonical UUID compared bytewise. Devices make version 4 or 7
ids; version 5 is reserved for what the backend derives from a cause, so that a replay
derives the same id again and changes nothing.
"""

from __future__ import annotations

import os
import time
import uuid

from protocol import patterns

__all__ = [
    "BACKEND_ID_VERSION",
    "DEVICE_ID_RE",
    "DEVICE_ID_VERSIONS",
    "derived_id",
    "is_uuid",
    "new_device_id",
    "new_id",
    "uuid_version",
]

_UUID_RE = patterns.compile_whole(patterns.UUID)

DEVICE_ID_RE = patterns.compile_whole(patterns.DEVICE_ID)
"""Device ids: made by the device, no ``:`` (they are the node of its hlc). Use ``fullmatch``."""

DEVICE_ID_VERSIONS = frozenset({4, 7})
BACKEND_ID_VERSION = 5

# Fixed for ever: derived ids must come out the same in every process and every replay.
_OUTPOST_NAMESPACE = uuid.UUID("6f1d2c0e-8b7a-5e3f-9a41-0c2d7e9b5a13")


def uuid_version(value: str) -> int | None:
    """The version of a canonical lowercase UUID string, or None if it is not one."""
    match = _UUID_RE.fullmatch(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID_RE.fullmatch(value) is not None


def new_id(wall_ms: int | None = None) -> str:
    """A new UUIDv7: time-ordered, so ids made one after another sort near each other."""
    ms = time.time_ns() // 1_000_000 if wall_ms is None else wall_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 random bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & (2**62 - 1)
    return str(uuid.UUID(int=value))


def new_device_id() -> str:
    """A device id with 80 random bits, made offline before the device ever meets a server."""
    return "d-" + os.urandom(10).hex()


def derived_id(purpose: str, cause: str) -> str:
    """The version 5 id the backend gives what it writes because of ``cause`` (an event id)."""
    return str(uuid.uuid5(_OUTPOST_NAMESPACE, f"{purpose}:{cause}"))
