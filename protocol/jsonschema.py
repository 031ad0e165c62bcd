"""JSON Schema (2020-12) of the envelope and of every event type, made from the structs.

``documents()`` returns file name -> schema; ``outpost docs`` writes them under ``docs/``
and a test checks that the files there are current.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from protocol.catalog import CATALOG, EventSpec
from protocol.envelope import Envelope

__all__ = ["DIALECT", "documents", "render"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _envelope() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(Envelope)
    body: dict[str, Any] = schema["$defs"]["Envelope"]
    body["description"] = (
        "An Outpost event (SPEC section 3). actor, seq and received_at are stamped by the "
        "backend and ignored when a device sends them."
    )
    return body


def _event(spec: EventSpec, version: int) -> dict[str, Any]:
    payload = spec.payloads[version]
    components: dict[str, Any] = msgspec.json.schema_components(
        [payload], ref_template="#/$defs/{name}"
    )[1]
    body = copy.deepcopy(_envelope())
    body["title"] = f"{spec.name} v{version}"
    body["description"] = f"{spec.name}, schema {version}: an event on a {spec.entity}" + (
        ", written by the backend only." if spec.backend_only else "."
    )
    body["properties"]["type"] = {"const": spec.name}
    body["properties"]["schema"] = {"const": version}
    body["properties"]["payload"] = {"$ref": f"#/$defs/{payload.__name__}"}
    return {"$schema": DIALECT, **body, "$defs": components}


def documents() -> dict[str, dict[str, Any]]:
    """Every schema document by its file name under ``docs/schema/``."""
    docs = {"envelope.schema.json": {"$schema": DIALECT, **_envelope()}}
    for spec in CATALOG.values():
        for version in sorted(spec.payloads):
            docs[f"events/{spec.name}.v{version}.schema.json"] = _event(spec, version)
    return docs


def render(document: dict[str, Any]) -> bytes:
    """Stable bytes for a schema file: sorted keys, indented, one trailing newline."""
    return msgspec.json.format(msgspec.json.encode(document, order="sorted"), indent=2) + b"\n"
