"""``outpost backend`` runs the consumers set apart in a child process of its own
(``backend/consumers/child.py``): one that works, reports its health, is started again when
it dies, and never outlives the backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from backend.bff.health import HealthProbe
from backend.config import Settings
from backend.consumers import child
from backend.consumers.child import ApartConsumers
from backend.processes import child_pids
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

APART = ("workload", "lake", "gateway", "orchestrator")
_GROUP_FILE = Path("/proc/self/autogroup")
_SESSION_GROUP = _GROUP_FILE.read_text() if _GROUP_FILE.exists() else ""
"""This session's scheduling group and its nice, read before any backend of this module."""


def _health(backend: BackendProcess) -> dict[str, Any]:
    reply = httpx.get(f"{backend.url}/v1/health", timeout=10)
    body: dict[str, Any] = reply.json()
    return body


def _fetches(backend: BackendProcess) -> dict[str, str]:
    return {name: c["fetch"] for name, c in _health(backend)["consumers"].items()}


def _all_shared(backend: BackendProcess) -> dict[str, str] | None:
    """Every consumer's fetch, once the four set apart are all on the shared one."""
    fetches = _fetches(backend)
    return fetches if all(fetches.get(name) == "shared" for name in APART) else None


def _wait(what: str, check: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _child(backend: BackendProcess) -> int:
    assert backend.process is not None
    children = _wait("the consumers' process", lambda: child_pids(backend.process.pid))
    assert len(children) == 1, children
    return int(children[0])


def _all_closed(backend: BackendProcess) -> dict[str, Any] | None:
    health = _health(backend)
    consumers = health["consumers"]
    closed = all(consumers.get(name, {}).get("breaker") == "closed" for name in APART)
    return health if closed and consumers["projector"]["breaker"] == "closed" else None


def test_the_consumers_apart_work_report_their_health_and_come_back_when_killed(
    backend: BackendProcess,
) -> None:
    health = _wait("every consumer's breaker closed", lambda: _all_closed(backend))
    assert set(health["consumers"]) == {"projector", *APART}
    assert health["status"] == "ok"
    first = _child(backend)
    # Background work: on a busy machine the BFF and the projector go first. The child
    # runs in the idle scheduling class (Settings.consumers_idle), in the backend's session
    # (Linux's scheduling group: in one of its own, its idleness would only count against
    # its own threads) but its own process group (a Ctrl-C reaches the backend alone).
    parent = backend.process.pid
    assert os.sched_getscheduler(first) == os.SCHED_IDLE
    assert os.sched_getscheduler(parent) == os.SCHED_OTHER
    assert os.getsid(first) == os.getsid(parent)
    assert os.getpgid(first) == first != os.getpgid(parent)
    # A background group writing to the terminal is not stopped under `stty tostop` (the
    # child ignores SIGTTOU from its start: uvloop undoes what a preexec_fn would set).
    status = Path(f"/proc/{first}/status").read_text()
    ignored = int(next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16)
    assert ignored & (1 << (signal.SIGTTOU - 1))
    parent_nice = os.getpriority(os.PRIO_PROCESS, parent)
    assert os.getpriority(os.PRIO_PROCESS, first) == max(parent_nice, 10)
    # The session's group is the backend's too (and this test's): its nice is left as it
    # was before any backend started.
    assert (
        Path(f"/proc/{first}/autogroup").read_text()
        == Path(f"/proc/{parent}/autogroup").read_text()
        == _SESSION_GROUP
    )

    # The child does its work: an event reaches the workload and the lake there.
    ann = Device(backend.url, "apart-ann").signup()
    board, created = ann.new_board("Apart")
    [result] = ann.push(created)
    for name in APART:
        backend.wait_passed(name, result["seq"])
    # One fetch of the stream feeds the four in the child; the projector, alone beside
    # the BFF, has its own durable consumer.
    assert _wait("the four on the shared fetch", lambda: _all_shared(backend)) == {
        "projector": "own",
        **{name: "shared" for name in APART},
    }

    os.kill(first, signal.SIGKILL)
    assert backend.process is not None
    parent = backend.process.pid
    second = _wait(
        "a new consumers' process",
        lambda: [p for p in child_pids(parent) if p != first and _alive(p)],
    )[0]
    _wait("every consumer's breaker closed again", lambda: _all_closed(backend))
    assert "starting it again" in backend.tail(200)

    _, task = ann.new_task(board, "After the restart")
    [result] = ann.push(task)
    assert result["status"] == "accepted"
    for name in APART:
        backend.wait_passed(name, result["seq"])

    assert backend.stop() == 0
    assert not _alive(second), "the consumers' process outlived a stopped backend"


def test_the_consumers_apart_end_with_a_backend_killed_outright(
    backend: BackendProcess,
) -> None:
    child = _child(backend)
    backend.kill()
    _wait("the consumers' process to end", lambda: not _alive(child), timeout_s=20)


def test_a_consumers_process_whose_stop_hangs_exits_by_its_deadline(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    """A consumers' process told to stop while its nats-server does not answer (frozen
    here; gone with a SIGKILLed backend, in the case seen) would wait 25 s and more for its
    NATS calls: by ``OUTPOST_STOP_DEADLINE_S`` it exits anyway, so that none outlives its
    backend for long."""
    env = {
        **os.environ,
        "OUTPOST_NATS_URL": controlled_nats.url,
        "OUTPOST_DATA_DIR": str(tmp_path / "backend"),
        "OUTPOST_STOP_DEADLINE_S": "1",
    }
    command = [sys.executable, "-m", "outpost", "backend", "consume"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    server = controlled_nats.server.pid
    assert process.stderr is not None and server is not None
    try:
        for line in process.stderr:
            if "outpost consumers running" in line:
                break
        os.kill(server, signal.SIGSTOP)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 1
        assert "did not stop within 1 s; exiting" in process.stderr.read()
    finally:
        os.kill(server, signal.SIGCONT)
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _backend_with(folder: Path, nats_url: str, env: dict[str, str]) -> Iterator[BackendProcess]:
    """A backend of its own with ``env``, stopped after."""
    process = BackendProcess(folder, nats_url=nats_url, env=env).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_backend_with_nothing_apart_runs_every_consumer_itself(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    with _backend_with(
        tmp_path / "one", controlled_nats.url, {"OUTPOST_CONSUMERS_APART": ""}
    ) as process:
        health = _wait("every consumer's breaker closed", lambda: _all_closed(process))
        assert set(health["consumers"]) == {"projector", *APART}
        assert process.process is not None
        assert child_pids(process.process.pid) == []
        # The four that no pull reads share one fetch; the projector, whose commits devices
        # wait for, never waits on theirs.
        fetches = _wait("the four on the shared fetch", lambda: _all_shared(process))
        assert fetches["projector"] == "own"


def test_without_the_idle_class_the_child_leads_a_session_at_nice_10(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    idle_off = {"OUTPOST_CONSUMERS_IDLE": "false"}
    with _backend_with(tmp_path / "nice", controlled_nats.url, idle_off) as process:
        _wait("every consumer's breaker closed", lambda: _all_closed(process))
        child = _child(process)
        assert process.process is not None
        assert os.sched_getscheduler(child) == os.SCHED_OTHER
        assert os.getsid(child) == child  # a session, and so a scheduling group, of its own
        assert os.getpriority(os.PRIO_PROCESS, child) >= 10
        assert Path(f"/proc/{child}/autogroup").read_text().split()[-1] == "10"
        # The backend's group, this test's session's, is left as it was (an empty file where
        # the test runner's session is the kernel's first, which has no group of its own).
        assert Path(f"/proc/{process.process.pid}/autogroup").read_text() == _SESSION_GROUP


def test_health_says_degraded_when_the_consumers_process_does_not_answer(
    controlled_nats: ControlledNats,
) -> None:
    class NoViews:
        async def status(self) -> tuple[int, int]:
            return 0, 0

    async def report() -> dict[str, Any]:
        nc = await nats.connect(controlled_nats.url)
        try:
            views: Any = NoViews()
            settings = Settings.from_env({"OUTPOST_COMPONENTS": "projector,lake"})
            apart = ApartConsumers(settings, controlled_nats.url)  # never started: silent
            probe = HealthProbe(nc, views, {}, apart=apart)
            return await probe.report()
        finally:
            await nc.close()

    health = asyncio.run(report())
    assert health["status"] == "degraded"
    assert health["consumers"]["lake"]["breaker"] == "unknown"
    assert "does not answer" in health["consumers"]["lake"]["last_error"]


def test_a_child_late_with_one_answer_is_reported_as_it_last_answered_for_a_while(
    controlled_nats: ControlledNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child runs in the idle class: with every core busy it may miss the question's
    timeout. Its last answer stands for ``REPORT_KEPT_S``; only past that is the backend
    ``degraded`` (a 503 the fuzzer met on a loaded CI machine)."""
    lake = {"breaker": "closed", "standby": False, "lag_events": 0, "lag_ms": 0}
    lake |= {"last_error": None, "faults": 0, "position": 7, "fetch": "shared"}

    class NoViews:
        async def status(self) -> tuple[int, int]:
            return 7, 0

    async def reports() -> list[dict[str, Any]]:
        nc = await nats.connect(controlled_nats.url)
        try:
            settings = Settings.from_env({"OUTPOST_COMPONENTS": "projector,lake"})
            apart = ApartConsumers(settings, controlled_nats.url)

            async def answer(msg: Msg) -> None:
                await msg.respond(json.dumps({"lake": lake}).encode())

            answering = await nc.subscribe(apart.health_subject, cb=answer)
            probe = HealthProbe(nc, cast(Any, NoViews()), {}, apart=apart)
            seen = [await probe.report()]
            await answering.unsubscribe()  # the child goes quiet
            seen.append(await probe.report())
            monkeypatch.setattr(child, "REPORT_KEPT_S", 0.0)
            seen.append(await probe.report())
            return seen
        finally:
            await nc.close()

    answered, late, silent = asyncio.run(reports())
    assert answered["status"] == late["status"] == "ok"
    assert answered["consumers"]["lake"] == late["consumers"]["lake"] == lake
    assert silent["status"] == "degraded"
    assert silent["consumers"]["lake"]["breaker"] == "unknown"
    assert "does not answer" in silent["consumers"]["lake"]["last_error"]


def test_a_child_that_keeps_failing_is_reported_as_such_not_as_starting(
    tmp_path: Path, controlled_nats: ControlledNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that exits at its start (here: a database URL it cannot use) is started
    again and again; between its tries ``/v1/health`` calls its consumers ``unknown`` and
    says how it ended, instead of ``starting`` for ever."""
    monkeypatch.setenv("OUTPOST_DB_URL", "nosuchdb://nowhere")  # the child inherits it
    settings = Settings.from_env(
        {"OUTPOST_COMPONENTS": "projector,lake"}, data_dir=tmp_path / "data"
    )

    async def watch() -> tuple[str, str | None]:
        apart = ApartConsumers(settings, controlled_nats.url)
        await apart.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline:
                breaker, why = apart.silence()
                if breaker == "unknown" and why and "exited with" in why:
                    return breaker, why
                await asyncio.sleep(0.05)
            return apart.silence()
        finally:
            await apart.stop()

    breaker, why = asyncio.run(watch())
    assert breaker == "unknown"
    assert why is not None and "the consumers' process exited with 1" in why
