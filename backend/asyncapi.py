"""The trilateral API's event side: what each backend component publishes and consumes.

``COMPONENTS`` below is the one declaration of who sends and who receives which message on
which NATS subject; ``document()`` turns it into an AsyncAPI 3.0 document. The message
schemas are not written here: the events' come from ``protocol.jsonschema`` (the same
schemas as ``docs/schema/``), the fault event's and the change notice's from their msgspec
structs. The document is served at ``GET /v1/asyncapi.json`` and written to
``docs/asyncapi.json`` by ``outpost docs``, which CI checks to be current.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from backend.bff.health import ConsumerStatus
from backend.bff.sync.live import ChangeNotice
from backend.bff.sync.live_cap import LiveConnections
from backend.components import SPECS
from backend.consumers.child import HEALTH_SUBJECT_PREFIX
from backend.consumers.runner import FaultEvent
from backend.gateway.component import WAKE_SUBJECT
from backend.nats.streams import (
    CHANGES_SUBJECT,
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    FAULTS_STREAM,
    FAULTS_SUBJECT_PREFIX,
    LIVE_SUBJECT,
    SCHEDULES_DUE_PREFIX,
    SCHEDULES_PLAN_PREFIX,
    SCHEDULES_STREAM,
)
from backend.orchestrator.rules import PROCESSES
from backend.orchestrator.timers import Plan
from protocol import jsonschema, patterns
from protocol.catalog import CATALOG

__all__ = [
    "ASYNCAPI_VERSION",
    "CHANNELS",
    "COMPONENTS",
    "EVENT_TYPES",
    "MESSAGES",
    "Channel",
    "ComponentApi",
    "Flow",
    "consumes",
    "document",
    "publishes",
    "render",
]

ASYNCAPI_VERSION = "3.0.0"
SCHEMAS_REF = "#/components/schemas/"

Action = Literal["send", "receive"]


@dataclass(frozen=True)
class Channel:
    address: str
    description: str
    parameters: tuple[tuple[str, str], ...] = ()
    """(name, description) of each ``{name}`` in the address."""


@dataclass(frozen=True)
class Flow:
    """Messages one component sends to, or receives from, one channel."""

    channel: str
    messages: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class ComponentApi:
    name: str
    summary: str
    publishes: tuple[Flow, ...] = ()
    consumes: tuple[Flow, ...] = ()


CHANNELS: dict[str, Channel] = {
    "events": Channel(
        f"{EVENTS_SUBJECT_PREFIX}.{{board}}",
        f"Every accepted event, on stream {EVENTS_STREAM}, one subject per board, kept for "
        "ever. The header Nats-Msg-Id is the event id, so JetStream drops a re-sent event.",
        (("board", "the board id of the event (its envelope's `board`)"),),
    ),
    "changes": Channel(
        CHANGES_SUBJECT,
        "Core NATS (no stream): a notice after each commit of a view, which every BFF "
        "process turns into live pokes.",
    ),
    "live": Channel(
        LIVE_SUBJECT,
        "Core NATS (no stream): each BFF process announces the live connections it holds, "
        "per user, so the per-user cap holds across processes.",
    ),
    "schedules": Channel(
        f"{SCHEDULES_PLAN_PREFIX}.{{task}}",
        f"The orchestrator's timers, on stream {SCHEDULES_STREAM} (never on "
        f"{EVENTS_STREAM}): one message schedule per task (headers `Nats-Schedule: @at "
        f"<RFC 3339 UTC>` and `Nats-Schedule-Target: {SCHEDULES_DUE_PREFIX}.<task>`), "
        "replaced by publishing again, cancelled by purging the subject.",
        (("task", "the task id the reminder is for"),),
    ),
    "timers": Channel(
        f"{SCHEDULES_DUE_PREFIX}.{{task}}",
        f"What a schedule fires, published by nats-server itself on stream "
        f"{SCHEDULES_STREAM} at its time: the schedule's body. Consumed by the orchestrator "
        "alone.",
        (("task", "the task id the reminder is for"),),
    ),
    "wake": Channel(
        WAKE_SUBJECT,
        "Core NATS (no stream): a redelivery asked for at any BFF process wakes the gateway, "
        "in whichever process it runs, to send due deliveries at once (without it, the "
        "gateway looks again within a second).",
    ),
    "health": Channel(
        f"{HEALTH_SUBJECT_PREFIX}.{{process}}",
        "Core NATS request and reply (no stream): `GET /v1/health` asks the consumers' "
        "process the BFF started how each of its consumers is; the reply comes to the "
        "request's inbox within about a second, else those consumers show `starting` or "
        "`unknown`.",
        (("process", "a random id the BFF gives its consumers' process when it starts it"),),
    ),
    "faults": Channel(
        f"{FAULTS_SUBJECT_PREFIX}.{{component}}",
        f"Messages a component could not process, on stream {FAULTS_STREAM}: kept to be "
        "inspected, retried and resubmitted.",
        (("component", "the component that faulted"),),
    ),
}

EVENT_TYPES: tuple[str, ...] = tuple(CATALOG)
DEVICE_TYPES: tuple[str, ...] = tuple(
    name for name, spec in CATALOG.items() if not spec.backend_only
)
COMPENSATION = "TaskCompensation"
"""The saga's compensating TaskUpdated: its own message, so who writes it is explicit."""
ON_THE_STREAM: tuple[str, ...] = (*EVENT_TYPES, COMPENSATION)
"""Everything a consumer of ``outpost.events.>`` receives."""
SAGA_INPUT: tuple[str, ...] = (
    "BoardCreated",
    "BoardUpdated",
    "TaskCreated",
    "TaskUpdated",
    "TaskDeleted",
    "TaskRestored",
    COMPENSATION,
)
WEBHOOK_TYPES: tuple[str, ...] = tuple(t for t in ON_THE_STREAM if t != "WipLimitExceeded")
"""What the gateway sends to webhooks: every change, not the saga's internal message."""
INBOUND_TYPES: tuple[str, ...] = ("TaskCreated", "TaskUpdated", "TaskLabelAdded")
"""What the gateway's inbound sources write."""


ORCHESTRATOR_INPUT: tuple[str, ...] = (
    "BoardCreated",
    "TaskCreated",
    "TaskUpdated",
    "TaskLabelAdded",
    "TaskLabelRemoved",
    "TaskDeleted",
    "TaskRestored",
    COMPENSATION,
)


def _rules() -> str:
    """The orchestrator's transition tables, in words."""
    parts = []
    for process, table in PROCESSES.items():
        steps = "; ".join(
            f"{state} --{signal}--> {', '.join(t.actions) or 'nothing'}, then {t.next_state}"
            for (state, signal), t in table.items()
        )
        parts.append(f"{process}: {steps}")
    return "Rules as data (state --signal--> actions, then state): " + ". ".join(parts) + "."


def _faults(name: str) -> Flow:
    return Flow(
        "faults",
        ("FaultEvent",),
        f"On {FAULTS_SUBJECT_PREFIX}.{name}: a message {name} can never process, with the "
        "error and the delivery count; the stream position moves past it.",
    )


COMPONENTS: dict[str, ComponentApi] = {
    api.name: api
    for api in (
        ComponentApi(
            "bff",
            "the backend for frontend: devices push and pull over HTTP (see the OpenAPI "
            "document), pushed events go to the stream, change notices become live pokes",
            publishes=(
                Flow(
                    "events",
                    DEVICE_TYPES,
                    "Each event a push accepts, on outpost.events.<board id>, Nats-Msg-Id = "
                    "the event id, stamped with actor, seq and received_at.",
                ),
                Flow(
                    "live",
                    ("LiveConnections",),
                    "When its live connections change (coalesced) and every few seconds: the "
                    "ones it holds per user, with when each opened.",
                ),
                Flow(
                    "wake",
                    ("GatewayWake",),
                    "After a redelivery is asked for (POST /v1/boards/{board}/webhooks/"
                    "{endpoint}/deliveries/{delivery}/redeliver) and written.",
                ),
                Flow(
                    "health",
                    ("HealthQuestion",),
                    "On GET /v1/health, to its consumers' process (when some consumers run "
                    "apart): the stream's last seq, so the process need not ask NATS again.",
                ),
            ),
            consumes=(
                Flow(
                    "changes",
                    ("ChangeNotice",),
                    "Every BFF process subscribes; a notice pokes the live connections of "
                    "the users it concerns.",
                ),
                Flow(
                    "live",
                    ("LiveConnections",),
                    "Every BFF process subscribes: it closes its own connections of a user "
                    "that are not among that user's newest N across all processes.",
                ),
                Flow(
                    "health",
                    ("ConsumerHealth",),
                    "The reply of its consumers' process, on the request's inbox: each of its "
                    "consumers as /v1/health reports it.",
                ),
            ),
        ),
        ComponentApi(
            "projector",
            SPECS["projector"].summary,
            publishes=(
                Flow(
                    "events",
                    (COMPENSATION,),
                    "When it consumes a WipLimitExceeded: the compensating TaskUpdated that "
                    "undoes the cause, on the cause's board.",
                ),
                Flow(
                    "changes",
                    ("ChangeNotice",),
                    "After each commit: the boards and users the batch changed, and the watermark.",
                ),
                _faults("projector"),
            ),
            consumes=(
                Flow(
                    "events",
                    ON_THE_STREAM,
                    "Every event of outpost.events.>, in stream order, into the views that "
                    "pull serves (exactly-once effect: the position commits with the views).",
                ),
            ),
        ),
        ComponentApi(
            "workload",
            SPECS["workload"].summary,
            publishes=(
                Flow(
                    "events",
                    ("WipLimitExceeded",),
                    "When an event takes an assignee over the board's WIP limit, on the "
                    "board's subject; `cause` names that event.",
                ),
                _faults("workload"),
            ),
            consumes=(
                Flow(
                    "events",
                    SAGA_INPUT,
                    "The events that change boards' limits and tasks' assignees and status.",
                ),
            ),
        ),
        ComponentApi(
            "lake",
            SPECS["lake"].summary,
            publishes=(_faults("lake"),),
            consumes=(
                Flow(
                    "events",
                    ON_THE_STREAM,
                    "Every message of outpost.events.>, archived raw (its bytes as stored, "
                    "readable or not), indexed and replayable.",
                ),
            ),
        ),
        ComponentApi(
            "gateway",
            SPECS["gateway"].summary,
            publishes=(
                Flow(
                    "events",
                    INBOUND_TYPES,
                    "Inbound deliveries (POST /v1/inbound/{source}/{board}) translated into "
                    "events, ids derived from the delivery id, written through a push's "
                    "decisions on behalf of the board owner who registered the source.",
                ),
                _faults("gateway"),
            ),
            consumes=(
                Flow(
                    "events",
                    WEBHOOK_TYPES,
                    "Every change of a board and its tasks, queued as one signed webhook "
                    "delivery per registered endpoint of the board (sent apart, retried).",
                ),
                Flow(
                    "wake",
                    ("GatewayWake",),
                    "Any BFF's wake-up after a redelivery: it sends due deliveries now.",
                ),
            ),
        ),
        ComponentApi(
            "orchestrator",
            f"{SPECS['orchestrator'].summary}. {_rules()}",
            publishes=(
                Flow(
                    "events",
                    ("ReminderDue", "TaskCreated"),
                    "Through the push's decisions, on behalf of the board's owner, ids "
                    "derived from the cause: a ReminderDue when a reminder fires (the "
                    "projector makes it a notice, reason reminder, to the assignee), and "
                    "the next occurrence of a recurring task once its merged status is done.",
                ),
                Flow(
                    "schedules",
                    ("ReminderPlan",),
                    "When a task with a due date and an assignee is planned or re-planned "
                    "(due date, assignee or status changed); purged when it is dropped.",
                ),
                _faults("orchestrator"),
            ),
            consumes=(
                Flow(
                    "events",
                    ORCHESTRATOR_INPUT,
                    "Boards' owners and tasks' merged states, in stream order (the position "
                    "commits with the process states).",
                ),
                Flow(
                    "timers",
                    ("ReminderPlan",),
                    "A fired reminder: written as a ReminderDue if it is still the task's "
                    "plan, then acknowledged.",
                ),
            ),
        ),
    )
}


def publishes(component: str) -> dict[str, tuple[str, ...]]:
    """Channel -> messages the component sends."""
    return {flow.channel: flow.messages for flow in COMPONENTS[component].publishes}


def consumes(component: str) -> dict[str, tuple[str, ...]]:
    """Channel -> messages the component receives."""
    return {flow.channel: flow.messages for flow in COMPONENTS[component].consumes}


# ---- messages and their schemas ---------------------------------------------------------


def _event_schema_name(type_: str, version: int) -> str:
    return f"{type_}.v{version}"


def _rewrite_refs(node: Any) -> Any:
    """Local ``#/$defs/X`` references of a protocol schema, as references into the document."""
    if isinstance(node, dict):
        return {
            key: (
                SCHEMAS_REF + value.removeprefix("#/$defs/")
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _add_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if name in schemas and schemas[name] != schema:
        raise ValueError(f"two different schemas are named {name!r}")
    schemas[name] = schema


def _protocol_schemas() -> dict[str, Any]:
    """The envelope and each event type's schema (with its payload's), from ``protocol``."""
    documents = jsonschema.documents()
    schemas: dict[str, Any] = {}

    def take(name: str, document: dict[str, Any]) -> None:
        body = copy.deepcopy(document)
        body.pop("$schema", None)
        for def_name, definition in sorted(body.pop("$defs", {}).items()):
            _add_schema(schemas, def_name, _rewrite_refs(definition))
        _add_schema(schemas, name, _rewrite_refs(body))

    take("Envelope", documents["envelope.schema.json"])
    for spec in CATALOG.values():
        for version in sorted(spec.payloads):
            name = _event_schema_name(spec.name, version)
            take(name, documents[f"events/{name}.schema.json"])
    return schemas


def _struct_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [ChangeNotice, ConsumerStatus, FaultEvent, LiveConnections, Plan],
        ref_template=SCHEMAS_REF + "{name}",
    )
    return dict(components)


def _compensation_schema() -> dict[str, Any]:
    spec = CATALOG["TaskUpdated"]
    return {
        "title": "TaskUpdated, a compensation",
        "description": (
            "A TaskUpdated written by the saga: `compensates` names the event undone and "
            "`reason` says why, in words for the user; `fields` may restore `deleted`. Its id "
            "is a version 5 UUID derived from the cause, so a replay writes the same event "
            "again (a duplicate); its hlc node ends in `~saga`."
        ),
        "allOf": [
            {"$ref": SCHEMAS_REF + _event_schema_name(spec.name, spec.current_schema)},
            {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": patterns.anchored(patterns.DERIVED_UUID)},
                    "hlc": {"type": "string", "pattern": patterns.anchored(patterns.SAGA_HLC)},
                    "payload": {"type": "object", "required": ["fields", "compensates", "reason"]},
                },
            },
        ],
    }


_NATS_MSG_ID = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "the event id: JetStream drops a second message with it",
        }
    },
    "required": ["Nats-Msg-Id"],
}


def _event_payload(type_: str) -> dict[str, Any]:
    versions = sorted(CATALOG[type_].payloads)
    refs = [{"$ref": SCHEMAS_REF + _event_schema_name(type_, v)} for v in versions]
    return refs[0] if len(refs) == 1 else {"oneOf": refs}


def _messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for name, spec in CATALOG.items():
        writer = "the backend only" if spec.backend_only else "devices, through the BFF"
        messages[name] = {
            "name": name,
            "title": name,
            "summary": f"{name}: an event on a {spec.entity}, written by {writer}.",
            "contentType": "application/json",
            "headers": _NATS_MSG_ID,
            "payload": _event_payload(name),
        }
    messages[COMPENSATION] = {
        "name": COMPENSATION,
        "title": "TaskUpdated (compensation)",
        "summary": "The saga's compensating TaskUpdated: its envelope type is TaskUpdated.",
        "contentType": "application/json",
        "headers": _NATS_MSG_ID,
        "payload": {"$ref": SCHEMAS_REF + COMPENSATION},
    }
    messages["ChangeNotice"] = {
        "name": "ChangeNotice",
        "title": "Change notice",
        "summary": "What one commit of a view changed: boards, usernames, and the watermark.",
        "contentType": "application/json",
        "payload": {"$ref": SCHEMAS_REF + "ChangeNotice"},
    }
    messages["LiveConnections"] = {
        "name": "LiveConnections",
        "title": "Live connections",
        "summary": "The live connections one BFF process holds, per user, each with when it "
        "opened (ns) and its id.",
        "contentType": "application/json",
        "payload": {"$ref": SCHEMAS_REF + "LiveConnections"},
    }
    messages["ReminderPlan"] = {
        "name": "ReminderPlan",
        "title": "Reminder plan",
        "summary": "One planned reminder: the body of its message schedule and of what it "
        "fires; `key` seeds the id of the ReminderDue it becomes.",
        "contentType": "application/json",
        "payload": {"$ref": SCHEMAS_REF + "Plan"},
    }
    messages["GatewayWake"] = {
        "name": "GatewayWake",
        "title": "Gateway wake-up",
        "summary": "An empty message: look for due webhook deliveries now.",
        "payload": {"type": "string", "maxLength": 0},
    }
    messages["HealthQuestion"] = {
        "name": "HealthQuestion",
        "title": "Health question",
        "summary": "The events stream's last seq as decimal digits, or empty when the BFF "
        "does not know it (the consumers' process then asks NATS itself).",
        "contentType": "text/plain",
        "payload": {"type": "string"},
    }
    messages["ConsumerHealth"] = {
        "name": "ConsumerHealth",
        "title": "Consumers' health",
        "summary": "Each consumer the process runs, by component name, as /v1/health reports it.",
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "additionalProperties": {"$ref": SCHEMAS_REF + "ConsumerStatus"},
        },
    }
    messages["FaultEvent"] = {
        "name": "FaultEvent",
        "title": "Fault event",
        "summary": "One message a component could not process; `data` is its bytes, base64.",
        "contentType": "application/json",
        "payload": {"$ref": SCHEMAS_REF + "FaultEvent"},
    }
    return messages


MESSAGES: tuple[str, ...] = (
    *ON_THE_STREAM,
    "ChangeNotice",
    "LiveConnections",
    "ReminderPlan",
    "GatewayWake",
    "HealthQuestion",
    "ConsumerHealth",
    "FaultEvent",
)
"""Every message of the document, in the order it lists them."""


# ---- the document ------------------------------------------------------------------------


def _flows() -> Iterator[tuple[ComponentApi, Action, Flow]]:
    for api in COMPONENTS.values():
        for flow in api.publishes:
            yield api, "send", flow
        for flow in api.consumes:
            yield api, "receive", flow


def _channel_messages(channel: str) -> list[str]:
    used = {m for _, _, flow in _flows() if flow.channel == channel for m in flow.messages}
    return [name for name in MESSAGES if name in used]


def _channels() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for key, channel in CHANNELS.items():
        body: dict[str, Any] = {
            "address": channel.address,
            "description": channel.description,
            "messages": {
                name: {"$ref": f"#/components/messages/{name}"} for name in _channel_messages(key)
            },
        }
        if channel.parameters:
            body["parameters"] = {name: {"description": text} for name, text in channel.parameters}
        channels[key] = body
    faulting = [api.name for api, _, flow in _flows() if flow.channel == "faults"]
    channels["faults"]["parameters"]["component"]["enum"] = faulting
    return channels


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for api, action, flow in _flows():
        key = f"{api.name}.{action}.{flow.channel}"
        if key in operations:
            raise ValueError(f"{api.name} declares two {action} flows on {flow.channel}")
        operations[key] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{flow.channel}"},
            "summary": f"{api.name} {'publishes' if action == 'send' else 'consumes'} "
            f"{', '.join(flow.messages)}",
            "description": flow.description,
            "tags": [{"name": api.name}],
            "messages": [
                {"$ref": f"#/channels/{flow.channel}/messages/{name}"} for name in flow.messages
            ],
        }
    return operations


@functools.cache
def _document() -> dict[str, Any]:
    schemas = _protocol_schemas()
    for name, schema in _struct_schemas().items():
        _add_schema(schemas, name, schema)
    _add_schema(schemas, COMPENSATION, _compensation_schema())
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:outpost:events",
        "info": {
            "title": "Outpost events",
            "version": "1.0.0",
            "description": (
                "What each backend component of Outpost publishes and consumes on NATS "
                "(SPEC sections 1, 3 and 4). Operations are named "
                "`<component>.<send|receive>.<channel>` and tagged with their component. "
                "The HTTP side of the BFF is its OpenAPI document (/schema/openapi.json)."
            ),
            "tags": [{"name": api.name, "description": api.summary} for api in COMPONENTS.values()],
        },
        "defaultContentType": "application/json",
        "channels": _channels(),
        "operations": _operations(),
        "components": {"messages": _messages(), "schemas": schemas},
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a fresh copy)."""
    return copy.deepcopy(_document())


@functools.cache
def render() -> bytes:
    """The document as served and written to docs/: sorted keys, indented, stable."""
    return jsonschema.render(_document())
