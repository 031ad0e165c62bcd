"""The event envelope (SPEC section 3): parsing, validation by writer, canonical form.

``validate_event`` turns a decoded JSON object into an ``Event`` or raises ``EventRejected``
with the push reason and a detail that names the field. It knows who writes: a device may
not send backend-only types or keys, nor version 5 ids; the backend may. What the backend
stamps (``actor``, ``seq``, ``received_at``) is ignored when a device sends it.

The canonical form of an event is its JSON with sorted keys and no defaults, without the
backend's stamps; its sha256 is what ``duplicate`` and ``id_conflict`` compare.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET

from protocol import patterns
from protocol.catalog import BACKEND_ONLY_PAYLOAD_KEYS, CATALOG, UUID_PATTERN, Payload, TaskUpdated
from protocol.errors import ClockError, EventRejected, MergeError, Reason, UnreadableEvent
from protocol.hlc import Timestamp, parse_hlc
from protocol.ids import BACKEND_ID_VERSION, DEVICE_ID_RE, DEVICE_ID_VERSIONS, uuid_version

__all__ = [
    "Envelope",
    "Event",
    "Writer",
    "canonical_bytes",
    "decode_event",
    "decode_stored_event",
    "decode_typed",
    "encode_event",
    "event_hash",
    "read_event_id",
    "validate_event",
]

_Id = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN, description="lowercase canonical UUID")]
_Hlc = Annotated[
    str,
    msgspec.Meta(
        pattern=patterns.anchored(patterns.HLC),
        description="hybrid logical clock: <wall ms, 13 digits>:<counter, 5 digits>:<device id>",
    ),
]
_DeviceId = Annotated[
    str,
    msgspec.Meta(
        pattern=patterns.anchored(patterns.DEVICE_ID), description="1..64 of A-Z a-z 0-9 _ . -"
    ),
]
_ID_FIELDS = ("id", "board", "entity", "device", "hlc")


class Writer(StrEnum):
    """Who wrote an event: the checks differ (SPEC sections 3 and 4)."""

    DEVICE = "device"
    BACKEND = "backend"


class Envelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The envelope as it travels, before its payload is read (also its JSON Schema)."""

    id: _Id
    type: str
    schema: int
    board: _Id
    entity: _Id
    hlc: _Hlc
    device: _DeviceId
    payload: dict[str, Any]
    actor: str | None = None
    seq: int | None = None
    received_at: int | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A validated event: the envelope with its typed payload and the backend's stamps."""

    id: str
    type: str
    schema: int
    board: str
    entity: str
    hlc: str
    device: str
    payload: Payload
    actor: str | None = None
    seq: int | None = None
    received_at: int | None = None

    @property
    def stamp(self) -> tuple[str, str]:
        """The merge order of this event: (hlc, id), compared bytewise."""
        return (self.hlc, self.id)

    @property
    def timestamp(self) -> Timestamp:
        return parse_hlc(self.hlc)

    def require_actor(self) -> str:
        """The user who wrote it: stamped by the backend, filled in by a device for its own."""
        if self.actor is None:
            raise MergeError(f"{self.type} {self.id} has no actor, and its merge needs one")
        return self.actor


def read_event_id(raw: object) -> str:
    """The id of a raw event, if it has a readable one; else UnreadableEvent (batch is 422)."""
    if isinstance(raw, dict):
        event_id = raw.get("id")
        if isinstance(event_id, str) and event_id:
            return event_id
    raise UnreadableEvent("every event must be a JSON object with a string `id`")


def validate_event(raw: object, writer: Writer) -> Event:
    """Validate one decoded JSON event as written by ``writer``; see the module docstring."""
    event_id = read_event_id(raw)
    try:
        return _validate(raw, writer)
    except EventRejected as rejected:
        rejected.event_id = event_id
        raise


def decode_event(data: bytes, writer: Writer = Writer.BACKEND) -> Event:
    """Decode and validate one event from JSON bytes (a stream message, an outbox row)."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise EventRejected(Reason.INVALID, f"not JSON: {exc}") from exc
    return validate_event(raw, writer)


class _Stored(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An event as the backend stores it: the envelope's checks, the payload still bytes."""

    id: _Id
    type: str
    schema: int
    board: _Id
    entity: _Id
    hlc: _Hlc
    device: _DeviceId
    payload: msgspec.Raw
    actor: str | None = None
    seq: int | None = None
    received_at: int | None = None


_stored_decoder = msgspec.json.Decoder(_Stored)
_payload_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
"""By payload struct: its decoder from bytes, constraints checked (made on first use)."""


def decode_stored_event(data: bytes) -> Event:
    """``decode_event(data, Writer.BACKEND)``, faster for what the backend itself stored.

    An event at its type's current schema is decoded straight into its typed structs, in
    one pass of msgspec's (the envelope's and the payload's constraints are checked there,
    no dict is built on the way). Anything else (an older schema to upcast, an unknown
    type, bytes that are no event) goes through ``decode_event``: the same event, or the
    same error, either way."""
    event = decode_typed(data, Writer.BACKEND)
    return event if event is not None else decode_event(data, Writer.BACKEND)


def decode_typed(data: bytes, writer: Writer) -> Event | None:
    """The event in ``data`` read straight into its typed structs, as ``validate_event``
    would make it for ``writer``; None whenever that function might say anything else
    (an error, an older schema to upcast, a key only the backend writes from a device):
    the caller then takes the full path, which names what is wrong."""
    try:
        stored = _stored_decoder.decode(data)
        spec = CATALOG.get(stored.type)
        if spec is None or stored.schema != spec.current_schema:
            return None
        if spec.entity == "board" and stored.entity != stored.board:
            return None
        decoder = _payload_decoders.get(spec.payload)
        if decoder is None:
            decoder = _payload_decoders[spec.payload] = msgspec.json.Decoder(spec.payload)
        payload: Payload = decoder.decode(stored.payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if writer is Writer.DEVICE and not _a_devices(stored, spec.backend_only, payload):
        return None
    return _event(stored, stored.schema, payload, writer)


def _event(head: Envelope | _Stored, schema: int, payload: Payload, writer: Writer) -> Event:
    """The event of a checked envelope: the backend's stamps only from the backend."""
    backend = writer is Writer.BACKEND
    return Event(
        id=head.id,
        type=head.type,
        schema=schema,
        board=head.board,
        entity=head.entity,
        hlc=head.hlc,
        device=head.device,
        payload=payload,
        actor=head.actor if backend else None,
        seq=head.seq if backend else None,
        received_at=head.received_at if backend else None,
    )


def _a_devices(stored: _Stored, backend_only: bool, payload: Payload) -> bool:
    """What a device may write (``_check_ids``, ``_refuse_backend_keys``), on typed structs:
    a key the backend writes decodes to something other than UNSET."""
    if backend_only or uuid_version(stored.id) not in DEVICE_ID_VERSIONS:
        return False
    if not DEVICE_ID_RE.fullmatch(stored.hlc.rsplit(":", 1)[-1]):
        return False  # the node of a compensation (``~saga``)
    if any(getattr(payload, key, UNSET) is not UNSET for key in BACKEND_ONLY_PAYLOAD_KEYS):
        return False
    return not (isinstance(payload, TaskUpdated) and payload.fields.deleted is not UNSET)


def encode_event(event: Event) -> bytes:
    """The event as JSON bytes, stamps included (what goes on the stream)."""
    return msgspec.json.encode(event)


def canonical_bytes(event: Event) -> bytes:
    """Sorted-key JSON of what the device wrote: no backend stamps, no defaults."""
    unstamped = msgspec.structs.replace(event, actor=None, seq=None, received_at=None)
    return msgspec.json.encode(unstamped, order="sorted")


def event_hash(event: Event) -> str:
    """sha256 of the canonical form: equal for a byte-for-byte resend of the same event."""
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


def _invalid(detail: str) -> EventRejected:
    return EventRejected(Reason.INVALID, detail)


def _where(error: msgspec.ValidationError, prefix: str) -> str:
    """msgspec says "... - at `$.fields.title`"; name the field from the event's root."""
    message = str(error)
    if " - at `$" in message:
        text, _, path = message.rpartition(" - at `$")
        return f"{prefix}{path.rstrip('`')}: {text}"
    return f"{prefix}: {message}"


def _validate(raw: object, writer: Writer) -> Event:
    if isinstance(raw, dict):
        _check_ids(raw, writer)  # before the struct, whose pattern errors say less
    try:
        envelope = msgspec.convert(raw, Envelope)
    except msgspec.ValidationError as exc:
        raise _invalid(_where(exc, "event")) from exc
    spec = CATALOG.get(envelope.type)
    if spec is None:
        raise EventRejected(
            Reason.UNKNOWN_TYPE, f"type {envelope.type!r} is not in the v1 event catalog"
        )
    if envelope.schema not in spec.payloads:
        supported = ", ".join(str(v) for v in sorted(spec.payloads))
        raise EventRejected(
            Reason.UNSUPPORTED_SCHEMA,
            f"{envelope.type} schema {envelope.schema} is not supported (supported: {supported})",
        )
    if spec.backend_only and writer is Writer.DEVICE:
        raise EventRejected(Reason.FORBIDDEN, f"{envelope.type} is written by the backend only")
    if writer is Writer.DEVICE:
        _refuse_backend_keys(envelope)
    payload_dict = envelope.payload
    for version in range(envelope.schema, spec.current_schema):
        payload_dict = spec.upcasters[version](payload_dict)
    try:
        payload: Payload = msgspec.convert(payload_dict, spec.payload)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        raise _invalid(_where(exc, "payload")) from exc
    if spec.entity == "board" and envelope.entity != envelope.board:
        raise _invalid(f"entity: a {envelope.type} names its board as its entity")
    return _event(envelope, spec.current_schema, payload, writer)


def _check_ids(raw: dict[str, Any], writer: Writer) -> None:
    """The ids and the stamp, with a detail a person can act on. A field that is missing
    or not a string is left to the struct, which names it."""
    value = {name: raw.get(name) for name in _ID_FIELDS}
    if isinstance(event_id := value["id"], str):
        version = uuid_version(event_id)
        if version is None:
            raise _invalid("id: must be a lowercase canonical UUID")
        if writer is Writer.DEVICE and version not in DEVICE_ID_VERSIONS:
            raise _invalid(
                f"id: devices make version 4 or 7 UUIDs (version {version} is reserved"
                f"{' for the backend' if version == BACKEND_ID_VERSION else ''})"
            )
    for name in ("board", "entity"):
        if isinstance(text := value[name], str) and uuid_version(text) is None:
            raise _invalid(f"{name}: must be a lowercase canonical UUID")
    if isinstance(device := value["device"], str) and not DEVICE_ID_RE.fullmatch(device):
        raise _invalid("device: 1..64 characters of A-Z a-z 0-9 _ . -")
    if isinstance(stamp := value["hlc"], str):
        try:
            node = parse_hlc(stamp).node
        except ClockError as exc:
            raise _invalid(f"hlc: {exc}") from exc
        if writer is Writer.DEVICE and not DEVICE_ID_RE.fullmatch(node):
            raise _invalid(f"hlc: node {node!r} is not a device id")


def _refuse_backend_keys(envelope: Envelope) -> None:
    backend_keys = BACKEND_ONLY_PAYLOAD_KEYS & envelope.payload.keys()
    if backend_keys:
        raise EventRejected(
            Reason.FORBIDDEN, f"payload.{min(backend_keys)}: written by the backend only"
        )
    fields = envelope.payload.get("fields")
    if envelope.type == TaskUpdated.__name__ and isinstance(fields, dict) and "deleted" in fields:
        raise EventRejected(
            Reason.FORBIDDEN,
            "payload.fields.deleted: written by the backend only (send TaskDeleted)",
        )
