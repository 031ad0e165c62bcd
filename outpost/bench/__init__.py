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
    bootstrap_large.py  4b. the same with a million tasks (their rows written into the
                     views directly by seed.py: the pull is measured, not the ingest)
    fanout.py        5. a push until the last of many live connections (1,000, then
                     3,000) has its page of changes; read in client processes of
                     their own (fanout_child.py), so the bench is not what is measured
    drain.py         6. a backlog of pending events until accepted and reflected
    guessers.py      7. another user's pulls while 40 addresses guess one password
    board_scroll.py  8. the app on Xvfb scrolls and filters a board of 1,000 cards: frame
                     time, vs a plain Kivy RecycleView of Labels (the app in
                     board_scroll_child.py; the board recycles its cards too)
    pouchdb.py       --peer pouchdb: the PouchDB peer (peer/peer.js) beside 1, 2 and 3,
                     three rounds alternating with Outpost's own runs of them
    cluster.py       --cluster: 2 and 3 through `outpost cluster`'s topology beside the
                     single-process run, and ingest through 1, 2 and 4 BFFs
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
    "bootstrap_large",
    "guessers",
    "board_scroll",
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
    parser.add_argument(
        "--peer",
        choices=["pouchdb"],
        help="also measure the PouchDB peer (installed with npm from the committed lockfile) "
        "on local_action, ingest and propagation, alternating three rounds with Outpost",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="ingest and propagation also through `outpost cluster`'s topology (3 NATS "
        "nodes, PostgreSQL, 2 BFFs), and ingest through 1, 2 and 4 BFFs",
    )
    return parser


CLUSTER_SCENARIOS = ("ingest", "propagation")


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
    from outpost.bench.harness import SETTINGS_DIFFER, Workspace, progress
    from outpost.bench.plan import FULL, QUICK

    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main_task is not None:
        # SIGTERM stops the bench the way Ctrl-C does: cancelled, cleaned up on the way out.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    plan = QUICK if args.quick else FULL
    if args.cluster:
        args.only = [n for n in (args.only or CLUSTER_SCENARIOS) if n in CLUSTER_SCENARIOS]
        if not args.only:
            raise SystemExit("outpost bench --cluster: runs only --only ingest and propagation")
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    began = time.perf_counter()
    names = list(args.only or SCENARIOS)
    peer = _Peer(args.peer, names) if args.peer else None
    if peer is not None:
        await peer.prepare()
    results: list[report.ScenarioResult] = []
    async with Workspace() as ws:

        async def run_one(name: str) -> report.ScenarioResult:
            module: Any = importlib.import_module(f"outpost.bench.{name}")
            await ws.wait_quiet()  # no backlog of the scenario before: each starts alike
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
            return result

        combined = await peer.rounds(ws, plan, run_one) if peer is not None else {}
        for name in names:
            results.append(combined[name] if name in combined else await run_one(name))
        progress("stopping the backend and nats-server")
    if args.cluster:
        results += await _cluster_results(names, plan)
    if peer is not None:
        peer.attach(results)
    return report.document(
        results,
        quick=plan.quick,
        started_at=started_at,
        seconds=time.perf_counter() - began,
        peer=None if peer is None else peer.summary(),
        settings_differ={**SETTINGS_DIFFER, **(_cluster_limits() if args.cluster else {})},
    )


def _cluster_limits() -> dict[str, str]:
    from outpost.bench.cluster import CLUSTER_LIMITS

    return {name: f"{value} (the cluster only)" for name, value in CLUSTER_LIMITS.items()}


async def _cluster_results(names: list[str], plan: Any) -> list[Any]:
    """The same scenarios through a cluster of two BFFs, then ingest through 1, 2, 4 BFFs."""
    import importlib

    from outpost.bench import report
    from outpost.bench.cluster import SCALING_NAME, SCALING_TITLE, ClusterWorkspace, scaling
    from outpost.bench.harness import progress

    results: list[report.ScenarioResult] = []

    async def timed(name: str, title: str, body: Any) -> None:
        progress(f"{title}: starting")
        began = time.perf_counter()
        try:
            result: report.ScenarioResult = await body()
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            result = report.ScenarioResult(name, title, error=f"{type(exc).__name__}: {exc}")
        result.name, result.title = name, title
        result.seconds = time.perf_counter() - began
        progress(f"{title}: done in {result.seconds:.1f} s")
        results.append(result)

    try:
        async with ClusterWorkspace(2) as ws:
            for name in names:
                module: Any = importlib.import_module(f"outpost.bench.{name}")
                title = f"{module.TITLE} (cluster: 3 NATS nodes at R3, PostgreSQL, 2 BFFs)"
                await timed(f"{name}_cluster", title, lambda m=module: m.run(ws, plan))
    except Exception as exc:  # the cluster did not start: its figures are missing
        traceback.print_exc(file=sys.stderr)
        error = f"{type(exc).__name__}: {exc}"
        results += [report.ScenarioResult(f"{n}_cluster", n, error=error) for n in names]
    if "ingest" in names:
        await timed(SCALING_NAME, SCALING_TITLE, lambda: scaling(plan))
    return results


class _Peer:
    """``--peer``: the install, the alternating rounds, the figures beside Outpost's."""

    def __init__(self, name: str, names: list[str]) -> None:
        from outpost.bench import pouchdb

        self.name = name
        self.workloads = [n for n in names if n in pouchdb.WORKLOADS]
        self.missing: str | None = None
        self.node = ""
        self.packages = Path()
        self.outpost_rounds: dict[str, list[Any]] = {n: [] for n in self.workloads}
        self.peer_rounds: list[Any] = []

    async def prepare(self) -> None:
        from outpost.bench import pouchdb
        from outpost.bench.harness import progress

        if not self.workloads:
            self.missing = f"none of the scenarios run has a peer workload {pouchdb.WORKLOADS}"
        else:
            try:
                self.node, self.packages = await asyncio.to_thread(pouchdb.prepare)
            except pouchdb.PeerMissing as exc:
                self.missing = str(exc)
        if self.missing is not None:
            progress(f"peer: {self.missing}; running the rest without it")

    async def rounds(self, ws: Any, plan: Any, run_one: Any) -> dict[str, Any]:
        """Outpost's peered scenarios then the peer, ``ROUNDS`` times; Outpost's results
        combined over the rounds (one run each when the peer is missing)."""
        from outpost.bench import pouchdb
        from outpost.bench.harness import BenchError, progress

        if self.missing is not None:
            return {}
        for k in range(1, pouchdb.ROUNDS + 1):
            progress(f"peer: round {k} of {pouchdb.ROUNDS}: Outpost's {', '.join(self.workloads)}")
            for name in self.workloads:
                self.outpost_rounds[name].append(await run_one(name))
            await ws.wait_quiet()  # Outpost's backlog must not share the machine with the peer
            progress(f"peer: round {k} of {pouchdb.ROUNDS}: PouchDB's {', '.join(self.workloads)}")
            try:
                self.peer_rounds.append(
                    await pouchdb.run(ws.root, plan, self.node, self.packages, self.workloads)
                )
            except BenchError as exc:
                self.missing = f"round {k}: {exc}"
                progress(f"peer: {self.missing}; its figures are missing")
                break
        return {name: pouchdb.combine(rounds) for name, rounds in self.outpost_rounds.items()}

    def attach(self, results: list[Any]) -> None:
        from outpost.bench import pouchdb

        pouchdb.attach(results, self.outpost_rounds, self.peer_rounds, self.missing)

    def summary(self) -> dict[str, Any]:
        from outpost.bench import pouchdb

        return pouchdb.summary(self.peer_rounds, self.missing)
