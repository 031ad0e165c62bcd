"""``outpost bench``: the benchmarks of issue 8, on real parts, as a table and JSON.

Each scenario runs on what users run: the backend as ``outpost backend`` on SQLite files
and a nats-server, real devices (``client.device.Device`` and the sync engine over HTTP).
Each figure sits beside a baseline measured in the same run on the same machine (raw
sqlite3, raw nats-py on the same server, plain HTTP, one connection instead of many), and
the ratio between them is what to compare across machines. Targets are noted, never
asserted: ``--quick`` runs small sizes so CI can check that the code still runs.

    harness.py       the workspace: temp folder, nats-server, backend, children, cleanup
    plan.py          the sizes of the full and the quick run
    report.py        figures, baselines, ratios; the markdown table and the JSON
    local_action.py  1. an action to a committed outbox row and view, vs raw sqlite3
    ingest.py        2. a device's push until another device's pull shows it
    propagation.py   3. A's action until B's view shows it, live, at 20 per second
    bootstrap.py     4. a new device pulls N tasks: seconds and peak memory
    fanout.py        5. a push until the last of many live connections is poked
    drain.py         6. a backlog of pending events until accepted and reflected
    guessers.py      7. another user's pulls while 40 addresses guess one password
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

SCENARIOS = (
    "local_action",
    "propagation",
    "ingest",
    "drain",
    "fanout",
    "bootstrap",
    "guessers",
)
INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outpost bench",
        description="Benchmarks on real parts: a results table on stdout, progress on stderr.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (under a minute): checks that it runs"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument(
        "--compare", metavar="FILE", help="a JSON file of an earlier run to compare with"
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; 0 when every scenario produced its figures, 1 otherwise."""
    args = build_parser().parse_args(argv)
    from outpost.bench import report

    previous = report.load_json(Path(args.compare)) if args.compare else None
    try:
        doc = asyncio.run(_run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("outpost bench: interrupted; every process it started is stopped", file=sys.stderr)
        return INTERRUPTED
    print(report.markdown(doc, previous))
    if args.json:
        report.write_json(doc, Path(args.json))
        print(f"outpost bench: results written to {args.json}", file=sys.stderr)
    return 1 if any(s["error"] for s in doc["scenarios"]) else 0


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import importlib

    from outpost.bench import report
    from outpost.bench.harness import Workspace, progress
    from outpost.bench.plan import FULL, QUICK

    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main_task is not None:
        # SIGTERM stops the bench the way Ctrl-C does: cancelled, cleaned up on the way out.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    plan = QUICK if args.quick else FULL
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    began = time.perf_counter()
    results: list[report.ScenarioResult] = []
    async with Workspace() as ws:
        for name in args.only or SCENARIOS:
            module: Any = importlib.import_module(f"outpost.bench.{name}")
            progress(f"{module.TITLE}: starting")
            scenario_began = time.perf_counter()
            try:
                result: report.ScenarioResult = await module.run(ws, plan)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                if ws.backend is not None:
                    print(f"the backend's log ends:\n{ws.backend.tail()}", file=sys.stderr)
                result = report.ScenarioResult(
                    name, module.TITLE, error=f"{type(exc).__name__}: {exc}"
                )
            result.seconds = time.perf_counter() - scenario_began
            progress(f"{module.TITLE}: done in {result.seconds:.1f} s")
            results.append(result)
        progress("stopping the backend and nats-server")
    return report.document(
        results, quick=plan.quick, started_at=started_at, seconds=time.perf_counter() - began
    )
