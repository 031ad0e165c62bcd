"""One process per component: a second runner of the same component waits on standby and
takes over when the first one ends, instead of consuming the stream twice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.support.backend import ControlledNats


def consumer(
    data_dir: Path, nats_url: str, log: Path, db_url: str | None = None
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "outpost", "backend", "consume", "--components", "workload",
        "--data-dir", str(data_dir), "--nats-url", nats_url,
    ]  # fmt: skip
    if db_url:
        command += ["--db-url", db_url]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=out)


def wait_for_text(path: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.1)


@pytest.mark.integration
def test_a_second_process_of_a_component_stands_by_and_takes_over(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = consumer(tmp_path / "data", controlled_nats.url, first_log)
    second = None
    try:
        wait_for_text(first_log, "outpost consumers running: workload")
        second = consumer(tmp_path / "data", controlled_nats.url, second_log)
        wait_for_text(second_log, "workload: another process runs this component: on standby")
        first.kill()
        first.wait(10)
        wait_for_text(second_log, "workload: the other runner is gone: taking over")
        assert "on standby" not in first_log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.mark.integration
def test_a_rebuild_is_refused_while_another_process_runs_the_projector(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    log = tmp_path / "projector.log"
    command = [
        sys.executable, "-m", "outpost", "backend", "consume", "--components", "projector",
        "--data-dir", str(tmp_path / "data"), "--nats-url", controlled_nats.url,
    ]  # fmt: skip
    with log.open("ab") as out:
        running = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        wait_for_text(log, "outpost consumers running: projector")
        rebuild = [sys.executable, "-m", "outpost", "backend", "rebuild"]
        rebuild += ["--data-dir", str(tmp_path / "data")]
        refused = subprocess.run(rebuild, capture_output=True, text=True, check=False)
        assert refused.returncode == 1
        assert "another process (the backend?) runs the projector: stop it first" in (
            refused.stderr
        )
        running.terminate()
        running.wait(20)
        done = subprocess.run(rebuild, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "views emptied into generation" in done.stdout
    finally:
        if running.poll() is None:
            running.kill()
            running.wait(10)


def _end_lease_sessions(db_url: str) -> int:
    """End the PostgreSQL sessions that hold an advisory lock, as a restart of the server
    would end them; how many were ended."""

    async def end() -> int:
        url = make_url(db_url)
        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )
        try:
            rows = await connection.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted"
            )
            return len(rows)
        finally:
            await connection.close()

    return asyncio.run(end())


@pytest.mark.integration
def test_a_runner_whose_lease_session_ended_stops_committing_and_stands_by(
    tmp_path: Path, controlled_nats: ControlledNats, pg_url: str
) -> None:
    """A database restart ends the lease's session: the standby takes the lease, and the old
    holder, which still runs its lanes, must not commit beside it. Its next batch finds the
    lease gone in the commit's own transaction, rolls back and goes on standby."""
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = consumer(tmp_path / "data", controlled_nats.url, first_log, pg_url)
    second = None
    try:
        wait_for_text(first_log, "outpost consumers running: workload")
        second = consumer(tmp_path / "data", controlled_nats.url, second_log, pg_url)
        wait_for_text(second_log, "workload: another process runs this component: on standby")
        assert _end_lease_sessions(pg_url) == 1
        wait_for_text(second_log, "workload: the other runner is gone: taking over")
        assert "no longer holds its lease" not in first_log.read_text()
        # Batches to commit: both runners fetch from the one durable consumer, so some of
        # these reach the old holder. One at a time: a burst can go to one fetch whole.
        lost = "workload: this process no longer holds its lease"
        deadline = time.monotonic() + 30
        while lost not in first_log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{lost!r} never appeared in {first_log}"
            controlled_nats.publish("outpost.events.lease-test", b"{}")
            time.sleep(0.2)
        wait_for_text(first_log, "workload: another process runs this component: on standby")
        assert "no longer holds its lease" not in second_log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
