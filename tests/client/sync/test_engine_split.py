"""FAULTS row 21: a batch refused whole, again and again, never sticks a device.

The engine splits a batch the server refuses whole (400, 413, 422, a 500 that repeats for
the same bytes) until the event at fault is alone, rejects it on the device with the
server's reason and a notice, and syncs the rest. It never splits on 503, 429 or 401.

A fixed backend no longer refuses ordinary batches whole, so the poison events are put
into the real outbox by SQL (an ``id`` that is no string: 422; an event over the body
limit: 413). The backend has no 500 a test can cause on purpose, so the 500 cases and the
"never split" cases answer those few requests at httpx's transport seam and pass
every other request to the real backend.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from client.device import Device
from client.errors import ServerUnreachable, SignInRequired
from client.sync.engine import RATE_LIMIT_WAITS
from tests.support.backend import BackendProcess
from tests.support.device import Device as Remote
from tests.support.phone import Phone, phone_factory
from tests.support.transport import AnsweringTransport, error

pytestmark = pytest.mark.integration

SERVER_FAILED = "internal error: it was logged; try again later"


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[Callable[[str], Phone]]:
    yield from phone_factory(tmp_path, AnsweringTransport)


def transport(phone: Phone) -> AnsweringTransport:
    assert isinstance(phone.transport, AnsweringTransport)
    return phone.transport


def raw_task(device: Device, board: str, title: str, **envelope: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": "TaskCreated",
        "schema": 1,
        "board": board,
        "entity": str(uuid.uuid4()),
        "hlc": device.clock.now(),
        "device": device.device_id,
        "payload": {"title": title, "position": "a0"},
        **envelope,
    }


def into_outbox(device: Device, board: str, body: bytes) -> str:
    """Append an event to the outbox as raw bytes, behind the store's back; its row id."""
    row = str(uuid.uuid4())
    with device.store.write() as conn:
        conn.execute("INSERT INTO outbox (id, board, body) VALUES (?, ?, ?)", (row, board, body))
    return row


def unsent(device: Device) -> int:
    """Events not yet accepted (accepted ones wait in the outbox for the watermark)."""
    with device.store.read() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE seq IS NULL").fetchone()[0])


def last_event_id(device: Device) -> str:
    with device.store.read() as conn:
        return str(conn.execute("SELECT id FROM outbox ORDER BY position DESC").fetchone()[0])


def pulled_titles(server: str, username: str, board: str, expected: int) -> list[str]:
    """What another device of the user pulls of the board, once it has ``expected`` tasks."""
    other = Remote(server, username).login()
    deadline = time.monotonic() + 20
    while True:
        other.pull()
        titles = sorted(
            change["values"]["title"]
            for (kind, _), change in other.state.items()
            if kind == "task" and change["board"] == board
        )
        if len(titles) >= expected or time.monotonic() > deadline:
            return titles
        time.sleep(0.1)


def notice_of(device: Device, row: str) -> str:
    found = [n["message"] for n in device.notices() if n["id"] == f"rejected:{row}"]
    assert found, f"no notice for the rejected event: {device.notices()}"
    return found[0]


# 422 and 413 from the real backend


def test_an_event_the_server_cannot_read_is_split_out_rejected_and_the_rest_syncs(
    module_backend: BackendProcess, phones: Callable[[str], Phone]
) -> None:
    username = name("poison")
    phone = phones(module_backend.url).signup(username)
    board = phone.device.create_board("Poisoned")
    for i in range(40):
        phone.device.add_task(board, f"before {i:02}")
    poison = raw_task(phone.device, board, "poison", id=12345)  # an id that is no string
    row = into_outbox(phone.device, board, msgspec.json.encode(poison))
    for i in range(40):
        phone.device.add_task(board, f"after {i:02}")

    result = phone.sync()  # one sync, no error

    assert (result.pushed, result.rejected, unsent(phone.device)) == (81, 1, 0)
    [rejected] = phone.device.rejected()
    assert (rejected["id"], rejected["reason"]) == (row, "unreadable")
    assert rejected["event"]["payload"]["title"] == "poison"  # kept as it was
    assert "HTTP 422" in rejected["detail"] and "readable string `id`" in rejected["detail"]
    assert notice_of(phone.device, row).startswith(
        "A change this device could not read was not saved: the server cannot read it"
    )
    events = 82
    assert phone.transport.push_sizes()[0][0] == events  # all in one batch first
    assert len(phone.transport.pushes) <= 2 * math.ceil(math.log2(events)) + 2, (
        f"the poison was searched for one by one: {phone.transport.push_sizes()}"
    )
    expected = sorted([f"before {i:02}" for i in range(40)] + [f"after {i:02}" for i in range(40)])
    assert pulled_titles(module_backend.url, username, board, 80) == expected

    phone.device.add_task(board, "made after the poison went")  # the device is not stuck
    phone.settle()
    assert "made after the poison went" in pulled_titles(module_backend.url, username, board, 81)
    assert len(phone.device.rejected()) == 1


def test_an_event_too_large_for_any_batch_is_rejected_alone_and_the_rest_syncs(
    module_backend: BackendProcess, phones: Callable[[str], Phone]
) -> None:
    username = name("huge")
    phone = phones(module_backend.url).signup(username)
    board = phone.device.create_board("Heavy")
    phone.device.add_task(board, "small before")
    valid = msgspec.json.encode(raw_task(phone.device, board, "huge"))
    huge = valid[:-1] + b" " * 1_100_000 + b"}"  # still a valid event, 1.1 MB on the wire
    row = into_outbox(phone.device, board, huge)
    phone.device.add_task(board, "small after")

    result = phone.sync()

    assert (result.pushed, result.rejected, unsent(phone.device)) == (3, 1, 0)
    [rejected] = phone.device.rejected()
    assert (rejected["id"], rejected["reason"]) == (row, "too_large")
    assert "HTTP 413" in rejected["detail"] and f"{len(huge):,} bytes" in rejected["detail"]
    assert notice_of(phone.device, row).startswith(
        "Your change (new task) was not saved: it is too large for the server to take"
    )
    assert 413 in phone.transport.statuses
    titles = pulled_titles(module_backend.url, username, board, 2)
    assert titles == ["small after", "small before"]


# 500, and the answers that never split, at the transport seam


def test_a_500_that_repeats_is_split_out_rejected_and_the_rest_syncs(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    username = name("crash")
    phone = answering(module_backend.url).signup(username)
    board = phone.device.create_board("Crashing")
    for i in range(10):
        phone.device.add_task(board, f"before {i}")
    poison_task = phone.device.add_task(board, "the server crashes on this one")
    poison = last_event_id(phone.device)
    for i in range(10):
        phone.device.add_task(board, f"after {i}")

    def crash_on_poison(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/sync/push" and poison.encode() in request.content:
            return error(500, SERVER_FAILED)
        return None

    transport(phone).answer = crash_on_poison
    result = phone.sync()

    assert (result.pushed, result.rejected, unsent(phone.device)) == (21, 1, 0)
    [rejected] = phone.device.rejected()
    assert (rejected["id"], rejected["reason"]) == (poison, "server_error")
    assert phone.device.entity("task", poison_task) is None, "a rejected task stays shown"
    assert notice_of(phone.device, poison).startswith(
        "Your change (new task) was not saved: the server fails on it every time it is sent"
        f" (HTTP 500: {SERVER_FAILED})"
    )
    pushes, statuses, i = phone.transport.pushes, phone.transport.statuses, 0
    while i < len(statuses):  # every 500 was sent once more at once, byte for byte
        if statuses[i] == 500:
            assert (statuses[i + 1], pushes[i + 1]) == (500, pushes[i])
            i += 1
        i += 1
    titles = pulled_titles(module_backend.url, username, board, 20)
    assert titles == sorted([f"before {i}" for i in range(10)] + [f"after {i}" for i in range(10)])


def test_a_500_that_does_not_repeat_splits_nothing_and_rejects_nothing(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    phone = answering(module_backend.url).signup(name("blip"))
    board = phone.device.create_board("Blip")
    for i in range(5):
        phone.device.add_task(board, f"t{i}")
    failures = [error(500, SERVER_FAILED)]

    def once(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/sync/push" and failures:
            return failures.pop()
        return None

    transport(phone).answer = once
    result = phone.sync()
    assert (result.rejected, result.pushed) == (0, 6)
    assert phone.transport.statuses == [500, 200]
    assert phone.transport.pushes[0] == phone.transport.pushes[1]


def test_a_server_failing_every_push_rejects_at_most_one_event_a_sync(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    """A 500 for everything is the server's fault, not the events': they stay pending."""
    phone = answering(module_backend.url).signup(name("broken"))
    board = phone.device.create_board("Broken server")
    for i in range(6):
        phone.device.add_task(board, f"t{i}")

    def broken(request: httpx.Request) -> httpx.Response | None:
        return error(500, SERVER_FAILED) if request.url.path == "/v1/sync/push" else None

    transport(phone).answer = broken
    with pytest.raises(ServerUnreachable, match="HTTP 500"):
        phone.sync()
    assert len(phone.device.rejected()) <= 1
    assert unsent(phone.device) >= 6
    transport(phone).answer = lambda _request: None  # the server is repaired
    phone.settle()
    assert phone.device.pending_count() == 0


def test_a_408_sends_smaller_batches_and_rejects_nothing(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    """A link too slow for the server's body deadline: halve until it gets through."""
    username = name("slowlink")
    phone = answering(module_backend.url).signup(username)
    board = phone.device.create_board("Slow link")
    for i in range(20):
        phone.device.add_task(board, f"t{i:02}")

    def too_slow_for_big_ones(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/sync/push" and len(request.content) > 2500:
            return error(408, "the request's body did not arrive within 30 s")
        return None

    transport(phone).answer = too_slow_for_big_ones
    result = phone.sync()
    assert (result.rejected, result.pushed) == (0, 21)
    assert 408 in phone.transport.statuses
    assert phone.device.rejected() == []
    phone.settle()
    assert len(pulled_titles(module_backend.url, username, board, 20)) == 20


@pytest.mark.parametrize(
    ("status", "raised"),
    [(503, ServerUnreachable), (429, ServerUnreachable), (401, SignInRequired)],
)
def test_busy_or_unauthorized_answers_never_split_a_batch(
    module_backend: BackendProcess,
    answering: Callable[[str], Phone],
    status: int,
    raised: type[Exception],
) -> None:
    username = name(f"s{status}")
    phone = answering(module_backend.url).signup(username)
    board = phone.device.create_board("Waiting")
    for i in range(20):
        phone.device.add_task(board, f"t{i:02}")

    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/sync/push":
            return error(status, "not now", **{"Retry-After": "1"})
        return None

    transport(phone).answer = refuse
    with pytest.raises(raised):
        phone.sync()
    pushes = phone.transport.pushes
    again = {401: 1, 429: RATE_LIMIT_WAITS, 503: 0}[status]  # after a refresh, a Retry-After
    assert len(pushes) == 1 + again
    assert all(body == pushes[0] for body in pushes), "the batch was split"
    assert phone.transport.push_sizes()[0][0] == 21
    assert phone.device.rejected() == [] and unsent(phone.device) == 21
    transport(phone).answer = lambda _request: None
    phone.settle()
    assert len(pulled_titles(module_backend.url, username, board, 20)) == 20


@pytest.mark.parametrize(("retry_after", "sent"), [("0.2", 3), ("60", 1)])
def test_a_rate_limited_request_waits_out_a_short_retry_after_and_goes_again(
    module_backend: BackendProcess,
    answering: Callable[[str], Phone],
    retry_after: str,
    sent: int,
) -> None:
    """A big first sync meets the server's per-user rate: it goes on at the rate allowed
    (the server's ``Retry-After``) instead of giving up into the runner's backoff; a wait
    too long for a request gives up at once, and nothing is lost either way."""
    username = name("s429")
    phone = answering(module_backend.url).signup(username)
    board = phone.device.create_board("Rate")
    for i in range(5):
        phone.device.add_task(board, f"t{i}")
    refused: list[int] = []

    def twice(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/sync/push" and len(refused) < 2:
            refused.append(429)
            return error(429, "too many requests", **{"Retry-After": retry_after})
        return None

    transport(phone).answer = twice
    if sent == 1:
        with pytest.raises(ServerUnreachable, match="busy"):
            phone.sync()
        assert unsent(phone.device) == 6
    else:
        result = phone.sync()
        assert (result.pushed, result.rejected) == (6, 0)
    pushes = phone.transport.pushes
    assert len(pushes) == sent and all(body == pushes[0] for body in pushes)
    transport(phone).answer = lambda _request: None
    phone.settle()
    assert len(pulled_titles(module_backend.url, username, board, 5)) == 5


def test_a_503_during_a_split_resends_that_batch_byte_for_byte(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    username = name("split503")
    phone = answering(module_backend.url).signup(username)
    board = phone.device.create_board("Interrupted")
    for i in range(8):
        phone.device.add_task(board, f"t{i}")
    row = into_outbox(
        phone.device, board, msgspec.json.encode(raw_task(phone.device, board, "x", id=1))
    )
    for i in range(8, 16):
        phone.device.add_task(board, f"t{i}")
    pushes = phone.transport.pushes

    def busy_on_the_second_push(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/sync/push" and len(pushes) == 2:
            return error(503, "the event stream is unavailable", **{"Retry-After": "1"})
        return None

    transport(phone).answer = busy_on_the_second_push
    with pytest.raises(ServerUnreachable, match="busy"):
        phone.sync()
    assert phone.transport.statuses == [422, 503]
    interrupted = pushes[1]
    transport(phone).answer = lambda _request: None
    phone.sync()
    assert pushes[2] == interrupted, "the batch a 503 stopped was not resent byte for byte"
    assert [r["id"] for r in phone.device.rejected()] == [row]
    assert len(pulled_titles(module_backend.url, username, board, 16)) == 16
