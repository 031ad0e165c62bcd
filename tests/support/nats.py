"""Pytest helpers for tests against a real nats-server, without pytest-asyncio.

Tests are plain functions that `run()` an async body; the body starts what it needs with
`async with running_nats(store) as server:` so the server stops even when the body fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
from nats.aio.client import Client

from backend.nats import EmbeddedNats

T = TypeVar("T")

logger = logging.getLogger(__name__)

TEST_TIMEOUT_S = 30.0


def run(body: Coroutine[Any, Any, T], *, timeout_s: float = TEST_TIMEOUT_S) -> T:
    """Run an async test body in a fresh event loop; a hang fails the test instead."""
    return asyncio.run(asyncio.wait_for(body, timeout_s))


@pytest.fixture
def nats_store(tmp_path: Path) -> Path:
    """An empty directory for one embedded server's config, log and JetStream store."""
    store = tmp_path / "nats"
    store.mkdir()
    return store


@asynccontextmanager
async def running_nats(store_dir: Path, *, supervise: bool = True) -> AsyncIterator[EmbeddedNats]:
    """A started embedded server that is stopped on the way out, whatever happened."""
    server = EmbeddedNats(store_dir, backoff_initial_s=0.05, stop_timeout_s=5.0)
    try:
        await server.start(supervise=supervise)
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def connected(server: EmbeddedNats, **options: Any) -> AsyncIterator[Client]:
    """A nats-py client that keeps reconnecting quickly, closed on the way out."""
    options = {
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.05,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "error_cb": _quiet_error,
        **options,
    }
    nc = await nats.connect(server.url, **options)
    try:
        yield nc
    finally:
        await nc.close()


async def _quiet_error(exc: Exception) -> None:
    # A killed server makes every reconnect attempt fail until it is back: expected, not news.
    logger.debug("nats client error: %r", exc)


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail the test with `what` if it does not in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)
