"""The pull cursor, against a real backend: a bad one is 400 with a clear detail, never a
500; a forged one is refused before it costs a query; a cursor of the unsigned format that
devices hold from before the upgrade gets ``reset``, never 400; a cursor made by one BFF
process is taken by another."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from backend.bff.auth.tokens import load_secret
from backend.bff.sync.pull import Cursor, CursorSigner
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


def unsigned(*fields: Any) -> str:
    """A cursor in the format before signing: base64url of a JSON array, no padding."""
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode().rstrip("=")


def generation(device: Device) -> str:
    return str(device.http.get("/v1/sync/info").json()["generation"])


@pytest.fixture
def alice(module_backend: BackendProcess) -> Device:
    device = Device(module_backend.url, f"alice{uuid.uuid4().hex[:8]}").signup()
    board, created = device.new_board()
    results = device.push(created, *(device.new_task(board, title=f"t{i}")[1] for i in range(3)))
    device.sync_until(results[-1]["seq"])
    return device


def assert_refused(device: Device, cursor: str) -> None:
    response = device.pull_page(cursor)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400
    assert body["detail"].startswith("cursor:"), body


def test_a_cursor_holding_2_to_the_70_is_400_naming_the_cursor(alice: Device) -> None:
    """Of this generation, so that it is not merely reset: it reached the database."""
    assert_refused(alice, unsigned(generation(alice), 2**70, []))


def test_any_other_unreadable_or_out_of_range_cursor_is_400_naming_the_cursor(
    alice: Device,
) -> None:
    current = generation(alice)
    board = next(iter(alice.boards()))
    signed = alice.cursor
    assert signed is not None and signed.count(".") == 2
    cursors = {
        "negative version": unsigned(current, -1, []),
        "backfill 2^70": unsigned(current, 1, [[board, 2**70, 0]]),
        "signed 2^70": signed.replace(signed.split(".")[1], unsigned(current, 2**70, [])),
        "not base64": "garbage!",
        "not JSON": base64.urlsafe_b64encode(b"\xff\xfe[").decode(),
        "nested": unsigned(current, 1, [[[[[[[[]]]]]]]]),
        "three parts": "v2.x.y",
        "unknown format": "v9.x.y",
    }
    for cursor in cursors.values():
        assert_refused(alice, cursor)


def test_a_cursor_of_the_format_before_gets_reset_and_a_fresh_bootstrap(alice: Device) -> None:
    """What every device holds after the upgrade: it must recover, not be refused."""
    before_upgrade = unsigned(generation(alice), alice.watermark + 10, [])
    response = alice.pull_page(before_upgrade)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reset"] is True
    assert {c["kind"] for c in body["changes"]} >= {"board", "task"}
    follow = alice.pull_page(body["cursor"])  # the new cursor works as any other
    assert follow.status_code == 200 and follow.json()["reset"] is False


def test_a_cursor_past_the_views_last_version_gets_reset(
    alice: Device, module_backend: BackendProcess
) -> None:
    """What a device holds after views older than its cursor were put back by hand (a
    restore without ``outpost backend restore``): same generation, a version these views
    never wrote. Walking on from it would skip what they write next under those versions."""
    signer = CursorSigner(load_secret(None, module_backend.data_dir))
    current = alice.pull_page().json()
    assert current["reset"] is False  # from a fresh pull: not reset, the first page
    ahead = signer.encode(Cursor(generation(alice), alice.watermark + 10**6))
    response = alice.pull_page(ahead)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reset"] is True
    assert {c["kind"] for c in body["changes"]} >= {"board", "task"}
    last = signer.decode(body["cursor"])
    assert last is not None
    at_the_end = alice.pull_page(signer.encode(Cursor(generation(alice), last.version)))
    assert at_the_end.status_code == 200 and at_the_end.json()["reset"] is False


def test_a_forged_cursor_cannot_make_a_pull_walk_hundreds_of_backfills(alice: Device) -> None:
    """The unsigned format let a device list one board 250 times to backfill (a query
    each). Now such a cursor only resets, and a signed one that was altered is refused."""
    board = next(iter(alice.boards()))
    forged = unsigned(generation(alice), 1, [[board, 10**6, 0]] * 250)
    response = alice.pull_page(forged, limit=1000)
    assert response.status_code == 200, response.text
    body = response.json()
    keys = [(c["kind"], c["id"]) for c in body["changes"]]
    assert len(keys) == len(set(keys)), "the forged backfills were walked"
    assert body["reset"] is True

    signed = alice.pull_page().json()["cursor"]
    prefix, _, signature = signed.split(".")
    payload = json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))
    payload[2] = [[board, 10**6, 0]] * 250
    altered = f"{prefix}.{unsigned(*payload)}.{signature}"
    response = alice.pull_page(altered)
    assert response.status_code == 400, response.text
    assert "signature" in response.json()["detail"]


def test_a_cursor_made_by_one_bff_process_is_taken_by_another(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data_dir = tmp_path / "backend"  # shared: the same databases and secret
    first = BackendProcess(data_dir, nats_url=controlled_nats.url)
    second = BackendProcess(data_dir, nats_url=controlled_nats.url, env={"OUTPOST_COMPONENTS": ""})
    try:
        first.start()
        second.start()
        alice = Device(first.url, "alice").signup()
        board, created = alice.new_board()
        alice.sync_until(alice.push(created)[0]["seq"])
        on_second = Device(second.url, "alice")
        on_second.token = alice.token
        [result] = alice.push(alice.new_task(board, title="later")[1])
        response = on_second.pull_page(alice.cursor)
        assert response.status_code == 200, response.text
        assert response.json()["reset"] is False
        on_second.cursor = alice.cursor
        on_second.sync_until(result["seq"])
        titles = [
            v["values"]["title"] for (kind, _), v in on_second.state.items() if kind == "task"
        ]
        assert titles == ["later"]
    finally:
        second.stop()
        first.stop()
