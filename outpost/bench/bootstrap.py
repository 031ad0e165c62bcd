"""Scenario 4, bootstrap: a new device pulls a board of N tasks. The device runs in a
child process; its peak memory is the child's own high-water mark (``VmHWM``, see
``device_child``), with the ``ru_maxrss`` the parent reads of it noted alongside. Beside
them: the same pages fetched with plain HTTP and thrown away (what the server and the wire
cost, without the device's store), and the peak memory of a device process that signed in
and pulled nothing.

The board is made through the real push (so its owner is a member, as on any board); its
tasks are written into the views as the projector would have written them
(``seed.write_tasks_into_views``): ingest is measured elsewhere, and pushing a million
events would take most of an hour. The device receives every task through the real pull.
``bootstrap_large`` runs the same steps with a million tasks (``Plan.bootstrap_large_tasks``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import httpx

from outpost.bench.harness import (
    PASSWORD,
    BenchError,
    Timer,
    Workspace,
    cpu_spent,
    progress,
    unique_name,
)
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target
from outpost.bench.seed import Seeder, write_tasks_into_views

NAME = "bootstrap"
TITLE = "4. bootstrap"
TARGET_SECONDS = 5.0
TARGET_MB = 300.0
PULL_LIMIT = 1000


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    return await measure(ws, NAME, TITLE, plan.bootstrap_tasks, TARGET_SECONDS, TARGET_MB)


async def measure(
    ws: Workspace, name: str, title: str, count: int, target_seconds: float, target_mb: float
) -> ScenarioResult:
    """A board of ``count`` tasks, then a new device pulls it: seconds and peak memory."""
    result = ScenarioResult(name, title, params={"tasks": count})
    username = unique_name("boot")
    token = await ws.session(username)
    seeder = Seeder(ws.url, token)
    try:
        board = await seeder.board("Bootstrap")
    finally:
        await seeder.close()
    await ws.wait_projected()
    progress(f"{name}: writing a board of {count:,} tasks into the views")
    timer = Timer()
    await asyncio.to_thread(write_tasks_into_views, ws.views_file, board, count, label=name)
    result.params["seed_seconds"] = round(timer.seconds, 1)
    progress(f"{name}: plain HTTP pull (warm-up)")
    await _plain_pull(ws.url, token)
    progress(f"{name}: a new device pulls the board")
    cpu_before = ws.cpu_seconds()
    pulled, device_mb = await _device_in_child(ws, username, "bootstrap")
    cpu_after = ws.cpu_seconds()
    if pulled["tasks"] != count:
        raise BenchError(f"the new device has {pulled['tasks']} tasks, not {count}")
    progress(f"{name}: plain HTTP pull")
    plain_seconds = await _plain_pull(ws.url, token)
    idle, idle_mb = await _device_in_child(ws, username, "idle")
    result.params["cpu_seconds"] = {
        "device": round(pulled["cpu_seconds"], 2),
        **{
            process: round(spent, 2)
            for process, spent in cpu_spent(cpu_before, cpu_after).items()
            if process != "devices"  # the bench process only waits for the child
        },
    }
    result.params["ru_maxrss_mb"] = {
        "bootstrap": pulled["ru_maxrss_mb"],
        "idle": idle["ru_maxrss_mb"],
    }
    result.add(
        Figure(
            f"seconds to pull {count:,} tasks",
            "s",
            pulled["seconds"],
            baseline=plain_seconds,
            baseline_label="plain HTTP pull of the same pages, not stored",
            target=Target("<=", target_seconds),
        )
    )
    result.add(
        Figure(
            "peak memory of the device process",
            "MB",
            device_mb,
            baseline=idle_mb,
            baseline_label="a device process that pulled nothing",
            target=Target("<=", target_mb),
        )
    )
    return result


async def _plain_pull(url: str, token: str) -> float:
    """Seconds to fetch every page of a bootstrap with httpx, decoding only the cursor."""
    timer = Timer()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as http:
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": PULL_LIMIT}
            if cursor:
                params["cursor"] = cursor
            reply = await http.get("/v1/sync/pull", params=params)
            if reply.status_code != 200:
                raise BenchError(f"plain pull: HTTP {reply.status_code} {reply.text[:200]}")
            page = reply.json()
            cursor = page["cursor"]
            if not page["has_more"]:
                return timer.seconds


async def _device_in_child(ws: Workspace, username: str, mode: str) -> tuple[dict[str, Any], float]:
    """Run a device in a child process; return what it printed and its peak memory in MB."""
    folder = ws.folder(f"bootstrap/{mode}-{unique_name('d')}")
    command = [sys.executable, "-m", "outpost.bench.device_child", mode, "--server", ws.url]
    command += ["--username", username, "--password", PASSWORD, "--folder", str(folder)]
    child = ws.spawn(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    return await asyncio.to_thread(_collect, child)


def _collect(child: subprocess.Popen[bytes]) -> tuple[dict[str, Any], float]:
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise BenchError(f"the device process exited with {child.returncode}")
    report: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    report["ru_maxrss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    peak = report["peak_mb"] if report.get("peak_mb") is not None else report["ru_maxrss_mb"]
    return report, float(peak)
