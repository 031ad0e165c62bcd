"""Bad bytes in a push, against a real backend: never a 500, and nothing left behind.

An event that no later stage could take (a board id that is no NATS subject token), a
number out of range, invalid UTF-8 or nesting past 64 levels inside one event is that
event's ``invalid`` and the rest of the batch goes on; bytes that are no batch at all are
422. Sign-up and sign-in bodies of bad bytes are 400. A rejected event leaves no board row
and claims no device, on SQLite and on PostgreSQL, and decisions on a new board stay
serialized across two BFF processes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from backend.bff.models import BffBase, BoardAuthority, EntityBinding
from backend.bff.models import Device as DeviceRow
from backend.db import Database
from tests.support.backend import BackendProcess, ControlledNats, two_processes
from tests.support.device import Device

pytestmark = pytest.mark.integration

INVALID = ("rejected", "invalid")
ACCEPTED = ("accepted", None)


def statuses(results: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(r["status"], r.get("reason")) for r in results]


def post_raw(device: Device, body: bytes, path: str = "/v1/sync/push") -> httpx.Response:
    headers = {**device.headers, "Content-Type": "application/json"}
    return device.http.post(path, content=body, headers=headers)


def batch(device: Device, *events: bytes) -> bytes:
    return b'{"device": "%s", "protocol": 1, "events": [%s]}' % (
        device.device_id.encode(),
        b", ".join(events),
    )


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture
def alice(module_backend: BackendProcess) -> Device:
    return Device(module_backend.url, f"alice{uuid.uuid4().hex[:8]}").signup()


@pytest.fixture
def board(alice: Device) -> str:
    board_id, created = alice.new_board()
    assert statuses(alice.push(created)) == [ACCEPTED]
    return board_id


# FAULTS 20: one event that no later stage can handle


def test_a_board_id_that_is_no_subject_token_is_that_events_invalid_and_the_rest_goes_on(
    alice: Device, board: str, module_nats: ControlledNats
) -> None:
    """ "<uuid>\\n" passed the protocol's ``$`` patterns; the BFF wrote the decision, then
    could not build the subject: 500 for the whole batch, and again at every resend."""
    bad_board = str(uuid.uuid4()) + "\n"
    unusable = alice.event("BoardCreated", {"name": "Broken"}, board=bad_board)
    _, before = alice.new_task(board, title="before")
    _, after = alice.new_task(board, title="after")
    for _ in range(2):  # the resend is answered the same: the device is not stuck
        response = alice.push_raw([before, unusable, after])
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results[1]["id"] == unusable["id"]
        assert (results[1]["status"], results[1]["reason"]) == INVALID
        assert results[1]["detail"].startswith("board:")
        assert {results[0]["status"], results[2]["status"]} <= {"accepted", "duplicate"}
    stored = [e["id"] for e in module_nats.events()]
    assert before["id"] in stored and after["id"] in stored
    assert unusable["id"] not in stored


# FAULTS 22: invalid UTF-8, deep nesting, numbers out of range


@pytest.mark.parametrize(
    ("spoil", "detail"),
    [
        (lambda e: e.replace(b'"title": "bad"', b'"title": "b\xffd"'), "not UTF-8"),
        (lambda e: e.replace(b'"a0"', b'"a0", "priority": 1e309'), "out of range"),
        (lambda e: e.replace(b'"a0"', b'"a0", "priority": ' + b"9" * 5000), "out of range"),
        (lambda e: e.replace(b'"a0"', b'"a0", "priority": ' + str(2**70).encode()), "priority"),
        (lambda e: e.replace(b'"a0"', b'"a0", "x": ' + b"[" * 100 + b"]" * 100), "nested deeper"),
    ],
    ids=["utf8", "1e309", "5000-digits", "2^70", "nested-100"],
)
def test_bad_bytes_inside_one_event_are_that_events_invalid_and_the_rest_goes_on(
    alice: Device, board: str, module_nats: ControlledNats, spoil: Any, detail: str
) -> None:
    _, bad = alice.new_task(board, title="bad")
    _, good = alice.new_task(board, title="good")
    spoiled = spoil(encoded(bad))
    assert spoiled != encoded(bad)
    response = post_raw(alice, batch(alice, spoiled, encoded(good)))
    assert response.status_code == 200, response.text
    bad_result, good_result = response.json()["results"]
    assert (bad_result["id"], bad_result["status"], bad_result["reason"]) == (
        bad["id"],
        "rejected",
        "invalid",
    )
    assert detail in bad_result["detail"]
    assert good_result["status"] == "accepted"
    assert bad["id"] not in {e["id"] for e in module_nats.events()}


@pytest.mark.parametrize(
    "spoil",
    [
        lambda body: body.replace(b'"protocol"', b'"proto\xffcol"'),
        lambda body: body.replace(b'"a0"', b'"a0", "x": ' + b"[" * 1000 + b"]" * 1000),
        lambda body: body.replace(b'"a0"', b'"a0", "x": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000),
        lambda body: body.replace(b'"protocol": 1', b'"protocol": 1e309'),
    ],
    ids=["utf8-outside-events", "arrays-1000-deep", "objects-1000-deep", "1e309-protocol"],
)
def test_bad_bytes_of_the_batch_itself_are_422(
    alice: Device, board: str, module_nats: ControlledNats, spoil: Any
) -> None:
    _, task = alice.new_task(board)
    before = len(module_nats.events())
    response = post_raw(alice, spoil(batch(alice, encoded(task))))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status_code"] == 422 and "malformed batch" in body["detail"]
    assert len(module_nats.events()) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/signup", b'{"username": "b\xffb", "password": "correct horse"}'),
        ("/v1/auth/signup", b'{"username": "bob", "password": "correct \xff horse"}'),
        ("/v1/auth/token", b'{"username": "b\xffb", "password": "correct horse"}'),
        ("/v1/auth/refresh", b'{"refresh_token": "\xff"}'),
        ("/v1/auth/signup", b'{"username": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
        ("/v1/auth/token", b'{"username": "bob", "password": 1e309}'),
    ],
    ids=["signup-utf8", "signup-password-utf8", "token-utf8", "refresh-utf8", "deep", "1e309"],
)
def test_bad_bytes_in_an_auth_body_are_400(
    module_backend: BackendProcess, path: str, body: bytes
) -> None:
    response = httpx.post(
        f"{module_backend.url}{path}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400


# A rejected event leaves nothing behind


class BffDatabase:
    """The BFF's own database, read the way the backend reads it."""

    def __init__(self, data_dir: Path, url: str | None) -> None:
        self.data_dir = data_dir
        self.url = url

    def count(self, model: type[BffBase], key: Any, values: list[str]) -> int:
        return asyncio.run(self._count(model, key, values))

    async def _count(self, model: type[BffBase], key: Any, values: list[str]) -> int:
        db = Database.for_component("bff", data_dir=self.data_dir, url=self.url)
        try:
            async with db.read() as conn:
                query = select(func.count()).select_from(model).where(key.in_(values))
                return int((await conn.execute(query)).scalar_one())
        finally:
            await db.dispose()


@pytest.fixture
def backend_on(
    tmp_path: Path, controlled_nats: ControlledNats, db_url: str | None
) -> Iterator[tuple[BackendProcess, BffDatabase]]:
    data_dir = tmp_path / "backend"
    process = BackendProcess(data_dir, nats_url=controlled_nats.url, db_url=db_url).start()
    try:
        yield process, BffDatabase(data_dir, db_url)
    finally:
        process.stop()


def test_rejected_events_leave_no_board_row_no_device_claim_and_no_binding(
    backend_on: tuple[BackendProcess, BffDatabase],
) -> None:
    backend, database = backend_on
    alice = Device(backend.url, "alice").signup()
    bob = Device(backend.url, "bob").signup()
    bobs_board, bobs_created = bob.new_board()
    assert statuses(bob.push(bobs_created)) == [ACCEPTED]

    nowhere = str(uuid.uuid4())  # no board: forbidden
    task, on_nowhere = alice.new_task(nowhere)
    _, on_bobs = alice.new_task(bobs_board)  # not shared with Alice: forbidden
    results = alice.push(on_nowhere, on_bobs)
    assert [r["status"] for r in results] == ["rejected"] * 2
    assert database.count(BoardAuthority, BoardAuthority.id, [nowhere]) == 0
    assert database.count(DeviceRow, DeviceRow.id, [alice.device_id]) == 0
    assert database.count(EntityBinding, EntityBinding.id, [task, nowhere]) == 0

    unusable_board = str(uuid.uuid4()) + "\n"
    unusable = alice.event("BoardCreated", {"name": "x"}, board=unusable_board)
    assert statuses(alice.push(unusable)) == [INVALID]
    assert database.count(BoardAuthority, BoardAuthority.id, [unusable_board]) == 0
    assert database.count(DeviceRow, DeviceRow.id, [alice.device_id]) == 0

    # The same device's first accepted event claims it, and its board gets its row.
    own_board, created = alice.new_board()
    assert statuses(alice.push(created)) == [ACCEPTED]
    assert database.count(DeviceRow, DeviceRow.id, [alice.device_id]) == 1
    assert database.count(BoardAuthority, BoardAuthority.id, [own_board]) == 1
    # And a device claimed by Alice stays hers: Bob's push with it is forbidden.
    bob.device_id = alice.device_id
    _, stolen = bob.new_board()
    stolen["device"] = alice.device_id
    assert statuses(bob.push(stolen)) == [("rejected", "forbidden")]


def at_once(pushes: list[tuple[Device, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Each device pushes its event, all released at the same moment; their results."""
    answers: list[list[dict[str, Any]]] = [[] for _ in pushes]
    start = threading.Barrier(len(pushes))

    def push(index: int, device: Device, event: dict[str, Any]) -> None:
        start.wait(10)
        answers[index] = device.push(event)

    threads = [threading.Thread(target=push, args=(i, *p)) for i, p in enumerate(pushes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_the_first_events_of_a_new_board_stay_serialized_across_two_bff_processes(
    tmp_path: Path, controlled_nats: ControlledNats, db_url: str | None
) -> None:
    """Two users create the same new board id at once, each through another process, while
    a third user's rejected event on it creates and drops its lock row: exactly one board
    creation is accepted, every time."""
    data_dir = tmp_path / "backend"
    with two_processes(data_dir, controlled_nats, db_url=db_url) as (first, second):
        alice = Device(first.url, "alice").signup()
        bob = Device(second.url, "bob").signup()
        carol = Device(first.url, "carol").signup()
        database = BffDatabase(data_dir, db_url)
        for _ in range(15):
            board = str(uuid.uuid4())
            pushes = [
                alice.event("BoardCreated", {"name": "Alice's"}, board=board),
                bob.event("BoardCreated", {"name": "Bob's"}, board=board),
                carol.new_task(board)[1],
            ]
            answers = at_once([(alice, pushes[0]), (bob, pushes[1]), (carol, pushes[2])])
            creations = [answers[0][0]["status"], answers[1][0]["status"]]
            assert sorted(creations) == ["accepted", "rejected"], answers
            assert answers[2][0]["status"] == "rejected"
            assert database.count(BoardAuthority, BoardAuthority.id, [board]) == 1


def test_a_nul_or_control_character_in_an_event_never_sticks_the_device(
    backend_on: tuple[BackendProcess, BffDatabase],
) -> None:
    """Text PostgreSQL cannot store (a NUL) must not fail a batch for ever: the event is
    accepted and shown as written, or it is that event's ``invalid``; the rest goes on."""
    backend, _ = backend_on
    alice = Device(backend.url, "alice").signup()
    board, created = alice.new_board()
    assert statuses(alice.push(created)) == [ACCEPTED]
    texts = {"nul": "a\u0000b", "bell": "a\u0007b", "del": "a\u007fb"}
    tasks = {name: alice.new_task(board, title=text) for name, text in texts.items()}
    _, good = alice.new_task(board, title="good")
    results = alice.push(*(event for _, event in tasks.values()), good)
    assert statuses(results)[-1] == ACCEPTED
    alice.pull()
    for (name, (task, _)), result in zip(tasks.items(), results, strict=False):
        if (result["status"], result.get("reason")) == INVALID:
            assert result["detail"], name
            assert ("task", task) not in alice.state
        else:
            assert result["status"] == "accepted", (name, result)
            wait_for_title(alice, task, texts[name])


def wait_for_title(device: Device, task: str, title: str) -> None:
    deadline = time.monotonic() + 20
    while device.state.get(("task", task), {}).get("values", {}).get("title") != title:
        assert time.monotonic() < deadline, f"{task} never showed {title!r}"
        time.sleep(0.1)
        device.pull()


def test_racing_pushes_never_share_an_entity_or_an_event_id_across_boards(
    tmp_path: Path, controlled_nats: ControlledNats, db_url: str | None
) -> None:
    """Alice and Bob, each on a board of their own through another BFF process, push at the
    same moment a task with the same entity id, then an event with the same event id: each
    time exactly one is accepted and the other refused (``forbidden``, ``id_conflict``), never
    both accepted, never told ``duplicate`` of an event they did not write."""
    data_dir = tmp_path / "backend"
    with two_processes(data_dir, controlled_nats, db_url=db_url) as (first, second):
        alice = Device(first.url, "alice").signup()
        bob = Device(second.url, "bob").signup()
        alices_board, created = alice.new_board()
        bobs_board, bobs_created = bob.new_board()
        assert statuses(alice.push(created)) == [ACCEPTED]
        assert statuses(bob.push(bobs_created)) == [ACCEPTED]
        database = BffDatabase(data_dir, db_url)
        for _ in range(10):
            _, mine = alice.new_task(alices_board)
            theirs = bob.event("TaskCreated", dict(mine["payload"]), board=bobs_board)
            theirs["entity"] = mine["entity"]
            answers = at_once([(alice, mine), (bob, theirs)])
            outcomes = sorted((a[0]["status"], a[0].get("reason")) for a in answers)
            assert outcomes == [("accepted", None), ("rejected", "forbidden")], answers
            assert database.count(EntityBinding, EntityBinding.id, [mine["entity"]]) == 1

            _, again = alice.new_task(alices_board, title="Alice's")
            copy = bob.new_task(bobs_board, title="Bob's")[1]
            copy["id"] = again["id"]
            answers = at_once([(alice, again), (bob, copy)])
            outcomes = sorted((a[0]["status"], a[0].get("reason")) for a in answers)
            assert outcomes == [("accepted", None), ("rejected", "id_conflict")], answers
