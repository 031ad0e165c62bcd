"""The database away: clear 503s and a degraded health, no stack trace; back when it is."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device
from tests.support.postgres import TestPostgres

pytestmark = pytest.mark.integration


def test_a_database_outage_is_503_with_retry_after_and_passes(
    tmp_path: Path, controlled_nats: ControlledNats, private_postgres: TestPostgres
) -> None:
    url = private_postgres.create_database()
    backend = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, db_url=url).start()
    try:
        alice = Device(backend.url, "alice").signup()
        board, created = alice.new_board()
        alice.push(created)
        private_postgres.stop()
        _, task = alice.new_task(board)
        response = alice.push_raw([task])
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {
            "status_code": 503,
            "detail": "the database is unavailable: try again shortly",
        }
        health = httpx.get(f"{backend.url}/v1/health")
        assert health.status_code == 503
        assert health.json()["database"] == "unavailable"
        assert len(controlled_nats.events()) == 1, "nothing published without a decision"
        private_postgres.start()
        deadline = time.monotonic() + 20
        while (response := alice.push_raw([task])).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.5)
        assert response.json()["results"][0]["status"] == "accepted"
        alice.sync_until(response.json()["results"][0]["seq"])
        assert httpx.get(f"{backend.url}/v1/health").json()["status"] == "ok"
    finally:
        backend.stop()
