"""``outpost cluster up|status|down`` brings up the real topology: three JetStream nodes with
the streams at three replicas, PostgreSQL, each consumer in its own process with a standby,
two BFFs behind a front. One cluster for the module, started and stopped through the CLI;
the limits that must hold across BFF processes are checked through its two BFFs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from backend.nats.streams import EVENTS_STREAM, FAULTS_STREAM, RESUBMIT_STREAM, ensure_streams
from outpost.cli import main
from outpost.cluster import State, read_state
from outpost.cluster.state import alive
from tests.backend.bff.test_signin_throttle import TWO_BFF_LIMITS, limits_hold_across
from tests.support.cli import outpost

STREAMS = (EVENTS_STREAM, FAULTS_STREAM, RESUBMIT_STREAM)


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return outpost("cluster", *args, timeout=timeout)


def processes_of(folder: Path) -> list[str]:
    """Every running process whose command line names ``folder`` (nats-servers, BFFs,
    consumers, the supervisor) or the cluster's PostgreSQL data folder (as root it may lie
    outside ``folder``: ``postgres-data-dir`` names it)."""
    marker = folder / "postgres-data-dir"
    names = [str(folder)] + ([marker.read_text().strip()] if marker.exists() else [])
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(name in command for name in names) and alive(int(pid)):
            found.append(f"{pid} {command[:120]}")
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, State]]:
    folder = tmp_path_factory.mktemp("cluster")
    settings = {"OUTPOST_PASSWORD_TIME_COST": "1", **TWO_BFF_LIMITS}
    sets = [f"--set={name}={value}" for name, value in settings.items()]
    started = cli("up", "--dir", str(folder), *sets)
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        yield folder, read_state(folder)
    finally:
        cli("down", "--dir", str(folder))
        marker = folder / "postgres-data-dir"  # as root, PostgreSQL's data lies outside
        if marker.exists():
            shutil.rmtree(Path(marker.read_text().strip()).parent, ignore_errors=True)


@pytest.mark.integration
def test_status_names_the_stream_leader_and_each_consumers_lease_holder(
    cluster: tuple[Path, State],
) -> None:
    folder, _ = cluster
    shown = cli("status", "--dir", str(folder), "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["phase"] == "ready"
    parts = {p["process"]: p for p in status["parts"]}
    assert all(p["alive"] and p["ready"] for p in parts.values()), parts
    nodes = [p for name, p in parts.items() if name.startswith("nats-")]
    assert len(nodes) == 3
    assert [p["role"] for p in nodes].count("stream leader") == 1, nodes
    for component in ("projector", "workload", "lake"):
        roles = sorted(parts[f"{component}-{k}"]["role"] for k in "ab")
        assert roles == ["lease holder", "standby"], (component, roles)
    assert [parts[f"bff-{i}"]["role"] for i in (1, 2)] == ["BFF (no consumers)"] * 2
    assert {4222, 5432, 6222, 8222}.isdisjoint(p["port"] for p in parts.values())
    table = cli("status", "--dir", str(folder))
    assert "stream leader" in table.stdout and "lease holder" in table.stdout


@pytest.mark.integration
def test_the_streams_keep_three_replicas_when_a_start_asks_for_one(
    cluster: tuple[Path, State],
) -> None:
    _, state = cluster

    async def replicas_after_a_start_with_one() -> tuple[list[int], list[int]]:
        nc = await nats.connect(state.nats_urls)
        try:
            js = nc.jetstream()
            before = [(await js.stream_info(s)).config.num_replicas or 1 for s in STREAMS]
            await ensure_streams(nc.jsm(), replicas=1)  # what every start did before
            after = [(await js.stream_info(s)).config.num_replicas or 1 for s in STREAMS]
            return before, after
        finally:
            await nc.close()

    before, after = asyncio.run(replicas_after_a_start_with_one())
    assert before == [3, 3, 3]
    assert after == [3, 3, 3]


@pytest.mark.integration
def test_the_front_spreads_requests_over_the_bffs(cluster: tuple[Path, State]) -> None:
    _, state = cluster
    assert state.front_url is not None and len(state.bff_urls) == 2
    for _ in range(4):  # a new connection each time: round robin
        reply = httpx.get(f"{state.front_url}/v1/sync/info", timeout=10)
        assert reply.status_code == 200


@pytest.mark.integration
def test_the_limits_hold_across_the_clusters_two_bffs(cluster: tuple[Path, State]) -> None:
    _, state = cluster

    class Bff:
        def __init__(self, url: str) -> None:
            self.url = url

    first, second = (Bff(url) for url in state.bff_urls)
    limits_hold_across(first, second)


@pytest.mark.integration
def test_down_stops_every_process_and_up_refuses_a_running_cluster(
    cluster: tuple[Path, State],
) -> None:
    folder, state = cluster
    again = cli("up", "--dir", str(folder))
    assert again.returncode == 1
    assert f"a cluster already runs in {folder}" in again.stderr
    stopped = cli("down", "--dir", str(folder))
    assert stopped.returncode == 0, stopped.stderr
    assert processes_of(folder) == []
    assert not alive(state.supervisor_pid)
    assert read_state(folder).phase == "down"


def _run(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["cluster", *args])
    return code, err.getvalue()


def test_status_and_down_without_a_cluster_say_how_to_start_one(tmp_path: Path) -> None:
    for action in ("status", "down"):
        code, err = _run(action, "--dir", str(tmp_path))
        assert code == 1
        assert f"no cluster in {tmp_path}" in err
        assert f"outpost cluster up --dir {tmp_path}" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nats", "2"], "--nats must be an odd number of nodes"),
        (["--bffs", "0"], "--bffs must be at least 1"),
        (["--standbys", "-1"], "--standbys must not be negative"),
        (["--set", "RATE=1"], "--set takes OUTPOST_NAME=VALUE"),
    ],
)
def test_up_refuses_a_topology_it_cannot_build(
    tmp_path: Path, args: list[str], message: str
) -> None:
    code, err = _run("up", "--dir", str(tmp_path), *args)
    assert code in (1, 2)
    assert message in err
    assert not (tmp_path / "cluster.json").exists()


def test_bench_cluster_refuses_scenarios_it_does_not_run_through_the_topology() -> None:
    from outpost.bench import main as bench_main

    with pytest.raises(SystemExit, match="runs only --only ingest and propagation"):
        bench_main(["--cluster", "--only", "drain"])


@pytest.mark.integration
def test_up_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    unreachable = "postgresql+asyncpg://postgres@127.0.0.1:9/outpost"  # the discard port
    failed = cli("up", "--dir", str(folder), "--bffs", "1", "--standbys", "0",
                 "--db-url", unreachable)  # fmt: skip
    assert failed.returncode == 1
    assert "outpost cluster up: the cluster did not start" in failed.stderr
    assert "exited with" in failed.stderr  # which part, and the end of its log
    assert read_state(folder).phase == "failed"
    assert processes_of(folder) == []
