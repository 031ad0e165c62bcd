"""A redelivery asked at a BFF wakes the gateway over NATS, in whichever process it runs
(``outpost backend`` runs it in its child process): it does not wait for its idle round."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import nats
import pytest

import backend.gateway.component as gateway_module
from backend.gateway.allow import AllowList
from backend.gateway.component import WAKE_SUBJECT, Gateway
from tests.backend.gateway.test_component import Harness, task_event
from tests.support.backend import ControlledNats

pytestmark = pytest.mark.integration


def test_a_wake_on_nats_sends_a_due_delivery_at_once(
    tmp_path: Path, controlled_nats: ControlledNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "_IDLE_S", 3600.0)  # only a wake can end its wait

    async def body() -> None:
        h = Harness(tmp_path, [], "http://127.0.0.1:9/hook")
        await h.start()
        sent = asyncio.Event()

        def answer(request: httpx.Request) -> httpx.Response:
            sent.set()
            return httpx.Response(200)

        nc = await nats.connect(controlled_nats.url)
        running = Gateway(
            h.db,
            h.publisher,
            allow=AllowList.parse("127.0.0.1"),
            retries=(0,),
            transport=httpx.MockTransport(answer),
            nc=nc,
        )
        rounds = asyncio.Event()
        send_due = running.send_due

        async def counted(client: httpx.AsyncClient) -> bool:
            busy = await send_due(client)
            rounds.set()
            return busy

        running.send_due = counted  # type: ignore[method-assign]
        stop = asyncio.Event()
        loop = asyncio.create_task(running.run_beside(stop))
        await asyncio.wait_for(rounds.wait(), 30)  # its first round found nothing: it idles
        await asyncio.sleep(0.2)
        assert not sent.is_set()
        await h.queue(task_event("queued elsewhere", 1))  # another process's queue: no wake
        other = await nats.connect(controlled_nats.url)
        await other.publish(WAKE_SUBJECT, b"")
        await other.flush()
        await asyncio.wait_for(sent.wait(), 30)
        stop.set()
        await asyncio.wait_for(loop, 30)
        await other.close()
        await nc.close()
        await h.db.dispose()

    asyncio.run(body())
