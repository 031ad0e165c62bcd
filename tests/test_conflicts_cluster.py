"""``outpost conflicts --cluster``: the scenarios on ``outpost cluster``'s topology.

A short run (two devices, few actions) across the cluster's faults: the node leading the
event stream killed mid-push, a BFF killed mid-push, a consumer's lease holder killed while
its standby waits, PostgreSQL restarted. Nothing acknowledged may be lost, every device must
converge, and no process of the cluster may outlive the tool. ``make conflicts-cluster`` is
the long version.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from backend.consumers.lanes import Lane
from backend.nats.streams import (
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    ensure_streams,
    event_subject,
)
from outpost.conflicts import main
from outpost.conflicts.cluster import writers_behind
from outpost.conflicts.orchestrator import EVENT_WRITERS
from outpost.conflicts.scenario import CLUSTER_STEP_KINDS, generate
from tests.support.cli import conflicts_tool
from tests.support.nats import connected, run, running_nats

RUN_TIMEOUT_S = 420


def _processes_naming(*names: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(name in command for name in names):
            found.append(f"{pid} {command[:120]}")
    return found


@pytest.mark.integration
def test_a_short_cluster_run_with_its_faults_loses_nothing_and_converges(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = conflicts_tool(
        "--cluster", "--faults", "--cluster-faults", "stream_leader_kill",
        "--clients", "2", "--ops", "20", "--seed", "11", "--shrink-seconds", "0",
        "--keep", "--json", str(out),
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert out.exists(), done.stderr[-4000:]
    report = json.loads(out.read_text())
    kept = Path(report["kept"])
    try:
        [run] = report["runs"]
        problems = run["problems"]
        assert report["cluster"] is True
        # The leader kill fired mid-push, and its proof is in the notes (the other cluster
        # faults are make conflicts-cluster's, to keep this run short).
        assert report["faults"]["stream_leader_kill"] >= 1, (report["faults"], run["notes"])
        notes = " | ".join(run["notes"])
        assert "stream leader n" in notes and "killed, back as pid" in notes, notes
        assert report["losses"] == 0, problems
        assert report["divergences"] == 0, problems
        assert report["applied_twice"] == 0, problems
        assert report["invariant_breaks"] == 0, problems
        assert report["ok"] and done.returncode == 0, problems or done.stderr[-2000:]
        marker = kept / "cluster" / "postgres-data-dir"
        names = [str(kept)] + ([marker.read_text().strip()] if marker.exists() else [])
        assert _processes_naming(*names) == []
    finally:
        marker = kept / "cluster" / "postgres-data-dir"
        if marker.exists():
            shutil.rmtree(Path(marker.read_text().strip()).parent, ignore_errors=True)
        shutil.rmtree(kept, ignore_errors=True)


def test_a_cluster_scenario_has_the_cluster_faults_instead_of_the_restarts() -> None:
    plain = generate(5, 3, 2, 60, True)
    cluster = generate(5, 3, 2, 60, True, cluster=True)
    kinds = {step.kind for step in cluster.steps}
    assert set(CLUSTER_STEP_KINDS) <= kinds
    assert not {"backend_restart", "nats_restart"} & kinds
    assert {"backend_restart", "nats_restart"} <= {step.kind for step in plain.steps}
    assert cluster.to_json()["cluster"] is True
    assert generate(5, 3, 2, 60, True, cluster=True).to_json() == cluster.to_json()
    leader_only = generate(5, 3, 2, 60, True, cluster=True, cluster_faults=("stream_leader_kill",))
    only = {step.kind for step in leader_only.steps} & set(CLUSTER_STEP_KINDS)
    assert only == {"stream_leader_kill"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "--backend-url", "http://x"], "--cluster starts its own topology"),
        (["--cluster", "--break", "saga-off"], "--cluster starts its own topology"),
        (["--cluster", "--bffs", "1"], "--bffs must be at least 2"),
        (["--cluster", "--cluster-faults", "meteor"], "--cluster-faults: unknown meteor"),
    ],
)
def test_cluster_argument_errors_are_clear(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.integration
def test_the_heal_waits_for_every_consumer_that_writes_events(nats_store: Path) -> None:
    """A cluster runs each consumer in a process of its own: the heal may end only once the
    orchestrator (a recurring task), the gateway and the saga's workload have acknowledged
    every event, or what they write after it lands on the backend alone."""

    async def behind_becomes(js: JetStreamContext, expected: int) -> None:
        for _ in range(100):
            if await writers_behind(js) == expected:
                return
            await asyncio.sleep(0.05)
        assert await writers_behind(js) == expected

    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            lanes = [
                Lane("events", EVENTS_STREAM, f"{EVENTS_SUBJECT_PREFIX}.>", name, name, 10)
                for name in sorted(EVENT_WRITERS)
            ]
            with pytest.raises(nats.js.errors.NotFoundError):
                await writers_behind(js)  # no durable yet: not known to be caught up
            subscriptions = [await lane.subscribe(js, 0) for lane in lanes]
            for _ in range(3):
                await js.publish(event_subject("b1"), b"{}")
            await behind_becomes(js, 3 * len(lanes))
            held: list[Msg] = []
            for lane, subscription in zip(lanes, subscriptions, strict=True):
                messages = await subscription.fetch(3, timeout=5)
                if lane.durable == "orchestrator":
                    held = messages  # delivered, not acknowledged: still behind
                else:
                    await messages[-1].ack()  # one acknowledgement for the batch
            await behind_becomes(js, 3)
            await held[-1].ack()
            await behind_becomes(js, 0)
            for lane in lanes:
                await lane.unsubscribe()

    run(body())
