"""Intake of a push: from the bytes of a request to events that every later stage can take.

Three gates, before anything is decided or written (SPEC sections 3 and 6):

- ``decode_push_body``: the body as a whole. Bytes that are no batch at all (not JSON, not
  UTF-8 where it is read, nested past any depth a batch has) are 422 for the batch.
- ``read_event``: one event's own bytes. A number out of range (``1e309``, an integer of
  thousands of digits), invalid UTF-8 or nesting deeper than ``MAX_JSON_DEPTH`` inside an
  event whose id can still be read is that event's ``invalid``; the rest of the batch goes on.
- ``check_usable``: an event the protocol accepted, against what the stages after it need:
  the board id is a NATS subject token, and every key that goes into a column of the BFF's
  database or a NATS header is printable ASCII and fits its column. The protocol's patterns
  say as much, but a gap there (a ``$`` that lets a trailing newline through) must cost one
  event its ``invalid``, never the whole batch a 500 after its decisions were written.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, String

from backend.bff.models import BoardAuthority, Device, EntityBinding, EventRecord, MemberAuthority
from backend.bff.sync.schemas import PushRequest
from backend.errors import UnprocessableBatch
from backend.nats.streams import event_subject
from protocol import (
    ClockError,
    Event,
    EventRejected,
    Reason,
    UnreadableEvent,
    Writer,
    decode_typed,
    parse_hlc,
    read_event_id,
    validate_event,
)
from protocol.catalog import CommentAdded, MemberAdded, MemberRemoved

__all__ = [
    "MAX_JSON_DEPTH",
    "check_usable",
    "decode_push_body",
    "read_device_event",
    "read_event",
]

MAX_JSON_DEPTH = 64
"""The deepest nesting a request body may have (SPEC section 6): the body's object is 1."""
_EVENT_DEPTH = MAX_JSON_DEPTH - 2
"""An event sits inside the body's object and its ``events`` array."""

_push_decoder = msgspec.json.Decoder(PushRequest)

_KEY_RE = re.compile(r"[!-~]+")
"""Printable ASCII without spaces: safe as a SQL key, a NATS header value, a file name."""

_TOO_DEEP = f"event: JSON nested deeper than {MAX_JSON_DEPTH} levels"


class _EventId(msgspec.Struct):
    """An event read for its id alone: the other members are skipped, not converted."""

    id: str


_id_decoder = msgspec.json.Decoder(_EventId)


def _decode_problem(data: bytes, exc: Exception) -> str:
    """What is wrong with ``data`` that msgspec refused with ``exc``, worded the same whatever
    msgspec's version: releases differ in how they report bytes that are not UTF-8 (some raise
    UnicodeDecodeError, others a DecodeError of their own wording)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not UTF-8 ({bad.reason} at byte {bad.start})"
    return str(exc)


def decode_push_body(body: bytes) -> PushRequest:
    """The push batch in ``body``, its events still raw; UnprocessableBatch (422) if the
    bytes are no batch. The events' own bytes are read one by one later (``read_event``)."""
    try:
        request = _push_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise UnprocessableBatch(f"malformed batch: {_decode_problem(body, exc)}") from exc
    except RecursionError as exc:
        raise UnprocessableBatch(
            f"malformed batch: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ) from exc
    problem = _unusable("device", request.device, _DEVICE_LENGTH)
    if problem is not None:
        raise UnprocessableBatch(f"malformed batch: {problem}")
    return request


def read_device_event(raw: msgspec.Raw) -> Event:
    """One event of a device's batch, validated (``validate_event(read_event(raw),
    Writer.DEVICE)``). An event that is fine, as nearly all are, is read straight into
    its typed structs (``decode_typed``); anything else takes the full path, which says
    what is wrong with it."""
    if not _may_be_too_deep(raw):
        event = decode_typed(bytes(raw), Writer.DEVICE)
        if event is not None:
            return event
    return validate_event(read_event(raw), Writer.DEVICE)


def read_event(raw: msgspec.Raw) -> Any:
    """One event of a batch as decoded JSON.

    Raises EventRejected (``invalid``, with the event's id) when its bytes are bad but its
    id can be read, and UnprocessableBatch when not even that: the batch cannot be answered
    event by event then (SPEC section 6: 422)."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        problem = f"event: {_decode_problem(bytes(raw), exc)}"
    except RecursionError:
        problem = _TOO_DEEP
    else:
        try:
            event_id = read_event_id(value)
        except UnreadableEvent as exc:
            raise _unreadable(exc) from exc
        if _may_be_too_deep(raw) and _deeper_than(value, _EVENT_DEPTH):
            raise EventRejected(Reason.INVALID, _TOO_DEEP, event_id)
        return value
    raise EventRejected(Reason.INVALID, problem, _lenient_id(raw))


def check_usable(event: Event) -> None:
    """EventRejected (``invalid``) if a stage after validation could not take ``event``."""
    try:
        node = parse_hlc(event.hlc).node
    except ClockError as exc:
        raise EventRejected(Reason.INVALID, f"hlc: {exc}", event.id) from exc
    keys: list[tuple[str, str, int]] = [
        ("id", event.id, _ID_LENGTH),
        ("board", event.board, _BOARD_LENGTH),
        ("entity", event.entity, _ENTITY_LENGTH),
        ("device", event.device, _DEVICE_LENGTH),
        ("hlc", node, _DEVICE_LENGTH),
    ]
    payload = event.payload
    if isinstance(payload, (MemberAdded, MemberRemoved)):
        keys.append(("payload.username", payload.username, _USERNAME_LENGTH))
    if isinstance(payload, CommentAdded):
        keys.append(("payload.task", payload.task, _ENTITY_LENGTH))
    for name, value, length in keys:
        problem = _unusable(name, value, length)
        if problem is not None:
            raise EventRejected(Reason.INVALID, problem, event.id)
    try:
        event_subject(event.board)
    except ValueError as exc:
        raise EventRejected(Reason.INVALID, f"board: {exc}", event.id) from exc


def _unusable(name: str, value: str, length: int) -> str | None:
    if not _KEY_RE.fullmatch(value):
        return f"{name}: {value!r} must be printable ASCII with no spaces or line breaks"
    if len(value) > length:
        return f"{name}: at most {length} characters, not {len(value)}"
    return None


def _length(column: ColumnElement[Any]) -> int:
    kind = column.type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{column} is no bounded string column")
    return kind.length


# The columns each key of an event goes into, read once (``check_usable`` runs per event).
_ID_LENGTH = _length(EventRecord.__table__.c.id)
_BOARD_LENGTH = _length(BoardAuthority.__table__.c.id)
_ENTITY_LENGTH = _length(EntityBinding.__table__.c.id)
_DEVICE_LENGTH = _length(Device.__table__.c.id)
_USERNAME_LENGTH = _length(MemberAuthority.__table__.c.username)


def _may_be_too_deep(raw: msgspec.Raw) -> bool:
    """Honest events hold a handful of brackets: counting them (at C speed) settles
    almost every event without walking it."""
    data = bytes(raw)
    return data.count(b"[") + data.count(b"{") > _EVENT_DEPTH


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests containers more than ``limit`` levels (itself is 1).
    Level by level, so the cost is one look at each container, and no recursion."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        children: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            children += [v for v in items if isinstance(v, (dict, list))]
        level = children
        depth += 1
    return False


def _lenient_id(raw: msgspec.Raw) -> str:
    """The id of an event whose other members could not be read."""
    try:
        event_id = _id_decoder.decode(raw).id
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _unreadable(exc) from exc
    if not event_id:
        raise _unreadable(ValueError("the id is empty"))
    return event_id


def _unreadable(exc: Exception) -> UnprocessableBatch:
    return UnprocessableBatch(f"every event needs a readable string `id`: {exc}")
