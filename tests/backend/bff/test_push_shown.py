"""An action's push answers once the projector beside the BFF has shown its events
(``PushService``'s ``shown``): the other devices' pages go out first, and the answer's
watermark covers the action. A bulk push, or one while the projector is behind, answers at
once; a projector that does not get there in time delays the answer by ``SHOWN_WAIT_S`` only.

The projector's position is a ``Passed`` the test moves by hand; the push, its database and
the stream are real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backend.bff.sync import push as push_module
from backend.bff.sync.push import SHOWN_WAIT_MAX_EVENTS, PushService
from backend.consumers.passed import Passed
from backend.db import Database
from backend.nats.publisher import JetStreamPublisher
from tests.backend.bff.test_push_write_ahead import Author, scenario, statuses
from tests.support.nats import run

pytestmark = pytest.mark.integration


ANSWERED_S = 10.0
"""Ample time for a push on a loaded machine, and a third of ``long_bound``'s: a push that
waits for the projector when it should not takes the whole bound."""


@pytest.fixture
def long_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bound no push of these tests reaches unless it waits when it should not."""
    monkeypatch.setattr(push_module, "SHOWN_WAIT_S", 30.0)


@pytest.mark.usefixtures("long_bound")
def test_an_action_is_answered_once_the_projector_is_past_it(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        shown = Passed()
        service = PushService(db, JetStreamPublisher(nc), shown=shown)
        alice = Author("alice")
        _, created = alice.device.new_board("Launch")
        answer = asyncio.create_task(service.push(alice.principal, alice.request(created)))
        await asyncio.sleep(0.3)  # stored long since: only the projector is awaited
        assert not answer.done(), "answered before the projector showed the action"
        shown.advance(1)
        [result] = await asyncio.wait_for(answer, 5)
        assert (result.status, result.seq) == ("accepted", 1)

    run(scenario(tmp_path, body))


@pytest.mark.usefixtures("long_bound")
def test_a_bulk_push_or_one_while_the_projector_is_behind_answers_at_once(
    tmp_path: Path,
) -> None:
    async def body(nc: Any, db: Database) -> None:
        shown = Passed()  # never moves: a projector that is not at these events at all
        service = PushService(db, JetStreamPublisher(nc), shown=shown)
        alice = Author("alice")
        board, created = alice.device.new_board("Launch")
        tasks = [alice.device.new_task(board, f"t{i}")[1] for i in range(SHOWN_WAIT_MAX_EVENTS)]
        bulk = await asyncio.wait_for(
            service.push(alice.principal, alice.request(created, *tasks)), ANSWERED_S
        )
        assert statuses(bulk) == [("accepted", None)] * (SHOWN_WAIT_MAX_EVENTS + 1)
        _, late = alice.device.new_task(board, "after the bulk")
        behind = await asyncio.wait_for(
            service.push(alice.principal, alice.request(late)), ANSWERED_S
        )
        assert statuses(behind) == [("accepted", None)], "the projector is far behind: no wait"

    run(scenario(tmp_path, body))


def test_a_projector_that_never_shows_it_delays_the_answer_by_the_bound_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push_module, "SHOWN_WAIT_S", 0.05)

    async def body(nc: Any, db: Database) -> None:
        service = PushService(db, JetStreamPublisher(nc), shown=Passed())  # caught up at 0
        alice = Author("alice")
        _, created = alice.device.new_board("Launch")
        answered = await asyncio.wait_for(service.push(alice.principal, alice.request(created)), 5)
        assert statuses(answered) == [("accepted", None)]

    run(scenario(tmp_path, body))
