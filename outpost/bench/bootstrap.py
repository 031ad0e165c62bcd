"""Scenario 4, bootstrap: a new device pulls a board of N tasks. The device runs in a
child process; its peak memory is the child's own high-water mark (``VmHWM``, see
``device_child``), with the ``ru_maxrss`` the parent reads of it noted alongside. Beside
them: the same pages fetched with plain HTTP and thrown away (what the server and the wire
cost, without the device's store), and the peak memory of a device process that signed in
and pulled nothing."""

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
    progress,
    unique_name,
)
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target
from outpost.bench.seed import Seeder

NAME = "bootstrap"
TITLE = "4. bootstrap"
TARGET_SECONDS = 5.0
TARGET_MB = 300.0
PULL_LIMIT = 1000


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    count = plan.bootstrap_tasks
    result = ScenarioResult(NAME, TITLE, params={"tasks": count})
    username = unique_name("boot")
    token = await ws.session(username)
    seeder = Seeder(ws.url, token)
    try:
        progress(f"bootstrap: seeding a board of {count:,} tasks")
        board = await seeder.board("Bootstrap")
        await seeder.tasks(board, count, label="bootstrap seeding")
    finally:
        await seeder.close()
    await ws.wait_projected()
    progress("bootstrap: plain HTTP pull (warm-up)")
    await _plain_pull(ws.url, token)
    progress("bootstrap: a new device pulls the board")
    pulled, device_mb = await _device_in_child(ws, username, "bootstrap")
    if pulled["tasks"] != count:
        raise BenchError(f"the new device has {pulled['tasks']} tasks, not {count}")
    plain_seconds = await _plain_pull(ws.url, token)
    idle, idle_mb = await _device_in_child(ws, username, "idle")
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
            target=Target("<=", TARGET_SECONDS),
        )
    )
    result.add(
        Figure(
            "peak memory of the device process",
            "MB",
            device_mb,
            baseline=idle_mb,
            baseline_label="a device process that pulled nothing",
            target=Target("<=", TARGET_MB),
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
