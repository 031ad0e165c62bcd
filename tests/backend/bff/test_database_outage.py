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
        # Every consumer's breaker closes at its next probe of the database: health says
        # ok once they all have (the BFF served the push above already).
        deadline = time.monotonic() + 30
        while (report := httpx.get(f"{backend.url}/v1/health").json())["status"] != "ok":
            assert time.monotonic() < deadline, report
            time.sleep(0.2)
        assert report["database"] == "ok"
    finally:
        backend.stop()


def _views(device: Device) -> dict[tuple[str, str], tuple[object, object]]:
    """What a device's pull shows: every entity's values and merge metadata."""
    return {key: (change["values"], change["meta"]) for key, change in device.state.items()}


def test_views_database_down_for_half_a_minute_opens_the_breaker_and_faults_nothing(
    tmp_path: Path, controlled_nats: ControlledNats, private_postgres: TestPostgres
) -> None:
    """The views on PostgreSQL, the BFF on SQLite: pushes go on while the views database is
    stopped for 30 s; the projector's breaker opens (health says so), nothing reaches the
    fault stream, and afterwards the views equal those of a clean backend given the same
    events."""
    url = private_postgres.create_database()
    backend = BackendProcess(
        tmp_path / "b", nats_url=controlled_nats.url, env={"OUTPOST_DB_URLS": f"projector={url}"}
    ).start()
    clean_nats = ControlledNats(tmp_path / "clean-nats")
    clean = BackendProcess(tmp_path / "clean", nats_url=clean_nats.url)
    try:
        alice = Device(backend.url, "alice").signup()
        board, created = alice.new_board()
        sent = [created]
        alice.push(created)
        task, first = alice.new_task(board, title="before")
        sent.append(first)
        alice.push(first)
        private_postgres.stop()
        stopped = time.monotonic()
        health: list[dict[str, object]] = []
        n = 0
        while time.monotonic() - stopped < 30:
            n += 1
            _, added = alice.new_task(board, title=f"during {n}", priority=n % 5)
            moved = alice.event(
                "TaskUpdated", {"fields": {"title": f"renamed {n}"}}, board=board, entity=task
            )
            for event in (added, moved):
                sent.append(event)
                alice.push_raw([event])  # 200, or 503 if the answer needed the views
            reply = httpx.get(f"{backend.url}/v1/health", timeout=10)
            health.append(reply.json())
            time.sleep(2)
        opened = [h for h in health if h["consumers"]["projector"]["breaker"] == "open"]  # type: ignore[index]
        assert opened, health[-1]
        assert all(h["status"] == "degraded" for h in opened)
        assert "database unavailable" in str(opened[-1]["consumers"]["projector"]["last_error"])  # type: ignore[index]
        assert [f for f in controlled_nats.faults() if f["component"] == "projector"] == []
        private_postgres.start()
        results = alice.push(*sent)  # whatever was answered 503: stored once, or now
        assert {r["status"] for r in results} <= {"accepted", "duplicate"}, results
        alice.sync_until(max(r["seq"] for r in results), timeout=60)
        deadline = time.monotonic() + 20
        while (report := httpx.get(f"{backend.url}/v1/health").json())["status"] != "ok":
            assert time.monotonic() < deadline, report
            time.sleep(0.5)
        assert report["consumers"]["projector"]["breaker"] == "closed"
        assert report["consumers"]["projector"]["lag_events"] == 0
        assert [f for f in controlled_nats.faults() if f["component"] == "projector"] == []

        clean.start()
        twin = Device(clean.url, "alice", device_id=alice.device_id).signup()
        [*_, last] = twin.push(*sent)
        twin.sync_until(last["seq"])
        assert len(alice.state) >= n + 2
        assert _views(alice) == _views(twin)
    finally:
        backend.stop()
        clean.stop()
        clean_nats.stop()
