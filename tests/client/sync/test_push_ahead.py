"""A backlog of edits goes two batches at a time (``SyncEngine._batch_ahead``).

The next batch is sent before the answer to the one before only when that one holds edits
of tasks that exist: nothing in it changes how the server decides a later event. A batch
that makes a board or a task is always answered before the next goes. A batch sent ahead
that gets no answer keeps its events exactly as they were, even when the batch before it
is refused for the device's clock and the rest of the outbox is restamped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from client.device import Device
from tests.support.backend import BackendProcess
from tests.support.device import Device as Remote
from tests.support.phone import Phone, phone_factory
from tests.support.transport import AnsweringTransport, error

pytestmark = pytest.mark.integration

DAY = 24 * 3600 * 1000
TASKS = 20


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[Callable[[str], Phone]]:
    yield from phone_factory(tmp_path, AnsweringTransport)


def board_with_tasks(phone: Phone) -> tuple[str, list[str]]:
    board = phone.device.create_board("Ahead")
    tasks = [phone.device.add_task(board, f"task {i}") for i in range(TASKS)]
    phone.settle()
    return board, tasks


def edit(device: Device, tasks: list[str], count: int, prefix: str) -> dict[str, str]:
    """``count`` title edits, round the tasks; the title each task ends with."""
    last = {}
    for i in range(count):
        task = tasks[i % len(tasks)]
        last[task] = f"{prefix} {i}"
        device.set_task(task, title=last[task])
    return last


def events_of(body: bytes) -> dict[str, bytes]:
    """A push's events by id, each as the bytes that went."""
    events = msgspec.json.decode(body, type=dict[str, msgspec.Raw])["events"]
    return {
        msgspec.json.decode(raw)["id"]: bytes(raw)
        for raw in msgspec.json.decode(events, type=list[msgspec.Raw])
    }


def unsent_bodies(device: Device) -> dict[str, bytes]:
    with device.store.read() as conn:
        rows = conn.execute(
            "SELECT id, body FROM outbox WHERE seq IS NULL ORDER BY position"
        ).fetchall()
    return {str(i): bytes(body) for i, body in rows}


def titles_elsewhere(server: str, username: str, expected: dict[str, str]) -> dict[str, str]:
    """The titles another device of the user pulls, once they are ``expected`` (or 20 s)."""
    other = Remote(server, username).login()
    deadline = time.monotonic() + 20
    while True:
        other.pull()
        titles = {
            entity: change["values"]["title"]
            for (kind, entity), change in other.state.items()
            if kind == "task" and entity in expected
        }
        if titles == expected or time.monotonic() > deadline:
            return titles
        time.sleep(0.1)


def test_a_backlog_of_edits_goes_two_batches_at_a_time_and_every_edit_lands(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    username = name("ahead")
    phone = answering(module_backend.url).signup(username)
    _, tasks = board_with_tasks(phone)
    sent_before = len(phone.transport.pushes)
    last = edit(phone.device, tasks, 1500, "edit")

    result = phone.sync()

    assert (result.pushed, result.rejected) == (1500, 0)
    assert unsent_bodies(phone.device) == {}
    assert [n for n, _ in phone.transport.push_sizes()[sent_before:]] == [500, 500, 500]
    assert phone.transport.most_pushes_at_once == 2
    assert titles_elsewhere(module_backend.url, username, last) == last
    assert {t: phone.device.entity("task", t)["values"]["title"] for t in tasks} == last


def test_a_batch_that_makes_tasks_is_answered_before_the_next_goes(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    """The next batch may edit or comment on what this one makes: it waits."""
    username = name("makes")
    phone = answering(module_backend.url).signup(username)
    board = phone.device.create_board("Made")
    made = [phone.device.add_task(board, f"new {i}") for i in range(499)]  # a full batch
    for i in range(500):  # the next full batch: comments on those tasks
        phone.device.add_comment(made[i % len(made)], f"comment {i}")

    result = phone.sync()

    assert [n for n, _ in phone.transport.push_sizes()] == [500, 500]
    assert phone.transport.most_pushes_at_once == 1
    assert (result.pushed, result.rejected) == (1000, 0)
    assert not phone.device.rejected()


def test_a_batch_ahead_without_an_answer_is_sent_again_as_it_was_despite_a_restamp(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    """The first batch is refused for the device's clock, so the outbox is restamped; the
    batch sent ahead got a 503 meanwhile (the stream may hold part of it): its events are
    not restamped, and go again byte for byte before anything else of theirs."""
    username = name("unknown")
    phone = answering(module_backend.url).signup(username)
    _, tasks = board_with_tasks(phone)
    phone.device.clock.offset_ms = DAY  # a day fast: the server refuses these for the clock
    last = edit(phone.device, tasks, 1000, "fast")
    backlog = unsent_bodies(phone.device)
    refused: dict[str, bytes] = {}

    def refuse_the_second(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/sync/push" or refused:
            return None
        events = events_of(request.content)
        if phone.transport.most_pushes_at_once == 2 and len(events) == 500:
            ordered = list(backlog)
            if next(iter(events)) == ordered[500]:  # the batch sent ahead
                refused.update(events)
                return error(503, "the event stream is unavailable: resend", **{"Retry-After": "0"})
        return None

    phone.transport.answer = refuse_the_second
    sent_before = len(phone.transport.pushes)
    for _ in range(6):
        try:
            phone.sync()
        except Exception:
            continue
        if not unsent_bodies(phone.device):
            break

    assert len(refused) == 500, "the batch ahead was never refused: the test proves nothing"
    pushes = [events_of(body) for body in phone.transport.pushes[sent_before:]]
    first_time = next(n for n, p in enumerate(pushes) if p.keys() == refused.keys())
    again = next(p for p in pushes[first_time + 1 :] if p.keys() & refused.keys())
    assert again == refused, "an event whose push got no answer went again with other bytes"
    assert unsent_bodies(phone.device) == {}
    assert not phone.device.rejected()
    assert titles_elsewhere(module_backend.url, username, last) == last


def test_an_unreadable_event_in_a_full_batch_sends_nothing_ahead_and_is_rejected_alone(
    module_backend: BackendProcess, answering: Callable[[str], Phone]
) -> None:
    username = name("unread")
    phone = answering(module_backend.url).signup(username)
    board, tasks = board_with_tasks(phone)
    edit(phone.device, tasks, 499, "before")
    row = str(uuid.uuid4())
    with phone.device.store.write() as conn:  # behind the store's back, as a bug would
        conn.execute(
            "INSERT INTO outbox (id, board, body) VALUES (?, ?, ?)", (row, board, b"not json")
        )
    last = edit(phone.device, tasks, 500, "after")

    result = phone.sync()

    assert (result.pushed, result.rejected) == (999, 1)
    assert [r["id"] for r in phone.device.rejected()] == [row]
    assert unsent_bodies(phone.device) == {}
    assert titles_elsewhere(module_backend.url, username, last) == last
