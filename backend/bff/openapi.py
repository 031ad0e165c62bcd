"""The OpenAPI document of the BFF, complete enough for a client generator or a fuzzer.

Litestar derives paths, parameters and bodies from the handlers; this adds what it cannot
see: the bearer scheme (and the admin token of ``/metrics``), the push body built from the
event schemas of ``protocol/`` (the handler reads the raw bytes, so that one bad event is
only that event's ``invalid``), and every error status SPEC section 6 names per route, each
with the ``{"status_code", "detail"}`` body the error handler writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)

from protocol import PROTOCOL_VERSIONS, jsonschema, patterns
from protocol.catalog import CATALOG

__all__ = ["BEARER", "ErrorBody", "PushOperation", "complete", "config", "errors"]

BEARER: list[SecurityRequirement] = [{"bearer": []}]
"""The security of the routes a signed-in user calls."""
ADMIN: list[SecurityRequirement] = [{}, {"adminToken": []}]
"""Loopback callers need nothing; anyone else the admin token."""


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error: its status code and what to do about it."""

    status_code: int
    detail: str
    extra: Any = None
    """For a refused request body or parameter: which field, and why."""


_MEANINGS = {
    400: "The request is malformed: a body or parameter that is not what this route takes "
    "(the detail names the field).",
    401: "No valid bearer token (or wrong credentials): refresh it or sign in again.",
    403: "The admin token is wrong, or the caller is not the board's owner (the gateway's "
    "registration routes, the board's reminder lead time).",
    404: "No such board, source, webhook, delivery or login mapping; no account has that username.",
    409: "The username is taken.",
    413: "The body is over 1 MiB: split the batch by bytes.",
    422: "The batch cannot be answered event by event (not 1..500 events, or an event with "
    "no readable id); for the gateway: a webhook URL outside the allow-list, or an inbound "
    "body its source cannot read; a reminder lead time outside 0 .. 30 days.",
    426: "The protocol version is outside what this server speaks; the detail names them.",
    429: "Too many requests (or failed sign-ins, or sign-ups from this address): wait the "
    "seconds of Retry-After.",
    503: "The event stream or a database is unavailable: wait the seconds of Retry-After and "
    "send the same request again.",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """The documented error responses of a route."""
    return {
        code: ResponseSpec(
            data_container=ErrorBody, description=_MEANINGS[code], generate_examples=False
        )
        for code in codes
    }


@dataclass
class PushOperation(Operation):
    """The push operation, with its body: the handler reads it raw, Litestar cannot see it."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description=(
                "A batch of 1..500 events, at most 1 MiB. Each event is checked on its own: "
                "one that is not valid is that event's `rejected` result (`invalid`, "
                "`unknown_type`, ...) in a 200 answer, never a refusal of the batch."
            ),
            content={
                "application/json": OpenAPIMediaType(
                    schema=Reference(ref="#/components/schemas/PushRequest")
                )
            },
        )


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Outpost BFF",
        version="1.0.0",
        description="The sync contract v1 of SPEC section 6.",
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="The access token of a session (sign-up, sign-in, refresh).",
                ),
                "adminToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="OUTPOST_ADMIN_TOKEN, for callers that are not on loopback.",
                ),
            },
        ),
    )


def complete(document: OpenAPI) -> None:
    """Add the schemas Litestar cannot derive (it rebuilds the components from the handlers,
    so they are added to the finished document, which the app serves from then on)."""
    document.components.schemas = {**(document.components.schemas or {}), **_event_schemas()}


def _event_schemas() -> dict[str, Schema]:
    """``PushRequest``, ``Event`` (one of the device event types) and what they refer to,
    from the JSON Schemas of ``protocol/`` with their references moved to the components."""
    schemas: dict[str, Any] = {}
    documents = jsonschema.documents()
    device_types = []
    for spec in CATALOG.values():
        if spec.backend_only:
            continue
        for version in sorted(spec.payloads):
            document = documents[f"events/{spec.name}.v{version}.schema.json"]
            name = f"{spec.name}V{version}Event"
            event = {k: v for k, v in document.items() if k not in ("$schema", "$defs")}
            renamed = {spec.payloads[version].__name__: f"{spec.name}V{version}Payload"}
            for definition, body in document.get("$defs", {}).items():
                schemas[renamed.get(definition, definition)] = _moved(body, renamed)
            schemas[name] = _moved(event, renamed)
            device_types.append({"$ref": f"#/components/schemas/{name}"})
    low, high = PROTOCOL_VERSIONS
    schemas["Event"] = {
        "description": "An event as a device writes it (SPEC sections 3 and 4).",
        "oneOf": device_types,
    }
    schemas["PushRequest"] = {
        "type": "object",
        "required": ["device", "protocol", "events"],
        "additionalProperties": False,
        "properties": {
            "device": {"type": "string", "pattern": patterns.anchored(patterns.DEVICE_ID)},
            "protocol": {"type": "integer", "minimum": low, "maximum": high},
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": 500,
                "items": {"$ref": "#/components/schemas/Event"},
            },
        },
    }
    return cast(dict[str, Schema], schemas)


def _moved(schema: Any, renamed: dict[str, str]) -> Any:
    """``schema`` with ``#/$defs/X`` references pointing into the components instead."""
    text = msgspec.json.encode(schema).decode()

    def target(match: re.Match[str]) -> str:
        name = match.group(1)
        return f'"#/components/schemas/{renamed.get(name, name)}"'

    return msgspec.json.decode(re.sub(r'"#/\$defs/([A-Za-z0-9_]+)"', target, text))
