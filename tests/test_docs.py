"""The contract documents in docs/ are current, and they say what the code accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from outpost import docs
from protocol import EventRejected, Writer, validate_event
from tests.protocol.builders import raw
from tests.protocol.test_envelope import PAYLOAD_FAULTS, VALID_EVENTS

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
    return json.loads((DOCS / "schema" / "events" / f"{type_}.v1.schema.json").read_text())


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
    if not any(rule in str(_rejection(raw(case[0], case[1])).detail) for rule in BEYOND_JSON_SCHEMA)
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
