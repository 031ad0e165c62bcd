"""The contract documents in docs/ are current, and they say what the code accepts."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest

from backend import asyncapi
from backend.bff.sync.live import ChangeNotice
from backend.components import SPECS
from backend.consumers.runner import FaultEvent
from outpost import docs
from outpost.cli import main
from protocol import EventRejected, Writer, validate_event
from protocol.catalog import CATALOG
from protocol.ids import derived_id
from protocol.jsonschema import render as jsonschema_bytes
from tests.protocol.builders import event_id, hlc, raw
from tests.protocol.test_envelope import PAYLOAD_FAULTS, VALID_EVENTS
from tests.support.backend import BackendProcess

DOCS = Path(__file__).parents[1] / "docs"


def _rejection(event: dict[str, Any]) -> EventRejected:
    try:
        validate_event(event, Writer.DEVICE)
    except EventRejected as error:
        return error
    raise AssertionError(f"{event} was accepted")


def test_the_checked_in_documents_are_current() -> None:
    assert docs.stale(DOCS) == [], "run `make docs` and commit docs/"


def _schema_for(type_: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (DOCS / "schema" / "events" / f"{type_}.v1.schema.json").read_text()
    )
    return schema


@pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: e["type"])
def test_the_published_schema_accepts_what_devices_may_send(event: dict[str, Any]) -> None:
    jsonschema.validate(event, _schema_for(event["type"]))
    jsonschema.validate(event, json.loads((DOCS / "schema" / "envelope.schema.json").read_text()))


# Rules JSON Schema cannot state: a real calendar day, a key that ends in its smallest
# digit, and 1.0 (an integer to JSON Schema, a float to Outpost). The code enforces them.
BEYOND_JSON_SCHEMA = ("calendar date", "fractional index", "Expected `int`, got `float`")
EXPRESSIBLE_FAULTS = [
    case
    for case in PAYLOAD_FAULTS
    if not any(
        rule in str(_rejection(raw(case[0], cast(dict[str, Any], case[1]))).detail)
        for rule in BEYOND_JSON_SCHEMA
    )
]


@pytest.mark.parametrize(
    ("type_", "payload", "detail"), EXPRESSIBLE_FAULTS, ids=lambda x: str(x)[:30]
)
def test_the_published_schema_refuses_what_the_code_refuses(
    type_: str, payload: dict[str, Any], detail: str
) -> None:
    event = raw(type_, payload)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, _schema_for(type_))


def test_write_then_check_in_a_fresh_folder(tmp_path: Path) -> None:
    assert docs.stale(tmp_path)  # nothing there yet
    written = docs.write(tmp_path)
    assert sorted(written) == sorted(docs.generated())
    assert docs.stale(tmp_path) == []


def test_check_finds_an_edited_and_an_orphaned_document(tmp_path: Path) -> None:
    docs.write(tmp_path)
    edited = tmp_path / "schema" / "envelope.schema.json"
    edited.write_text("{}")
    orphan = tmp_path / "schema" / "events" / "TaskArchived.v1.schema.json"
    orphan.write_text("{}")
    assert sorted(docs.stale(tmp_path)) == [
        "schema/envelope.schema.json",
        "schema/events/TaskArchived.v1.schema.json",
    ]
    docs.write(tmp_path)
    assert docs.stale(tmp_path) == [] and not orphan.exists()


# ---- the trilateral API: the AsyncAPI and OpenAPI documents --------------------------------

ASYNCAPI: dict[str, Any] = json.loads((DOCS / "asyncapi.json").read_text())
COMPONENT_KEY = r"^[A-Za-z0-9_.\-]+$"

# The shape of AsyncAPI 3.0 (its fixed fields), for the objects this document uses; no
# AsyncAPI meta-schema ships with the installed packages. Schemas are checked apart below.
_TAG = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
}
_REF = {
    "type": "object",
    "required": ["$ref"],
    "additionalProperties": False,
    "properties": {"$ref": {"type": "string"}},
}
ASYNCAPI_3_SHAPE: dict[str, Any] = {
    "type": "object",
    "required": ["asyncapi", "info"],
    "additionalProperties": False,
    "properties": {
        "asyncapi": {"const": "3.0.0"},
        "id": {"type": "string", "format": "uri"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "additionalProperties": False,
            "properties": {
                "title": {"type": "string"},
                "version": {"type": "string"},
                "description": {"type": "string"},
                "tags": {"type": "array", "items": _TAG},
            },
        },
        "servers": {"type": "object"},
        "defaultContentType": {"type": "string"},
        "channels": {
            "type": "object",
            "propertyNames": {"pattern": COMPONENT_KEY},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "address": {"type": ["string", "null"]},
                    "title": {"type": "string"},
                    "summary": {"type": "string"},
                    "description": {"type": "string"},
                    "messages": {
                        "type": "object",
                        "propertyNames": {"pattern": COMPONENT_KEY},
                        "additionalProperties": _REF,
                    },
                    "parameters": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "enum": {"type": "array", "items": {"type": "string"}},
                                "default": {"type": "string"},
                                "description": {"type": "string"},
                                "examples": {"type": "array", "items": {"type": "string"}},
                                "location": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "operations": {
            "type": "object",
            "propertyNames": {"pattern": COMPONENT_KEY},
            "additionalProperties": {
                "type": "object",
                "required": ["action", "channel"],
                "additionalProperties": False,
                "properties": {
                    "action": {"enum": ["send", "receive"]},
                    "channel": _REF,
                    "title": {"type": "string"},
                    "summary": {"type": "string"},
                    "description": {"type": "string"},
                    "tags": {"type": "array", "items": _TAG},
                    "messages": {"type": "array", "items": _REF},
                },
            },
        },
        "components": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "schemas": {"type": "object", "propertyNames": {"pattern": COMPONENT_KEY}},
                "messages": {
                    "type": "object",
                    "propertyNames": {"pattern": COMPONENT_KEY},
                    "additionalProperties": {
                        "type": "object",
                        "required": ["payload"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "title": {"type": "string"},
                            "summary": {"type": "string"},
                            "description": {"type": "string"},
                            "contentType": {"type": "string"},
                            "headers": {"type": "object"},
                            "payload": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a reference inside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _declared_flows() -> dict[str, dict[tuple[str, str], list[str]]]:
    """component -> (action, channel) -> messages, as backend.asyncapi declares them."""
    return {
        name: {
            **{("send", flow.channel): list(flow.messages) for flow in api.publishes},
            **{("receive", flow.channel): list(flow.messages) for flow in api.consumes},
        }
        for name, api in asyncapi.COMPONENTS.items()
    }


def _documented_flows(document: dict[str, Any]) -> dict[str, dict[tuple[str, str], list[str]]]:
    """component -> (action, channel) -> messages, as the document's operations say."""
    flows: dict[str, dict[tuple[str, str], list[str]]] = {}
    for operation in document["operations"].values():
        (tag,) = operation["tags"]
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        messages = [_resolve(document, m["$ref"]) for m in operation["messages"]]
        names = [_resolve(document, m["$ref"])["name"] for m in messages]
        flows.setdefault(tag["name"], {})[(operation["action"], channel)] = names
    return flows


def test_the_asyncapi_document_has_the_shape_of_asyncapi_3() -> None:
    jsonschema.Draft202012Validator(ASYNCAPI_3_SHAPE).validate(ASYNCAPI)
    for name, schema in ASYNCAPI["components"]["schemas"].items():
        # AsyncAPI's default schema format is a superset of JSON Schema draft 7.
        jsonschema.Draft7Validator.check_schema(schema)
        assert "$defs" not in json.dumps(schema), f"{name} keeps a reference of its own"


def test_every_reference_of_the_asyncapi_document_resolves() -> None:
    refs = _refs(ASYNCAPI)
    assert refs
    for ref in refs:
        _resolve(ASYNCAPI, ref)


def test_every_operation_names_an_existing_channel_and_its_messages() -> None:
    for key, operation in ASYNCAPI["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), key
        channel = _resolve(ASYNCAPI, channel_ref)
        assert operation["messages"], key
        for message in operation["messages"]:
            # AsyncAPI 3: an operation's messages must be messages of its channel.
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), (key, message)
            name = message["$ref"].rsplit("/", 1)[1]
            assert name in channel["messages"], (key, name)


def test_channel_parameters_are_the_placeholders_of_the_address() -> None:
    for key, channel in ASYNCAPI["channels"].items():
        placeholders = set(re.findall(r"\{([^}]+)\}", channel["address"]))
        assert placeholders == set(channel.get("parameters", {})), key
    assert ASYNCAPI["channels"]["events"]["address"] == "outpost.events.{board}"
    assert ASYNCAPI["channels"]["changes"]["address"] == "outpost.changes"
    assert ASYNCAPI["channels"]["faults"]["address"] == "outpost.faults.{component}"
    assert ASYNCAPI["channels"]["faults"]["parameters"]["component"]["enum"] == list(SPECS)


def test_each_component_publishes_and_consumes_what_is_declared() -> None:
    assert set(asyncapi.COMPONENTS) == {"bff", *SPECS}
    assert _documented_flows(ASYNCAPI) == _declared_flows()
    assert [tag["name"] for tag in ASYNCAPI["info"]["tags"]] == list(asyncapi.COMPONENTS)


def test_the_declaration_says_what_the_components_do() -> None:
    device_types = [name for name, spec in CATALOG.items() if not spec.backend_only]
    everything = [*CATALOG, asyncapi.COMPENSATION]
    assert _declared_flows() == {
        "bff": {
            ("send", "events"): device_types,
            ("receive", "changes"): ["ChangeNotice"],
            ("send", "live"): ["LiveConnections"],
            ("receive", "live"): ["LiveConnections"],
            ("send", "wake"): ["GatewayWake"],
            ("send", "health"): ["HealthQuestion"],
            ("receive", "health"): ["ConsumerHealth"],
        },
        "projector": {
            ("receive", "events"): everything,
            ("send", "events"): [asyncapi.COMPENSATION],
            ("send", "changes"): ["ChangeNotice"],
            ("send", "faults"): ["FaultEvent"],
        },
        "workload": {
            ("receive", "events"): [
                "BoardCreated",
                "BoardUpdated",
                "TaskCreated",
                "TaskUpdated",
                "TaskDeleted",
                "TaskRestored",
                asyncapi.COMPENSATION,
            ],
            ("send", "events"): ["WipLimitExceeded"],
            ("send", "faults"): ["FaultEvent"],
        },
        "lake": {("receive", "events"): everything, ("send", "faults"): ["FaultEvent"]},
        "gateway": {
            ("receive", "events"): [t for t in everything if t != "WipLimitExceeded"],
            ("receive", "wake"): ["GatewayWake"],
            ("send", "events"): ["TaskCreated", "TaskUpdated", "TaskLabelAdded"],
            ("send", "faults"): ["FaultEvent"],
        },
        "orchestrator": {
            ("receive", "events"): [
                "BoardCreated",
                "TaskCreated",
                "TaskUpdated",
                "TaskLabelAdded",
                "TaskLabelRemoved",
                "TaskDeleted",
                "TaskRestored",
                asyncapi.COMPENSATION,
            ],
            ("receive", "timers"): ["ReminderPlan"],
            ("send", "events"): ["ReminderDue", "TaskCreated"],
            ("send", "schedules"): ["ReminderPlan"],
            ("send", "faults"): ["FaultEvent"],
        },
    }


def test_every_catalog_type_is_documented_sent_and_received() -> None:
    flows = _documented_flows(ASYNCAPI)
    sent = {m for by in flows.values() for (a, c), ms in by.items() if a == "send" for m in ms}
    received = {
        m for by in flows.values() for (a, c), ms in by.items() if a == "receive" for m in ms
    }
    events = ASYNCAPI["channels"]["events"]["messages"]
    for type_ in [*CATALOG, asyncapi.COMPENSATION]:
        assert type_ in events and type_ in ASYNCAPI["components"]["messages"], type_
        assert type_ in sent and type_ in received, type_
    for type_, spec in CATALOG.items():
        for version in spec.payloads:
            schema = ASYNCAPI["components"]["schemas"][f"{type_}.v{version}"]
            assert schema["properties"]["type"] == {"const": type_}
            assert schema["properties"]["schema"] == {"const": version}


def _message_validator(message: str) -> jsonschema.Draft202012Validator:
    payload = ASYNCAPI["components"]["messages"][message]["payload"]
    return jsonschema.Draft202012Validator({**payload, "components": ASYNCAPI["components"]})


@pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: e["type"])
def test_the_message_schemas_accept_what_devices_may_send(event: dict[str, Any]) -> None:
    _message_validator(event["type"]).validate(event)


def test_the_compensation_message_is_a_backend_task_update() -> None:
    cause = event_id()
    compensation = raw(
        "TaskUpdated",
        {
            "fields": {"assignee": None, "deleted": False},
            "compensates": cause,
            "reason": "over the WIP limit",
        },
        id=derived_id("compensation", cause),
        at=hlc(0, node="projector~saga"),
        actor="alice",
        seq=7,
        received_at=1,
    )
    _message_validator(asyncapi.COMPENSATION).validate(compensation)
    _message_validator("TaskUpdated").validate(compensation)
    device_update = raw("TaskUpdated", {"fields": {"assignee": None}})
    assert not _message_validator(asyncapi.COMPENSATION).is_valid(device_update)


def test_the_change_notice_and_fault_event_schemas_are_their_structs() -> None:
    notice = ChangeNotice(component="projector", boards=["b"], usernames=["u"], watermark=3)
    _message_validator("ChangeNotice").validate(msgspec.to_builtins(notice))
    fault = FaultEvent(
        component="lake",
        seq=1,
        subject="outpost.events.b",
        error="unreadable",
        deliveries=1,
        event_id=None,
        data="AA==",
        at=1,
    )
    _message_validator("FaultEvent").validate(msgspec.to_builtins(fault))


def test_the_documents_are_stable() -> None:
    assert asyncapi.render() == jsonschema_bytes(asyncapi.document())
    assert docs.generated() == docs.generated()


def test_building_the_openapi_document_leaves_logging_alone() -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    docs.openapi()
    assert (root.handlers, root.level) == before


def test_check_names_an_edited_asyncapi_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs.write(tmp_path)
    edited = tmp_path / docs.ASYNCAPI
    document = json.loads(edited.read_text())
    del document["operations"]["lake.receive.events"]
    edited.write_text(json.dumps(document))
    assert docs.stale(tmp_path) == [docs.ASYNCAPI]
    assert main(["docs", "--check", "--dir", str(tmp_path)]) == 1
    assert f"outdated: {edited}" in capsys.readouterr().err
    assert main(["docs", "--dir", str(tmp_path)]) == 0
    assert main(["docs", "--check", "--dir", str(tmp_path)]) == 0
    assert json.loads(edited.read_text()) == ASYNCAPI


@pytest.fixture(scope="module")
def served(module_backend: BackendProcess) -> str:
    return module_backend.url


@pytest.mark.integration
def test_the_backend_serves_the_asyncapi_document_without_auth(served: str) -> None:
    reply = httpx.get(f"{served}/v1/asyncapi.json", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.content == (DOCS / "asyncapi.json").read_bytes()


@pytest.mark.integration
def test_the_consumers_health_message_is_what_health_reports(served: str) -> None:
    """``ConsumerHealth`` describes what a consumers' process answers on its health subject,
    which ``/v1/health`` passes on: the consumers of both processes match it."""
    validator = _message_validator("ConsumerHealth")
    deadline = time.monotonic() + 60
    while True:  # the child's consumers show `starting` until it answers
        consumers = httpx.get(f"{served}/v1/health", timeout=10).json()["consumers"]
        if all(c["breaker"] == "closed" for c in consumers.values()):
            break
        assert time.monotonic() < deadline, consumers
        time.sleep(0.2)
    assert {"projector", "workload", "lake"} <= set(consumers)
    validator.validate(consumers)
    assert not validator.is_valid({"lake": {"breaker": "closed"}})  # the rest is required


@pytest.mark.integration
def test_the_openapi_document_in_docs_is_what_the_backend_serves(served: str) -> None:
    reply = httpx.get(f"{served}/schema/openapi.json", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == json.loads((DOCS / "openapi.json").read_text())
    assert "/v1/asyncapi.json" in reply.json()["paths"]
