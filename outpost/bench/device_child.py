"""A device in a process of its own, so that its peak memory can be read from outside.

``python -m outpost.bench.device_child bootstrap|idle --server URL --username U
--password P --folder DIR`` signs in a new device; ``bootstrap`` then pulls everything
once. It prints ``{"seconds", "cpu_seconds", "tasks", "peak_mb"}`` as JSON (``cpu_seconds``:
the process's own user + system time during the pull, every thread); ``idle`` stops after signing in
(the baseline: what a device process weighs before it holds any board). It imports only
the device side, never the bench's harness or the backend, so the memory is the device's.

``peak_mb`` is the process's own high-water mark (``VmHWM``) read as soon as the pull is
done (before the tasks are counted, in SQL).
The parent's ``ru_maxrss`` of the child is not enough alone: Linux carries the RSS of the
process that forked the child over into it, so a big parent inflates a small child.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from client.device import Device
from client.sync.engine import SyncEngine
from client.sync.transport import connect


def peak_mb() -> float | None:
    """This process's peak resident memory since its exec, in MB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


async def _main(args: argparse.Namespace) -> dict[str, float | None]:
    device = Device(Path(args.folder))
    http = connect(args.server, timeout=300)
    try:
        engine = SyncEngine(device, http)
        await engine.login(args.username, args.password)
        if args.mode == "idle":
            return {"seconds": 0.0, "cpu_seconds": 0.0, "tasks": 0, "peak_mb": peak_mb()}
        started, cpu_started = time.perf_counter(), time.process_time()
        await engine.sync()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        peak = peak_mb()  # before the count: listing a million tasks would weigh more
        return {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "tasks": _count_tasks(device),
            "peak_mb": peak,
        }
    finally:
        await http.aclose()
        device.close()


def _count_tasks(device: Device) -> int:
    """The tasks the device shows (``Device.tasks`` of every board), counted in SQL."""
    with device.store.read() as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM view WHERE kind = 'task' AND vals IS NOT NULL "
            "AND NOT json_extract(CAST(vals AS TEXT), '$.deleted')"
        ).fetchone()
    return int(count)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outpost.bench.device_child")
    parser.add_argument("mode", choices=["bootstrap", "idle"])
    parser.add_argument("--server", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--folder", required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
