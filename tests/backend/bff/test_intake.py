"""The push intake on its own (no I/O): what a later stage needs is checked before any
decision, whether or not the protocol's patterns already refuse the value."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from backend.bff.sync.intake import MAX_JSON_DEPTH, check_usable, decode_push_body, read_event
from backend.errors import UnprocessableBatch
from protocol import Event, EventRejected, Reason
from protocol.catalog import BoardCreated, CommentAdded, MemberRemoved, TaskDeleted

DEVICE = "d-0123456789abcdef"
REMOVED = "MemberRemoved"


def event(**changes: object) -> Event:
    board = str(uuid.uuid4())
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "type": "BoardCreated",
        "schema": 1,
        "board": board,
        "entity": board,
        "hlc": f"1764136800000:00000:{DEVICE}",
        "device": DEVICE,
        "payload": BoardCreated(name="x"),
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def refused(candidate: Event) -> str:
    with pytest.raises(EventRejected) as caught:
        check_usable(candidate)
    assert caught.value.reason is Reason.INVALID
    assert caught.value.event_id == candidate.id
    return caught.value.detail


def test_a_usable_event_passes() -> None:
    check_usable(event())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"board": "a.b"}, "board"),  # printable, short, and still no subject token
        ({"board": "a*"}, "board"),
        ({"board": "a>"}, "board"),
        ({"board": f"{uuid.uuid4()}\n"}, "board"),
        ({"id": f"{uuid.uuid4()}\n"}, "id"),  # a NATS header value
        ({"id": "x" * 81}, "id"),  # longer than its column
        ({"entity": "é"}, "entity"),
        ({"device": "d 1"}, "device"),
        ({"hlc": f"1764136800000:00000:{DEVICE}\n"}, "hlc"),
        ({"payload": MemberRemoved(username="bob\n"), "type": "MemberRemoved"}, "payload.username"),
        (
            {"payload": MemberRemoved(username="b" * 33), "type": "MemberRemoved"},
            "payload.username",
        ),
        ({"payload": CommentAdded(task="t\r", body="x"), "type": "CommentAdded"}, "payload.task"),
    ],
    ids=[
        "dot",
        "star",
        "gt",
        "newline",
        "id-newline",
        "id-81",
        "unicode",
        "space",
        "hlc-node",
        "username",
        "username-33",
        "task",
    ],
)
def test_a_key_no_later_stage_can_take_is_invalid_naming_it(
    changes: dict[str, object], field: str
) -> None:
    assert refused(event(**changes)).startswith(f"{field}:")


def test_a_payload_without_keys_passes() -> None:
    check_usable(event(type="TaskDeleted", payload=TaskDeleted(), entity=str(uuid.uuid4())))


def test_the_body_device_must_be_a_usable_key() -> None:
    body = b'{"device": "d-1\\n", "protocol": 1, "events": [{"id": "x"}]}'
    with pytest.raises(UnprocessableBatch, match="device"):
        decode_push_body(body)


def nested(depth: int) -> bytes:
    return b'{"id": "e", "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_an_event_may_nest_as_deep_as_the_body_allows_and_no_deeper() -> None:
    deepest = MAX_JSON_DEPTH - 2  # the body's object and its events array hold it
    assert read_event(msgspec.Raw(nested(deepest)))["id"] == "e"
    with pytest.raises(EventRejected, match="nested deeper than 64") as caught:
        read_event(msgspec.Raw(nested(deepest + 1)))
    assert caught.value.event_id == "e"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    quoted = b'{"id": "e", "notes": "' + b"[{" * 200 + b'\\"[[["}'
    assert read_event(msgspec.Raw(quoted))["notes"].startswith("[{")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": 1e309, "id": "e"}',
        b'{"id": "e", "x": "\xff"}',
        b'{"id": "e", "x": ' + b"1" * 5000 + b"}",
    ],
    ids=["1e309", "utf8", "digits"],
)
def test_bad_bytes_beside_a_readable_id_are_that_events_invalid(raw: bytes) -> None:
    with pytest.raises(EventRejected) as caught:
        read_event(msgspec.Raw(raw))
    assert (caught.value.reason, caught.value.event_id) == (Reason.INVALID, "e")


@pytest.mark.parametrize(
    "raw",
    [b'{"id": "\xff", "x": 1e309}', b'{"x": 1e309}', b'{"id": "", "x": 1e309}', b"[1e309]"],
    ids=["id-utf8", "no-id", "empty-id", "array"],
)
def test_bad_bytes_without_a_readable_id_are_422(raw: bytes) -> None:
    with pytest.raises(UnprocessableBatch, match="readable string `id`"):
        read_event(msgspec.Raw(raw))
