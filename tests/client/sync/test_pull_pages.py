"""A download of many pages asks for the next page before it stores the one it has (the
server reads it meanwhile), yet stores pages strictly in order: a download cut off keeps
every page stored before the cut, with the cursor of the last, and the next cycle goes on
from there without taking any change twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from client.errors import ServerUnreachable
from client.store.outbox import Outbox
from client.store.settings import Setting
from client.sync import engine as engine_module
from tests.support.backend import BackendProcess
from tests.support.phone import Phone, phone_factory
from tests.support.transport import AnsweringTransport, error

pytestmark = pytest.mark.integration

PAGE = 4


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[Callable[[str], Phone]]:
    yield from phone_factory(tmp_path, AnsweringTransport)


def test_a_download_cut_off_keeps_every_page_before_the_cut_and_resumes_after_it(
    module_backend: BackendProcess,
    answering: Callable[[str], Phone],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "PULL_LIMIT", PAGE)
    username = f"pages{uuid.uuid4().hex[:8]}"
    writer = answering(module_backend.url).signup(username)
    board = writer.device.create_board("Pages")
    titles = [f"task {i}" for i in range(3 * PAGE)]
    for title in titles:
        writer.device.add_task(board, title)
    writer.settle()

    reader = answering(module_backend.url).login(username)
    transport = reader.transport
    assert isinstance(transport, AnsweringTransport)
    asked: list[httpx.Request] = []
    stored_when_asked: list[str | None] = []

    def cut_at_the_third_page(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/v1/sync/pull":
            return None
        asked.append(request)
        stored_when_asked.append(reader.device.store.setting(Setting.CURSOR))
        return error(503, "going away") if len(asked) == 3 else None

    transport.answer = cut_at_the_third_page
    with pytest.raises(ServerUnreachable):
        reader.sync()

    # The third page was asked for with the second's cursor before the second was stored...
    third_from = asked[2].url.params["cursor"]
    assert stored_when_asked[2] == asked[1].url.params["cursor"] != third_from
    # ...and the second page was stored all the same: two pages, nothing after them.
    assert reader.device.store.setting(Setting.CURSOR) == third_from
    stored = [t["title"] for t in reader.device.tasks(board)]
    assert stored == titles[: 2 * PAGE - 2]  # the board and its owner came first

    transport.answer = lambda _request: None
    result = reader.sync()
    assert [t["title"] for t in reader.device.tasks(board)] == titles
    assert result.pulled == len(titles) - len(stored)  # the rest, each once


def test_a_pull_of_several_pages_settles_the_edits_it_reflects_and_shows_each_task_once(
    module_backend: BackendProcess,
    answering: Callable[[str], Phone],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pull of several pages that reflects a backlog of pushed edits settles them all
    (the last page settles before it folds its own entities, and folds the other settled
    ones after): every edit is shown, none is left pending, and the settled ones are kept
    for a reset. The views end as they did when the settle came after the fold, so this
    guards the outcome, not the order."""
    monkeypatch.setattr(engine_module, "PULL_LIMIT", PAGE)
    phone = answering(module_backend.url).signup(f"settle{uuid.uuid4().hex[:8]}")
    board = phone.device.create_board("Settle")
    tasks = [phone.device.add_task(board, f"task {i}") for i in range(3 * PAGE)]
    phone.settle()
    for round_ in range(3):
        for i, task in enumerate(tasks):
            phone.device.set_task(task, title=f"task {i}, edit {round_}")
    phone.run(phone.engine.sync(pull=False))
    assert phone.device.pending_counts() == (0, 3 * len(tasks))  # stored, not reflected yet

    phone.settle()  # a pull of several pages (the projector may need a moment)
    assert phone.device.pending_counts() == (0, 0)
    shown = {t["id"]: t["title"] for t in phone.device.tasks(board)}
    assert shown == {task: f"task {i}, edit 2" for i, task in enumerate(tasks)}
    with phone.device.store.read() as conn:
        assert Outbox(conn).kept_count() >= 3 * len(tasks)  # kept a while for a reset
