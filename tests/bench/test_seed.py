"""The bootstrap scenarios' tasks are written into the views directly (``outpost bench``'s
``seed.write_tasks_into_views``): the rows must be the ones the projector makes for the
same ``TaskCreated`` events, and a real device must pull them as any board."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from client.device import Device as Phone
from client.sync.engine import SyncEngine
from client.sync.transport import connect
from outpost.bench.seed import ViewTemplate, fold_created, seeded_position, write_tasks_into_views
from protocol import is_valid_position, new_id
from tests.support.backend import BackendProcess
from tests.support.device import PASSWORD
from tests.support.device import Device as Remote


def test_every_seeded_row_is_the_fold_of_its_own_task_created() -> None:
    board = new_id()
    template = ViewTemplate(board)
    for i in (0, 1, 61, 62, 99_999, 1_000_000):
        strings = template.event(i)
        row, folded = template.render(strings, 7), fold_created(board, strings)
        assert row[:3] == (strings["entity"], board, 7)
        assert row[3:] == folded
        assert strings["title"] == f"Task {i}" and f'"title":["Task {i}"' in folded[0]


def test_seeded_ids_hlcs_and_positions_never_repeat_and_keep_the_tasks_in_order() -> None:
    template = ViewTemplate(new_id())
    made = [template.event(i) for i in range(120_000)]  # past the hlc counter's 99,999
    for key in ("entity", "event", "hlc", "position"):
        assert len({m[key] for m in made}) == len(made), key
    assert [m["hlc"] for m in made] == sorted(m["hlc"] for m in made)
    positions = [seeded_position(i) for i in (0, 1, 61, 62, 3843, 3844, 999_999)]
    assert positions == sorted(positions) and all(map(is_valid_position, positions))
    with pytest.raises(ValueError):
        seeded_position(62**4)


@pytest.mark.integration
def test_a_device_pulls_a_seeded_board_and_the_projector_folds_an_edit_onto_it(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    owner = Remote(module_backend.url, f"seed{new_id()[-8:]}").signup()
    board, created = owner.new_board("Seeded")
    seq = owner.push(created)[0]["seq"]
    owner.sync_until(seq)
    write_tasks_into_views(module_backend.data_dir / "projector.db", board, 2500)

    phone = Phone(tmp_path / "phone")

    async def bootstrap() -> Any:
        async with connect(module_backend.url) as http:
            engine = SyncEngine(phone, http)
            await engine.login(owner.username, PASSWORD)
            return await engine.sync()

    try:
        result = asyncio.run(bootstrap())
        titles = [t["title"] for t in phone.tasks(board)]
        assert result.pulled == 2502  # the board, its owner and every task, each once
        assert titles == [f"Task {i}" for i in range(2500)]  # in their seeded positions
        task = phone.tasks(board)[1234]["id"]
    finally:
        phone.close()

    # The projector reads a seeded row back as its own state and folds an edit onto it.
    edit = owner.event("TaskUpdated", {"fields": {"title": "Edited"}}, board=board, entity=task)
    owner.sync_until(owner.push(edit)[0]["seq"])
    assert owner.values("task", task)["title"] == "Edited"  # type: ignore[index]
    assert owner.values("task", task)["notes"] == "seeded task 1234"  # type: ignore[index]
