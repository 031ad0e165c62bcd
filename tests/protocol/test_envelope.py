"""Validation of the envelope and the catalog: every reason, every limit, named fields."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocol import (
    EventRejected,
    Reason,
    UnreadableEvent,
    Writer,
    canonical_bytes,
    decode_event,
    decode_stored_event,
    decode_typed,
    derived_id,
    encode_event,
    event_hash,
    validate_event,
)
from protocol.catalog import TaskCreated, TaskUpdated
from tests.protocol.builders import BOARD, TASK, event_id, hlc, raw


def rejected(event: Any, writer: Writer = Writer.DEVICE) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        validate_event(event, writer)
    return info.value


VALID_EVENTS = [
    raw("BoardCreated", {"name": "Launch", "wip_limit": 3}),
    raw("BoardCreated", {"name": "No limit"}),
    raw("BoardUpdated", {"fields": {"archived": True, "wip_limit": None}}),
    raw("MemberAdded", {"username": "bob"}),
    raw("MemberRemoved", {"username": "b.o_b-2"}),
    raw("TaskCreated", {"title": "Write spec", "position": "a0"}),
    raw(
        "TaskCreated",
        {
            "title": "Full",
            "position": "a0V",
            "notes": "n",
            "status": "doing",
            "priority": 4,
            "due": "2026-02-28",
            "assignee": "carol",
            "labels": ["ui", "bug"],
        },
    ),
    raw("TaskUpdated", {"fields": {"due": None, "assignee": None, "status": "done"}}),
    raw("TaskLabelAdded", {"label": "ui"}),
    raw("TaskLabelRemoved", {"label": "ui", "observed": [event_id(1)]}),
    raw("TaskDeleted"),
    raw("TaskRestored"),
    raw("CommentAdded", {"task": TASK, "body": "Looks good"}),
    raw("CommentDeleted"),
]


@pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: e["type"])
def test_a_device_may_send_every_client_type(event: dict[str, Any]) -> None:
    parsed = validate_event(event, Writer.DEVICE)
    assert (parsed.id, parsed.type, parsed.board) == (event["id"], event["type"], event["board"])


def test_taskcreated_fills_in_its_defaults() -> None:
    payload = validate_event(raw("TaskCreated", {"title": "t", "position": "a0"}), Writer.DEVICE)
    assert payload.payload == TaskCreated(title="t", position="a0")
    assert isinstance(payload.payload, TaskCreated)
    assert (payload.payload.status, payload.payload.priority, payload.payload.labels) == (
        "todo",
        0,
        [],
    )


def test_null_clears_a_field_and_an_absent_key_leaves_it() -> None:
    event = validate_event(raw("TaskUpdated", {"fields": {"due": None}}), Writer.DEVICE)
    assert isinstance(event.payload, TaskUpdated)
    assert event.payload.fields.items() == {"due": None}


@pytest.mark.parametrize(
    "event",
    [None, [], "x", {}, {"id": 7}, {"id": ""}, {"type": "TaskDeleted"}],
    ids=repr,
)
def test_an_event_without_a_readable_id_makes_the_batch_unreadable(event: Any) -> None:
    with pytest.raises(UnreadableEvent, match="string `id`"):
        validate_event(event, Writer.DEVICE)


ENVELOPE_FAULTS = [
    ({"id": "0B0B0B0B-0000-4000-8000-000000000001"}, "id: must be a lowercase canonical UUID"),
    ({"id": "0b0b0b0b00004000800000000000001"}, "id: must be a lowercase canonical UUID"),
    ({"id": "0b0b0b0b-0000-1000-8000-000000000001"}, "id: devices make version 4 or 7"),
    ({"id": derived_id("x", "y")}, "reserved for the backend"),
    ({"board": "board-1"}, "board: must be a lowercase canonical UUID"),
    ({"entity": "{" + TASK + "}"}, "entity: must be a lowercase canonical UUID"),
    ({"device": "d:1"}, "device:"),
    ({"device": ""}, "device:"),
    ({"hlc": "1764136800000:0:d-a"}, "hlc:"),
    ({"hlc": "176413680000:00000:d-a"}, "hlc:"),
    ({"hlc": hlc(0, node="d-a~saga")}, "hlc: node 'd-a~saga' is not a device id"),
    ({"schema": "1"}, "event.schema: Expected `int`, got `str`"),
    ({"payload": []}, "event.payload: Expected `object`, got `array`"),
    ({"color": "red"}, "unknown field `color`"),
]


@pytest.mark.parametrize(("change", "detail"), ENVELOPE_FAULTS, ids=lambda x: str(x)[:40])
def test_a_faulty_envelope_is_invalid_and_says_which_field(
    change: dict[str, Any], detail: str
) -> None:
    error = rejected({**raw("TaskDeleted"), **change})
    assert error.reason is Reason.INVALID
    assert detail in error.detail


@pytest.mark.parametrize("missing", ["type", "schema", "board", "entity", "hlc", "device"])
def test_a_missing_envelope_field_is_invalid_by_name(missing: str) -> None:
    event = raw("TaskDeleted")
    del event[missing]
    error = rejected(event)
    assert error.reason is Reason.INVALID
    assert f"`{missing}`" in error.detail


def test_the_rejection_carries_the_event_id() -> None:
    event = raw("TaskCreated", {"title": ""})
    assert rejected(event).event_id == event["id"]


def test_an_unknown_type_is_unknown_type() -> None:
    error = rejected(raw("TaskArchived"))
    assert error.reason is Reason.UNKNOWN_TYPE
    assert "TaskArchived" in error.detail


def test_an_unknown_schema_version_is_unsupported_schema() -> None:
    error = rejected(raw("TaskDeleted", schema=2))
    assert error.reason is Reason.UNSUPPORTED_SCHEMA
    assert "supported: 1" in error.detail


def test_backend_only_types_and_keys_are_forbidden_to_devices_and_allowed_to_the_backend() -> None:
    cause = event_id()
    saga = {"assignee": "alice", "limit": 3, "cause": cause}
    compensation = {
        "fields": {"status": "todo", "deleted": False},
        "compensates": cause,
        "reason": "WIP limit",
    }
    cases = [
        (raw("WipLimitExceeded", saga), "written by the backend only"),
        (raw("TaskUpdated", compensation), "payload.compensates"),
        (raw("TaskUpdated", {"fields": {"status": "todo"}, "reason": "x"}), "payload.reason"),
        (raw("TaskUpdated", {"fields": {"deleted": True}}), "payload.fields.deleted"),
    ]
    for event, detail in cases:
        error = rejected(event)
        assert (error.reason, detail in error.detail) == (Reason.FORBIDDEN, True), error
        backend_event = {**event, "id": derived_id("test", event["id"])}
        backend_event["hlc"] = hlc(0, node="d-a~saga")
        assert validate_event(backend_event, Writer.BACKEND).type == event["type"]


def _long(n: int) -> str:
    return "é" * n  # two UTF-8 bytes, one code point: limits count code points


PAYLOAD_FAULTS = [
    ("BoardCreated", {"name": ""}, "payload.name"),
    ("BoardCreated", {"name": _long(201)}, "payload.name"),
    ("BoardCreated", {"name": "b", "wip_limit": 0}, "payload.wip_limit"),
    ("BoardCreated", {"name": "b", "wip_limit": 101}, "payload.wip_limit"),
    ("BoardCreated", {"wip_limit": 3}, "`name`"),
    ("BoardUpdated", {"fields": {}}, "at least one"),
    ("BoardUpdated", {"fields": {"owner": "bob"}}, "payload.fields: Object contains unknown"),
    ("BoardUpdated", {"fields": {"archived": "yes"}}, "payload.fields.archived"),
    ("MemberAdded", {"username": "Bob"}, "payload.username"),
    ("MemberAdded", {"username": "bo"}, "payload.username"),
    ("MemberAdded", {"username": "b" * 33}, "payload.username"),
    ("MemberRemoved", {}, "`username`"),
    ("TaskCreated", {"title": "", "position": "a0"}, "payload.title"),
    ("TaskCreated", {"title": _long(501), "position": "a0"}, "payload.title"),
    ("TaskCreated", {"title": "t"}, "`position`"),
    ("TaskCreated", {"title": "t", "position": "a00"}, "fractional index"),
    ("TaskCreated", {"title": "t", "position": "0a"}, "payload.position"),
    ("TaskCreated", {"title": "t", "position": "a0", "notes": _long(20_001)}, "payload.notes"),
    ("TaskCreated", {"title": "t", "position": "a0", "status": "blocked"}, "payload.status"),
    ("TaskCreated", {"title": "t", "position": "a0", "priority": 5}, "payload.priority"),
    ("TaskCreated", {"title": "t", "position": "a0", "priority": -1}, "payload.priority"),
    ("TaskCreated", {"title": "t", "position": "a0", "priority": True}, "payload.priority"),
    ("TaskCreated", {"title": "t", "position": "a0", "priority": 1.0}, "payload.priority"),
    ("TaskCreated", {"title": "t", "position": "a0", "due": "2026-02-30"}, "calendar date"),
    ("TaskCreated", {"title": "t", "position": "a0", "due": "26-2-3"}, "payload.due"),
    ("TaskCreated", {"title": "t", "position": "a0", "assignee": "A"}, "payload.assignee"),
    ("TaskCreated", {"title": "t", "position": "a0", "labels": ["x"] * 51}, "payload.labels"),
    ("TaskCreated", {"title": "t", "position": "a0", "labels": [""]}, "payload.labels[0]"),
    ("TaskCreated", {"title": "t", "position": "a0", "labels": [_long(51)]}, "payload.labels[0]"),
    ("TaskCreated", {"title": "t", "position": "a0", "tags": []}, "unknown field `tags`"),
    ("TaskUpdated", {"fields": {}}, "at least one"),
    ("TaskUpdated", {}, "`fields`"),
    ("TaskUpdated", {"fields": {"title": None}}, "payload.fields.title"),
    ("TaskUpdated", {"fields": {"status": None}}, "payload.fields.status"),
    ("TaskUpdated", {"fields": {"due": "2026-13-01"}}, "calendar date"),
    ("TaskUpdated", {"fields": {"labels": ["x"]}}, "unknown field `labels`"),
    ("TaskLabelAdded", {"label": ""}, "payload.label"),
    ("TaskLabelRemoved", {"label": "x"}, "`observed`"),
    ("TaskLabelRemoved", {"label": "x", "observed": ["nope"]}, "payload.observed[0]"),
    ("TaskLabelRemoved", {"label": "x", "observed": [TASK] * 1001}, "payload.observed"),
    ("TaskDeleted", {"why": "x"}, "unknown field `why`"),
    ("CommentAdded", {"task": TASK, "body": ""}, "payload.body"),
    ("CommentAdded", {"task": TASK, "body": _long(10_001)}, "payload.body"),
    ("CommentAdded", {"task": "t-1", "body": "b"}, "payload.task"),
    ("CommentDeleted", {"by": "me"}, "unknown field `by`"),
]


@pytest.mark.parametrize(("type_", "payload", "detail"), PAYLOAD_FAULTS, ids=lambda x: str(x)[:30])
def test_a_faulty_payload_is_invalid_and_names_the_field(
    type_: str, payload: dict[str, Any], detail: str
) -> None:
    error = rejected(raw(type_, payload))
    assert error.reason is Reason.INVALID
    assert detail in error.detail, error.detail


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        ("BoardCreated", {"name": _long(200), "wip_limit": 100}),
        ("TaskCreated", {"title": _long(500), "position": "a0", "labels": ["x"] * 50}),
        ("TaskCreated", {"title": "🚀" * 500, "position": "a0", "notes": _long(20_000)}),
        ("TaskLabelAdded", {"label": _long(50)}),
        ("TaskLabelRemoved", {"label": "x", "observed": [TASK] * 1000}),
        ("CommentAdded", {"task": TASK, "body": _long(10_000)}),
        ("MemberAdded", {"username": "a" * 32}),
    ],
    ids=lambda x: str(x)[:30],
)
def test_every_limit_is_inclusive(type_: str, payload: dict[str, Any]) -> None:
    assert validate_event(raw(type_, payload), Writer.DEVICE).type == type_


def test_a_board_event_names_its_board_as_its_entity() -> None:
    error = rejected(raw("BoardUpdated", {"fields": {"name": "x"}}, entity=TASK))
    assert (error.reason, error.detail) == (
        Reason.INVALID,
        "entity: a BoardUpdated names its board as its entity",
    )


def test_a_devices_backend_stamps_are_ignored_and_the_backends_are_kept() -> None:
    event = raw("TaskDeleted", actor="mallory", seq=99, received_at=5)
    from_device = validate_event(event, Writer.DEVICE)
    assert (from_device.actor, from_device.seq, from_device.received_at) == (None, None, None)
    from_stream = validate_event(event, Writer.BACKEND)
    assert (from_stream.actor, from_stream.seq, from_stream.received_at) == ("mallory", 99, 5)


def test_decode_event_reads_stream_bytes_and_refuses_non_json() -> None:
    event = validate_event(raw("TaskDeleted", actor="alice"), Writer.BACKEND)
    assert decode_event(encode_event(event)) == event
    with pytest.raises(EventRejected, match="not JSON"):
        decode_event(b'{"id": ')


class TestStoredEvents:
    """``decode_stored_event``, the consumers' fast reading of the stream, must read
    exactly what ``decode_event`` reads and refuse exactly what it refuses."""

    @pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: e["type"])
    def test_every_type_reads_the_same(self, event: dict[str, Any]) -> None:
        data = msgspec.json.encode({**event, "actor": "alice", "seq": 7, "received_at": 9})
        stored = decode_stored_event(data)
        assert stored == decode_event(data, Writer.BACKEND)
        assert (stored.actor, stored.seq, stored.received_at) == ("alice", 7, 9)

    def test_the_backends_own_events_read_the_same(self) -> None:
        cause = event_id()
        saga = raw("WipLimitExceeded", {"assignee": "alice", "limit": 3, "cause": cause})
        compensation = raw(
            "TaskUpdated",
            {"fields": {"status": "todo", "deleted": False}, "compensates": cause, "reason": "x"},
        )
        for event in (saga, compensation):
            data = msgspec.json.encode(
                {**event, "id": derived_id("test", event["id"]), "hlc": hlc(0, node="d-a~saga")}
            )
            assert decode_stored_event(data) == decode_event(data, Writer.BACKEND)

    @pytest.mark.parametrize(
        "change",
        [
            change
            for change, detail in ENVELOPE_FAULTS
            if not any(rule in detail for rule in ("devices", "reserved", "not a device id"))
        ]  # the rest are a device's limits, not the backend's
        + [{"payload": {"title": ""}}, {"type": "TaskArchived"}, {"schema": 2}],
        ids=lambda x: str(x)[:40],
    )
    def test_what_decode_event_refuses_it_refuses_alike(self, change: dict[str, Any]) -> None:
        event = {**raw("TaskDeleted"), **change}
        if "payload" in change:
            event["type"] = "TaskCreated"
        data = msgspec.json.encode(event)
        with pytest.raises(EventRejected) as expected:
            decode_event(data, Writer.BACKEND)
        with pytest.raises(EventRejected) as got:
            decode_stored_event(data)
        refused, want = got.value, expected.value
        assert (refused.reason, refused.detail) == (want.reason, want.detail)

    def test_a_board_event_naming_another_entity_is_refused(self) -> None:
        data = msgspec.json.encode(raw("BoardUpdated", {"fields": {"name": "x"}}, entity=TASK))
        with pytest.raises(EventRejected, match="names its board as its entity"):
            decode_stored_event(data)

    def test_bytes_that_are_no_event_are_refused(self) -> None:
        with pytest.raises(EventRejected, match="not JSON"):
            decode_stored_event(b'{"id": ')


class TestTypedReading:
    """``decode_typed`` for a device (the push's fast path): the event ``validate_event``
    makes, or None wherever that would refuse it, so the full path can say why."""

    @pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: e["type"])
    def test_every_client_type_reads_the_same(self, event: dict[str, Any]) -> None:
        stamped = {**event, "actor": "mallory", "seq": 99, "received_at": 5}
        typed = decode_typed(msgspec.json.encode(stamped), Writer.DEVICE)
        assert typed == validate_event(stamped, Writer.DEVICE)
        assert typed is not None and (typed.actor, typed.seq, typed.received_at) == (None,) * 3

    def test_a_backend_only_type_or_key_is_left_to_the_full_path(self) -> None:
        cause = event_id()
        for event in (
            raw("WipLimitExceeded", {"assignee": "alice", "limit": 3, "cause": cause}),
            raw("TaskUpdated", {"fields": {"status": "todo"}, "compensates": cause}),
            raw("TaskUpdated", {"fields": {"status": "todo"}, "reason": "x"}),
            raw("TaskUpdated", {"fields": {"deleted": True}}),
            raw("TaskDeleted", id=derived_id("test", "x")),
            raw("TaskDeleted", at=hlc(0, node="d-a~saga")),
        ):
            assert rejected(event).reason in (Reason.FORBIDDEN, Reason.INVALID)
            assert decode_typed(msgspec.json.encode(event), Writer.DEVICE) is None

    @pytest.mark.parametrize(
        "event",
        [{**raw("TaskDeleted"), **change} for change, _ in ENVELOPE_FAULTS]
        + [raw(type_, payload) for type_, payload, _ in PAYLOAD_FAULTS]
        + [raw("TaskArchived"), raw("TaskDeleted", schema=2)],
        ids=lambda e: str(e)[:60],
    )
    def test_what_validation_refuses_is_left_to_the_full_path(self, event: dict[str, Any]) -> None:
        rejected(event)
        assert decode_typed(msgspec.json.encode(event), Writer.DEVICE) is None


class TestCanonicalForm:
    def test_a_byte_for_byte_resend_hashes_the_same(self) -> None:
        event = raw("TaskCreated", {"title": "t", "position": "a0"})
        data = msgspec.json.encode(event)
        assert event_hash(decode_event(data, Writer.DEVICE)) == event_hash(
            decode_event(data, Writer.DEVICE)
        )

    def test_key_order_spacing_escapes_and_spelled_out_defaults_do_not_matter(self) -> None:
        a = raw("TaskCreated", {"title": "é", "position": "a0"}, id=event_id(7))
        b = dict(reversed(list(a.items())))
        b["payload"] = {"position": "a0", "status": "todo", "title": "é", "labels": []}
        encoded = msgspec.json.encode(b).replace(b"\xc3\xa9", b"\\u00e9").replace(b",", b", ")
        parsed_a = validate_event(a, Writer.DEVICE)
        parsed_b = decode_event(encoded, Writer.DEVICE)
        assert canonical_bytes(parsed_a) == canonical_bytes(parsed_b)
        assert event_hash(parsed_a) == event_hash(parsed_b)

    def test_the_backends_stamps_are_not_part_of_it(self) -> None:
        event = raw("TaskDeleted")
        stamped = {**event, "actor": "alice", "seq": 4, "received_at": 1}
        assert event_hash(validate_event(event, Writer.BACKEND)) == event_hash(
            validate_event(stamped, Writer.BACKEND)
        )
        assert b"actor" not in canonical_bytes(validate_event(stamped, Writer.BACKEND))

    @pytest.mark.parametrize(
        "change",
        [
            {"hlc": hlc(1)},
            {"board": "0b0b0b0b-0000-4000-8000-000000000002"},
            {"payload": {"title": "u", "position": "a0"}},
            {"device": "d-b", "hlc": hlc(0, node="d-b")},
        ],
        ids=lambda c: next(iter(c)),
    )
    def test_any_change_of_content_changes_the_hash(self, change: dict[str, Any]) -> None:
        event = raw("TaskCreated", {"title": "t", "position": "a0"})
        original = validate_event(event, Writer.DEVICE)
        changed = validate_event({**event, **change}, Writer.DEVICE)
        assert event_hash(original) != event_hash(changed)

    def test_the_canonical_form_is_sorted_compact_json(self) -> None:
        event = validate_event(raw("TaskDeleted", id=event_id(9), board=BOARD), Writer.DEVICE)
        text = canonical_bytes(event).decode()
        assert text.startswith('{"board":"') and ", " not in text and ": " not in text


def test_an_older_schema_version_is_upcast_by_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v2 of a type stays readable in its v1 form: the reader upcasts, then validates."""
    from protocol import catalog, envelope

    class MemberAddedV2(catalog.MemberAdded):
        role: str = "member"

    def v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "role": "member"}

    spec = catalog.EventSpec(
        "MemberAdded", "board", {1: catalog.MemberAdded, 2: MemberAddedV2}, upcasters={1: v1_to_v2}
    )
    monkeypatch.setattr(envelope, "CATALOG", {**catalog.CATALOG, "MemberAdded": spec})
    old = validate_event(raw("MemberAdded", {"username": "bob"}), Writer.DEVICE)
    assert (old.schema, old.payload) == (2, MemberAddedV2(username="bob", role="member"))
    new = validate_event(
        raw("MemberAdded", {"username": "bob", "role": "x"}, schema=2), Writer.DEVICE
    )
    assert new.payload == MemberAddedV2(username="bob", role="x")
    stored = raw("MemberAdded", {"username": "bob"}, actor="alice")
    assert decode_stored_event(msgspec.json.encode(stored)).payload == MemberAddedV2(
        username="bob", role="member"
    )
    error = rejected(raw("MemberAdded", {"username": "bob"}, schema=3))
    assert (error.reason, "supported: 1, 2" in error.detail) == (Reason.UNSUPPORTED_SCHEMA, True)
