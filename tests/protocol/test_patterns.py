"""Every pattern of the contract is ASCII and whole-string, wherever it is checked.

The pattern fields are found by walking the catalog's types (``pattern_fields``), not from a
list, and each must have a generator in ``CONTRACT``; a new patterned field without one fails
``test_every_pattern_field_has_a_generator``. FAULTS row 19: Unicode digits, fullwidth
letters, trailing newlines and control characters are ``invalid`` in every such field.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import EventRejected, Reason, Writer, jsonschema, patterns, validate_event
from protocol.catalog import BACKEND_ONLY_PAYLOAD_KEYS, CATALOG
from protocol.envelope import Envelope
from tests.protocol.builders import TASK, event_id, raw
from tests.protocol.contract_patterns import CONTRACT, ITEM, hostile, pattern_fields
from tests.protocol.contract_patterns import Path as FieldPath

BASE_PAYLOADS: dict[str, dict[str, Any]] = {
    "BoardCreated": {"name": "b"},
    "BoardUpdated": {"fields": {"name": "b"}},
    "MemberAdded": {"username": "bob"},
    "MemberRemoved": {"username": "bob"},
    "TaskCreated": {"title": "t", "position": "a0"},
    "TaskUpdated": {"fields": {"title": "t"}},
    "TaskLabelAdded": {"label": "x"},
    "TaskLabelRemoved": {"label": "x", "observed": []},
    "TaskDeleted": {},
    "TaskRestored": {},
    "CommentAdded": {"task": TASK, "body": "b"},
    "CommentDeleted": {},
    "WipLimitExceeded": {"assignee": "bob", "limit": 1, "cause": event_id(1)},
    "ReminderDue": {"assignee": "bob", "due": "2026-01-02", "cause": event_id(1), "message": "m"},
}


def _fields() -> list[tuple[str, FieldPath, str]]:
    """(event type, path in the event, pattern) of every patterned field of the catalog."""
    found = []
    for name, spec in CATALOG.items():
        for path, pattern in pattern_fields(Envelope):
            found.append((name, path, pattern))
        for payload in spec.payloads.values():
            for path, pattern in pattern_fields(payload):
                found.append((name, ("payload", *path), pattern))
    return found


FIELDS = _fields()


def test_the_walk_finds_the_fields_the_contract_names() -> None:
    """A self-check of the walk: the fields SPEC names are among those it finds."""
    found = {(name, path) for name, path, _ in FIELDS}
    expected = {
        ("TaskCreated", ("hlc",)),
        ("TaskCreated", ("device",)),
        ("TaskCreated", ("board",)),
        ("TaskCreated", ("payload", "assignee")),
        ("TaskCreated", ("payload", "due")),
        ("TaskUpdated", ("payload", "fields", "position")),
        ("TaskLabelRemoved", ("payload", "observed", ITEM)),
        ("MemberAdded", ("payload", "username")),
        ("CommentAdded", ("payload", "task")),
        ("WipLimitExceeded", ("payload", "cause")),
    }
    assert expected <= found


def test_every_pattern_field_has_a_generator() -> None:
    missing = {pattern for _, _, pattern in FIELDS} - CONTRACT.keys()
    assert not missing, f"patterns without a generator in CONTRACT: {sorted(missing)}"


def test_every_exported_schema_pattern_has_a_generator() -> None:
    """The JSON Schemas of docs/ (events, AsyncAPI, OpenAPI) hold only contract patterns."""
    missing = set(_exported_patterns()) - CONTRACT.keys()
    assert not missing, f"exported patterns without a generator in CONTRACT: {sorted(missing)}"


def test_every_catalog_type_has_a_base_event() -> None:
    assert BASE_PAYLOADS.keys() == CATALOG.keys()


def _event_with(type_: str, path: FieldPath, value: str) -> dict[str, Any]:
    event = raw(type_, json.loads(json.dumps(BASE_PAYLOADS[type_])))
    if CATALOG[type_].entity == "board" and path in {("board",), ("entity",)}:
        event["board"] = event["entity"] = value
        return event
    listed = path[-1] == ITEM
    *steps, last = path[:-1] if listed else path
    target: Any = event
    for step in steps:
        target = target.setdefault(step, {})
    target[last] = [value] if listed else value
    return event


def _writers(type_: str, path: FieldPath) -> list[Writer]:
    backend_only = CATALOG[type_].backend_only or bool(BACKEND_ONLY_PAYLOAD_KEYS & set(path))
    return [Writer.BACKEND] if backend_only else [Writer.BACKEND, Writer.DEVICE]


@given(field=st.sampled_from(FIELDS), rng=st.randoms(use_true_random=False))
def test_every_pattern_field_refuses_hostile_text_and_takes_valid_text(
    field: tuple[str, FieldPath, str], rng: random.Random
) -> None:
    type_, path, pattern = field
    valid = CONTRACT[pattern].make(rng)
    accepted = validate_event(_event_with(type_, path, valid), Writer.BACKEND)
    assert accepted.type == type_
    for text in hostile(valid, rng):
        for writer in _writers(type_, path):
            with pytest.raises(EventRejected) as info:
                validate_event(_event_with(type_, path, text), writer)
            assert info.value.reason is Reason.INVALID, (path, text, info.value)


@pytest.mark.parametrize("contract", CONTRACT.values(), ids=lambda c: c.name)
@given(rng=st.randoms(use_true_random=False))
def test_what_the_product_makes_parses_and_formats_back(contract: Any, rng: random.Random) -> None:
    value = contract.make(rng)
    assert contract.format(contract.parse(value)) == value
    assert re.search(contract.anchored, value)


@pytest.mark.parametrize("contract", CONTRACT.values(), ids=lambda c: c.name)
@given(data=st.data())
def test_parse_accepts_only_what_format_writes(contract: Any, data: st.DataObject) -> None:
    """Anything the pattern lets through either is refused by the parse, or formats back
    to exactly itself: no second spelling of one value (a wall of 0, a Unicode digit)."""
    text = data.draw(st.from_regex(patterns.compile_whole(contract.body), fullmatch=True))
    try:
        parsed = contract.parse(text)
    except ValueError:
        return
    assert contract.format(parsed) == text


@pytest.mark.parametrize("contract", CONTRACT.values(), ids=lambda c: c.name)
@given(rng=st.randoms(use_true_random=False), noise=st.text())
def test_msgspec_and_the_python_check_agree(contract: Any, rng: random.Random, noise: str) -> None:
    """msgspec searches with the anchored pattern; Python checks fullmatch with re.ASCII."""
    check = patterns.compile_whole(contract.body)
    typed = Annotated[str, msgspec.Meta(pattern=contract.anchored)]
    valid = contract.make(rng)
    for text in [valid, noise, *hostile(valid, rng)]:
        try:
            msgspec.convert(text, typed)
            by_msgspec = True
        except msgspec.ValidationError:
            by_msgspec = False
        assert by_msgspec == (check.fullmatch(text) is not None), text


def _exported_patterns() -> list[str]:
    documents: list[Any] = list(jsonschema.documents().values())
    docs = Path(__file__).resolve().parents[2] / "docs"
    for name in ("openapi.json", "asyncapi.json"):
        if (docs / name).exists():
            documents.append(json.loads((docs / name).read_text()))
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(documents)
    return found


_NODE_CHECK = r"""
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const failures = [];
for (const c of cases) {
  for (const flags of ['', 'u']) {
    const where = `${c.pattern} /${flags}`;
    let re;
    try { re = new RegExp(c.pattern, flags); }
    catch (e) { failures.push(`${where}: does not compile: ${e.message}`); continue; }
    const say = (what, v) => failures.push(`${where}: ${what} ${JSON.stringify(v)}`);
    for (const v of c.valid) if (!re.test(v)) say('refuses', v);
    for (const v of c.invalid) if (re.test(v)) say('accepts', v);
  }
}
process.stdout.write(JSON.stringify(failures));
"""


@pytest.mark.integration
def test_every_exported_pattern_is_valid_ecma262_and_whole_string_there_too() -> None:
    """The JSON Schemas are read by other languages: node compiles each exported pattern
    (with and without the ``u`` flag) and checks the valid and hostile values there."""
    node = shutil.which("node")
    assert node, "node checks the exported patterns as ECMA-262: apt-get install nodejs"
    rng = random.Random(19)
    cases = []
    for pattern in sorted(set(_exported_patterns()) | {c.anchored for c in CONTRACT.values()}):
        contract = CONTRACT[pattern]
        valid = [contract.make(rng) for _ in range(20)]
        invalid = [text for value in valid for text in hostile(value, rng)]
        cases.append({"pattern": pattern, "valid": valid, "invalid": invalid})
    result = subprocess.run(
        [node, "-e", _NODE_CHECK],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == []
