"""FAULTS 19 against a real backend: stamps, ids and names a hostile member could use to sort
above honest writers, or to look like someone else, are ``invalid`` (or 422 for a body)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _digits(hlc: str) -> str:
    return hlc.rpartition(":")[0] + ":"


def _node(hlc: str) -> str:
    return hlc.rpartition(":")[2]


def _member_board(backend: BackendProcess) -> tuple[Device, Device, str, str]:
    """alice's board (WIP limit 1) with mallory as a member, and one task on it."""
    suffix = uuid.uuid4().hex[:8]
    alice = Device(backend.url, f"alice{suffix}").signup()
    mallory = Device(backend.url, f"mallory{suffix}").signup()
    board, created = alice.new_board(wip_limit=1)
    task, new_task = alice.new_task(board, title="honest")
    member = alice.event("MemberAdded", {"username": mallory.username}, board=board)
    assert [r["status"] for r in alice.push(created, new_task, member)] == ["accepted"] * 3
    return alice, mallory, board, task


def _hostile(mallory: Device, board: str, task: str, hlc: str) -> dict[str, Any]:
    event = mallory.event("TaskUpdated", {"fields": {"title": "mine"}}, board=board, entity=task)
    event["hlc"] = hlc
    return event


@pytest.mark.parametrize(
    "spoil",
    [
        lambda hlc: _digits(hlc).translate(_ARABIC_INDIC) + _node(hlc),  # read as now
        lambda hlc: "٩" + hlc[1:],  # sorts above every honest stamp
        lambda hlc: hlc + "\n",
        lambda hlc: hlc.replace(":", ":\u200b", 1),
        lambda hlc: hlc[:-1] + chr(ord(hlc[-1]) - 0x21 + 0xFF01),  # a fullwidth node letter
    ],
    ids=["arabic-indic", "arabic-indic-first-digit", "newline", "zero-width", "fullwidth"],
)
def test_a_member_cannot_win_conflicts_with_a_hostile_stamp(
    module_backend: BackendProcess, module_nats: ControlledNats, spoil: Any
) -> None:
    alice, mallory, board, task = _member_board(module_backend)
    hostile = _hostile(mallory, board, task, spoil(mallory.clock.now()))
    honest = _hostile(mallory, board, task, mallory.clock.now())
    honest["payload"] = {"fields": {"notes": "an honest edit in the same batch"}}
    stored_before = {e["id"] for e in module_nats.events()}
    bad, good = mallory.push(hostile, honest)
    assert (bad["status"], bad["reason"]) == ("rejected", "invalid"), bad
    assert bad["detail"].startswith("hlc:"), bad
    assert good["status"] == "accepted"
    stored = {e["id"] for e in module_nats.events()} - stored_before
    assert stored == {honest["id"]}
    later = alice.event("TaskUpdated", {"fields": {"title": "alice's"}}, board=board, entity=task)
    [result] = alice.push(later)
    alice.sync_until(result["seq"])
    assert alice.values("task", task)["title"] == "alice's"  # type: ignore[index]


@pytest.mark.parametrize(
    "field", ["id", "board", "entity", "device"], ids=["id", "board", "entity", "device"]
)
@pytest.mark.parametrize("spoil", ["\n", "\u0660", "\uff41"], ids=["newline", "digit", "fullwidth"])
def test_an_id_with_a_hostile_character_is_invalid_and_the_batch_goes_on(
    module_backend: BackendProcess, module_nats: ControlledNats, field: str, spoil: str
) -> None:
    alice, _, board, _ = _member_board(module_backend)
    _, bad = alice.new_task(board, title="bad")
    bad[field] = bad[field] + spoil if spoil == "\n" else spoil + bad[field][1:]
    _, good = alice.new_task(board, title="good")
    response = alice.push_raw([bad, good])
    assert response.status_code == 200, response.text
    bad_result, good_result = response.json()["results"]
    assert (bad_result["status"], bad_result["reason"]) == ("rejected", "invalid")
    assert bad_result["detail"].startswith(f"{field}:"), bad_result
    assert good_result["status"] == "accepted"
    assert bad["id"] not in {e["id"] for e in module_nats.events()}


@pytest.mark.parametrize("spoil", ["\n", "\uff41", "\u0661"], ids=["newline", "fullwidth", "digit"])
def test_a_username_with_a_hostile_character_cannot_sign_up(
    module_backend: BackendProcess, spoil: str
) -> None:
    name = f"carol{uuid.uuid4().hex[:6]}"
    carol = Device(module_backend.url, name + spoil)
    response = carol.http.post(
        "/v1/auth/signup", json={"username": carol.username, "password": "correct horse"}
    )
    assert response.status_code in (400, 422), response.text
    assert "username" in response.json()["detail"] + str(response.json().get("extra", ""))
    lookalike = Device(module_backend.url, name).signup()  # the plain name is still free
    assert lookalike.token


def test_a_push_from_a_device_id_with_a_newline_is_refused_whole(
    module_backend: BackendProcess, module_nats: ControlledNats
) -> None:
    alice, _, board, _ = _member_board(module_backend)
    _, task = alice.new_task(board)
    before = len(module_nats.events())
    response = alice.push_raw([task], device=alice.device_id + "\n")
    assert response.status_code in (400, 422), response.text
    assert len(module_nats.events()) == before
