"""Every status and rejection reason of the push contract, against a real backend.

Each bad request asserts the answer and that nothing reached the stream or the views.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from protocol import derived_id, format_hlc
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


class Unchanged:
    """Asserts that a block put nothing on the stream and changed no view."""

    def __init__(self, nats: ControlledNats, device: Device) -> None:
        self.nats = nats
        self.device = device

    def __enter__(self) -> None:
        self.stream = len(self.nats.events())
        self.device.sync_until(self.stream)  # every message here is an event: seq == count
        self.state = dict(self.device.state)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        assert len(self.nats.events()) == self.stream, "something reached the stream"
        self.device.pull()
        assert self.device.state == self.state, "a view changed"


@pytest.fixture
def alice(module_backend: BackendProcess) -> Device:
    return Device(module_backend.url, f"alice{uuid.uuid4().hex[:8]}").signup()


@pytest.fixture
def board(alice: Device, module_nats: ControlledNats) -> Iterator[str]:
    board_id, created = alice.new_board()
    [result] = alice.push(created)
    assert result["status"] == "accepted"
    alice.sync_until(result["seq"])
    yield board_id


def test_accepted_events_get_their_stream_seq_in_order(
    alice: Device, module_nats: ControlledNats
) -> None:
    board_id, created = alice.new_board()
    _, task = alice.new_task(board_id)
    results = alice.push(created, task)
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert [r["id"] for r in results] == [created["id"], task["id"]]
    assert results[0]["seq"] < results[1]["seq"]
    stored = {e["id"]: e for e in module_nats.events()}
    assert stored[task["id"]]["actor"] == alice.username
    assert stored[task["id"]]["seq"] == results[1]["seq"]
    assert isinstance(stored[task["id"]]["received_at"], int)


def test_a_resent_batch_is_duplicate_with_the_first_seq_and_changes_nothing(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    _, task = alice.new_task(board)
    first = alice.push(task)
    with Unchanged(module_nats, alice):
        again = alice.push(task)
    assert again == [{"id": task["id"], "status": "duplicate", "seq": first[0]["seq"]}]


def test_the_same_id_twice_in_one_batch_is_stored_once(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    _, task = alice.new_task(board)
    results = alice.push(task, task)
    assert [r["status"] for r in results] == ["accepted", "duplicate"]
    assert results[0]["seq"] == results[1]["seq"]
    assert [e["id"] for e in module_nats.events()].count(task["id"]) == 1


def test_an_id_reused_with_other_content_is_id_conflict(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    _, task = alice.new_task(board)
    alice.push(task)
    changed = {**task, "payload": {**task["payload"], "title": "Another"}}
    with Unchanged(module_nats, alice):
        [result] = alice.push(changed)
    assert (result["status"], result["reason"]) == ("rejected", "id_conflict")


def test_an_id_reused_by_another_user_is_id_conflict(
    alice: Device, board: str, module_backend: BackendProcess, module_nats: ControlledNats
) -> None:
    _, task = alice.new_task(board)
    alice.push(task)
    bob = Device(module_backend.url, f"bob{uuid.uuid4().hex[:8]}").signup()
    bob_board, created = bob.new_board()
    bob.push(created)
    stolen = {**task, "board": bob_board, "device": bob.device_id, "hlc": bob.clock.now()}
    with Unchanged(module_nats, bob):
        [result] = bob.push(stolen)
    assert (result["status"], result["reason"]) == ("rejected", "id_conflict")


def _wall_of(device: Device, offset_ms: int) -> str:
    wall = int(device.clock.now().split(":")[0]) + offset_ms
    return format_hlc(wall, 0, device.device_id)


def test_a_clock_more_than_5_minutes_ahead_is_clock_skew_and_the_rest_goes_on(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    _, ahead = alice.new_task(board, title="from the future")
    ahead["hlc"] = _wall_of(alice, 24 * 3600 * 1000)
    _, fine = alice.new_task(board, title="now")
    _, slightly = alice.new_task(board, title="4 minutes ahead")
    slightly["hlc"] = _wall_of(alice, 4 * 60 * 1000)
    results = alice.push(ahead, fine, slightly)
    assert results[0]["status"] == "rejected" and results[0]["reason"] == "clock_skew"
    assert "ahead of the server" in results[0]["detail"]
    assert [results[1]["status"], results[2]["status"]] == ["accepted", "accepted"]
    assert ahead["id"] not in {e["id"] for e in module_nats.events()}


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        ({"type": "TaskArchived"}, "unknown_type", "not in the v1 event catalog"),
        ({"schema": 2}, "unsupported_schema", "supported: 1"),
        ({"payload": {"title": "", "position": "a0"}}, "invalid", "payload.title"),
        ({"payload": {"title": "t", "position": "a0", "x": 1}}, "invalid", "unknown field `x`"),
        ({"id": "NOT-A-UUID"}, "invalid", "id: must be a lowercase canonical UUID"),
        ({"id": derived_id("x", "y")}, "invalid", "reserved for the backend"),
        ({"hlc": "yesterday"}, "invalid", "hlc:"),
        ({"type": "WipLimitExceeded", "payload": {}}, "forbidden", "backend only"),
    ],
    ids=["unknown-type", "schema-2", "title", "unknown-key", "id", "v5-id", "hlc", "saga-type"],
)
def test_a_faulty_event_is_rejected_with_its_reason_and_the_rest_is_accepted(
    alice: Device,
    board: str,
    module_nats: ControlledNats,
    change: dict[str, Any],
    reason: str,
    detail: str,
) -> None:
    _, bad = alice.new_task(board)
    bad.update(change)
    _, good = alice.new_task(board)
    stream_before = len(module_nats.events())
    bad_result, good_result = alice.push(bad, good)
    assert (bad_result["id"], bad_result["status"], bad_result["reason"]) == (
        bad["id"],
        "rejected",
        reason,
    )
    assert detail in bad_result["detail"]
    assert good_result["status"] == "accepted"
    assert len(module_nats.events()) == stream_before + 1


def test_backend_only_payload_keys_are_forbidden(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    task_id, task = alice.new_task(board)
    alice.push(task)
    sneaky = [
        alice.event("TaskUpdated", {"fields": {"deleted": False}}, board=board, entity=task_id),
        alice.event(
            "TaskUpdated",
            {"fields": {"status": "todo"}, "compensates": task["id"], "reason": "x"},
            board=board,
            entity=task_id,
        ),
    ]
    with Unchanged(module_nats, alice):
        results = alice.push(*sneaky)
    assert [(r["status"], r["reason"]) for r in results] == [("rejected", "forbidden")] * 2


def test_an_archived_board_takes_only_its_owners_board_updates(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    task_id, task = alice.new_task(board)
    archive = alice.event("BoardUpdated", {"fields": {"archived": True}}, board=board)
    assert [r["status"] for r in alice.push(task, archive)] == ["accepted"] * 2
    alice.sync_until(max(e["seq"] for e in module_nats.events()))
    edit = alice.event("TaskUpdated", {"fields": {"title": "x"}}, board=board, entity=task_id)
    with Unchanged(module_nats, alice):
        [result] = alice.push(edit)
    assert (result["status"], result["reason"]) == ("rejected", "archived")
    unarchive = alice.event("BoardUpdated", {"fields": {"archived": False}}, board=board)
    assert alice.push(unarchive)[0]["status"] == "accepted"
    again = alice.event("TaskUpdated", {"fields": {"title": "x"}}, board=board, entity=task_id)
    assert alice.push(again)[0]["status"] == "accepted"


def test_a_batch_that_creates_a_board_then_100_tasks_is_accepted_whole(alice: Device) -> None:
    board_id, created = alice.new_board()
    tasks = [alice.new_task(board_id, title=f"t{i}")[1] for i in range(100)]
    results = alice.push(created, *tasks)
    assert {r["status"] for r in results} == {"accepted"}
    alice.sync_until(results[-1]["seq"])
    assert len([k for k in alice.state if k[0] == "task"]) >= 100


# Statuses of the whole request


def test_a_body_over_1_mib_is_413_before_parsing(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    _, task = alice.new_task(board, notes="x" * 20_000)
    with Unchanged(module_nats, alice):
        response = alice.push_raw([task] * 60)  # about 1.3 MB
    assert response.status_code == 413
    assert response.json()["status_code"] == 413


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"device": "d-x", "protocol": 1}',
        b'{"device": "d-x", "protocol": 1, "events": "x"}',
        b'{"device": "d:x", "protocol": 1, "events": [{"id": "a"}]}',
        b'{"device": "d-x", "protocol": 1, "events": []}',
        b'{"device": "d-x", "protocol": 1, "events": [{"type": "TaskDeleted"}]}',
        b'{"device": "d-x", "protocol": 1, "events": [{"id": 5}]}',
        b'{"device": "d-x", "protocol": 1, "events": [7]}',
    ],
    ids=[
        "json",
        "array",
        "no-events",
        "events-str",
        "device",
        "empty",
        "no-id",
        "int-id",
        "not-object",
    ],
)
def test_a_malformed_batch_or_an_event_without_a_readable_id_is_422(
    alice: Device, module_nats: ControlledNats, body: bytes
) -> None:
    with Unchanged(module_nats, alice):
        response = alice.http.post(
            "/v1/sync/push",
            content=body,
            headers={**alice.headers, "Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text
    assert response.json()["status_code"] == 422


def test_more_than_500_events_is_422(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    events = [alice.new_task(board)[1] for _ in range(501)]
    for event in events:
        event["payload"] = {"title": "t", "position": "a0"}
    with Unchanged(module_nats, alice):
        response = alice.push_raw(events)
    assert response.status_code == 422
    assert "1..500 events" in response.json()["detail"]


@pytest.mark.parametrize("protocol", [0, 2])
def test_a_protocol_outside_the_range_is_426(
    alice: Device, board: str, module_nats: ControlledNats, protocol: int
) -> None:
    _, task = alice.new_task(board)
    with Unchanged(module_nats, alice):
        response = alice.push_raw([task], protocol=protocol)
        pull = alice.http.get("/v1/sync/pull", params={"protocol": protocol}, headers=alice.headers)
    for answer in (response, pull):
        assert answer.status_code == 426
        assert "speaks 1..1" in answer.json()["detail"]


def test_too_many_requests_is_429_with_retry_after(
    tmp_path: Any, module_nats: ControlledNats
) -> None:
    limited = BackendProcess(
        tmp_path / "limited",
        nats_url=module_nats.url,
        env={"OUTPOST_RATE_LIMIT_PER_S": "0.5", "OUTPOST_RATE_LIMIT_BURST": "3"},
    ).start()
    try:
        device = Device(limited.url, f"rl{uuid.uuid4().hex[:8]}").signup()
        codes = [device.pull_page().status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        response = device.pull_page()
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["status_code"] == 429
    finally:
        limited.stop()


def test_errors_are_json_with_status_code_and_detail_and_no_stack_trace(
    module_backend: BackendProcess,
) -> None:
    response = httpx.get(f"{module_backend.url}/v1/sync/pull", params={"limit": 5000})
    assert response.status_code in (400, 401)
    body = response.json()
    assert set(body) >= {"status_code", "detail"}
    assert "Traceback" not in response.text


def test_pull_limit_and_cursor_are_checked(alice: Device) -> None:
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "garbage!"}):
        response = alice.http.get("/v1/sync/pull", params=params, headers=alice.headers)
        assert response.status_code == 400, params
        assert response.json()["status_code"] == 400


def test_the_push_answer_carries_time_watermark_and_generation(alice: Device) -> None:
    _, created = alice.new_board()
    response = alice.push_raw([created])
    body = response.json()
    assert set(body) == {"results", "server_time", "watermark", "generation"}
    info = alice.http.get("/v1/sync/info").json()
    assert body["generation"] == info["generation"]
    assert abs(body["server_time"] - time.time() * 1000) < 60_000


def test_json_events_are_validated_on_the_exact_bytes_sent(alice: Device, board: str) -> None:
    _, task = alice.new_task(board)
    raw = msgspec.json.encode({"device": alice.device_id, "protocol": 1, "events": [task]}).replace(
        b'"title":"Task"', b'"title":"T\\u0061sk"'
    )
    first = alice.http.post(
        "/v1/sync/push", content=raw, headers={**alice.headers, "Content-Type": "application/json"}
    ).json()["results"][0]
    again = alice.push(task)[0]
    assert (first["status"], again["status"], again["seq"]) == (
        "accepted",
        "duplicate",
        first["seq"],
    )
