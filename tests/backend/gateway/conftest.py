"""What the gateway's integration tests share: a backend with the gateway allowed to
reach loopback and a short retry schedule (one per module), a receiver, a board owner."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.backend.gateway.receiver import Receiver
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

GATEWAY_ENV = {
    "OUTPOST_WEBHOOK_ALLOW": "127.0.0.1",
    "OUTPOST_WEBHOOK_RETRY_S": "0.2,0.2,0.2",
    "OUTPOST_WEBHOOK_TIMEOUT_S": "2",
}


@pytest.fixture(scope="module")
def gateway_backend(
    tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats
) -> Iterator[BackendProcess]:
    process = BackendProcess(
        tmp_path_factory.mktemp("backend"), nats_url=module_nats.url, env=GATEWAY_ENV
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def owner_with_board(backend: BackendProcess) -> tuple[Device, str]:
    owner = Device(backend.url, f"hook{uuid.uuid4().hex[:8]}").signup()
    board, created = owner.new_board("Hooks")
    [result] = owner.push(created)
    assert result["status"] == "accepted"
    return owner, board
