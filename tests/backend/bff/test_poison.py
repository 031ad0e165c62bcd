"""A message the projector can never apply goes to the fault stream; the stream flows on."""

from __future__ import annotations

import base64
import uuid

import msgspec
import pytest

from backend.nats.streams import event_subject
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xff\x00 not json", "undecodable event: invalid: not JSON"),
        (b'{"id": "x", "type": "TaskDeleted"}', "undecodable event: invalid"),
        (None, "event has no actor"),
        ("unknown-type", "unknown_type"),
    ],
    ids=["bytes", "bad-envelope", "no-actor", "unknown-type"],
)
def test_a_poison_message_is_faulted_and_later_events_are_still_projected(
    module_backend: BackendProcess, module_nats: ControlledNats, data: object, error: str
) -> None:
    alice = Device(module_backend.url, f"poison{uuid.uuid4().hex[:6]}").signup()
    board, created = alice.new_board()
    alice.push(created)
    if data is None:  # a well-formed event that did not come through the BFF
        _, task = alice.new_task(board)
        data = msgspec.json.encode(task)
    elif data == "unknown-type":
        _, task = alice.new_task(board)
        data = msgspec.json.encode({**task, "type": "TaskArchived", "actor": alice.username})
    assert isinstance(data, bytes)
    poison_seq = module_nats.publish(event_subject(board), data)
    _, after = alice.new_task(board, title="after the poison")
    [result] = alice.push(after)
    assert result["seq"] > poison_seq
    alice.sync_until(result["seq"])
    assert alice.values("task", after["entity"])["title"] == "after the poison"  # type: ignore[index]
    faults = module_nats.faults()  # every consumer faults it (the workload too), each once
    [fault] = [f for f in faults if f["seq"] == poison_seq and f["component"] == "projector"]
    assert error in fault["error"]
    assert fault["deliveries"] >= 1
    assert base64.b64decode(fault["data"]) == data
