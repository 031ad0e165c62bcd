"""``outpost conflicts``: automated sync conflict tests against a real backend.

Many devices (real processes), offline at random, with crashes and restarts in between,
must converge and never lose an action. For each seed the tool generates the whole scenario
(``scenario.generate``), runs it on a real backend and device processes
(``orchestrator``), heals everything and syncs to quiescence, then asks the ``oracle``;
a failure prints the seed and a shrunk step list (``shrink``). ``--scenarios K`` runs seeds
S..S+K-1 on one backend. ``--break RULE`` is the oracle's self-test (``broken``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from outpost.conflicts.broken import RULES
from outpost.conflicts.scenario import CLUSTER_STEP_KINDS, FAULT_KINDS, Scenario, generate

__all__ = ["FAULT_KINDS", "add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=3, help="device processes (default 3)")
    parser.add_argument("--users", type=int, default=2, help="users sharing boards (default 2)")
    parser.add_argument("--ops", type=int, default=200, help="actions per scenario (default 200)")
    parser.add_argument("--seed", type=int, help="the first seed (default: a random one)")
    parser.add_argument("--scenarios", type=int, default=1, help="seeds S..S+K-1 (default 1)")
    parser.add_argument("--faults", action="store_true", help="inject every fault kind")
    parser.add_argument("--backend-url", help="use this backend instead of starting one")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run on `outpost cluster`'s topology (three NATS nodes, PostgreSQL, BFFs and "
        "consumers apart); with --faults, the cluster's faults replace the restarts",
    )
    parser.add_argument(
        "--bffs", type=int, default=2, help="--cluster: BFF processes behind the front (default 2)"
    )
    parser.add_argument(
        "--cluster-faults",
        default=",".join(CLUSTER_STEP_KINDS),
        help="--cluster --faults: which of the cluster's faults to inject, comma-separated "
        f"(default: all of {', '.join(CLUSTER_STEP_KINDS)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stores and logs")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': stdout)")
    parser.add_argument(
        "--shrink-seconds",
        type=float,
        default=180.0,
        help="time to shrink a failing scenario (default 180; 0: do not shrink)",
    )
    parser.add_argument(
        "--adversary",
        action=argparse.BooleanOptionalAction,
        help="a member's device also sends hostile events (default: with --faults)",
    )
    parser.add_argument(
        "--break",
        dest="broken",
        choices=RULES,
        help="self-test of the oracle: run with this part broken (the run must fail)",
    )


def _check(args: argparse.Namespace) -> str | None:
    if args.clients < 2:
        return "--clients must be at least 2: conflicts need two devices"
    if not 1 <= args.users <= args.clients:
        return "--users must be between 1 and --clients (each user needs a device)"
    if args.ops < 0:
        return "--ops must not be negative"
    if args.scenarios < 1:
        return "--scenarios must be at least 1"
    if args.backend_url and not args.backend_url.startswith(("http://", "https://")):
        return "--backend-url must be an http:// or https:// URL"
    if args.backend_url and args.broken:
        return "--break needs the tool's own backend (leave out --backend-url)"
    if args.cluster and (args.backend_url or args.broken):
        return "--cluster starts its own topology: leave out --backend-url and --break"
    if args.cluster and args.bffs < 2:
        return "--bffs must be at least 2: the cluster's faults move devices between BFFs"
    unknown = set(_cluster_faults(args)) - set(CLUSTER_STEP_KINDS)
    if unknown:
        return (
            f"--cluster-faults: unknown {', '.join(sorted(unknown))} "
            f"(choose from {', '.join(CLUSTER_STEP_KINDS)})"
        )
    return None


def _cluster_faults(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(k.strip() for k in str(args.cluster_faults).split(",") if k.strip())


def _say(message: str) -> None:
    print(f"[conflicts {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _command(args: argparse.Namespace, seed: int) -> str:
    parts = ["outpost conflicts", f"--clients {args.clients}", f"--users {args.users}"]
    parts += [f"--ops {args.ops}", f"--seed {seed}"]
    if args.cluster:
        parts.append("--cluster" + (f" --bffs {args.bffs}" if args.bffs != 2 else ""))
        if set(_cluster_faults(args)) != set(CLUSTER_STEP_KINDS):
            parts.append(f"--cluster-faults {','.join(_cluster_faults(args))}")
    if args.faults:
        parts.append("--faults")
    if args.adversary is not None:
        parts.append("--adversary" if args.adversary else "--no-adversary")
    if args.broken:
        parts.append(f"--break {args.broken}")
    return " ".join(parts)


async def _attempt(
    backend: Any, scenario: Scenario, folder: Path, broken: str | None
) -> tuple[Any, Any, float]:
    """One full run of a scenario: (execution, verdict, seconds)."""
    from outpost.conflicts.oracle import Oracle
    from outpost.conflicts.orchestrator import Runner

    started = time.monotonic()
    prefix = f"s{scenario.seed % 10**8}{os.urandom(3).hex()}"
    runner = Runner(backend, scenario, folder, prefix, broken=broken)
    try:
        await runner.start()
        await runner.execute()
        await runner.heal()
        collected = await runner.collect()
    finally:
        await runner.stop()
    users_of = [scenario.user_of(i) for i in range(scenario.clients)]
    verdict = Oracle(runner.run, collected, users_of).check()
    if runner.run.heal_problem:
        verdict.divergences.append(runner.run.heal_problem)
    verdict.invariants.extend(runner.run.invariants)
    runner.run.seconds = time.monotonic() - started
    return runner.run, verdict, runner.run.seconds


async def _one(args: argparse.Namespace, backend: Any, seed: int, root: Path) -> dict[str, Any]:
    from outpost.conflicts.shrink import shrink

    scenario = generate(
        seed,
        args.clients,
        args.users,
        args.ops,
        args.faults,
        args.adversary,
        args.cluster,
        _cluster_faults(args),
    )
    execution, verdict, seconds = await _attempt(
        backend, scenario, root / f"seed{seed}", args.broken
    )
    result: dict[str, Any] = {
        "seed": seed,
        "ok": verdict.ok,
        "seconds": round(seconds, 1),
        "steps": len(scenario.steps),
        "actions": len(execution.returned),
        "actions_planned": sum(1 for s in scenario.steps if s.kind in ("act", "kill_act")),
        "skipped": dict(execution.skipped),
        "conflicts": dict(verdict.conflicts),
        "faults": dict(verdict.faults),
        "divergences": len(verdict.divergences),
        "losses": len(verdict.losses),
        "applied_twice": len(verdict.applied_twice),
        "invariant_breaks": len(verdict.invariants),
        "compensated": verdict.compensated,
        "rejected": dict(verdict.rejected),
        "hostile": dict(verdict.hostile),
        "hostile_causes": verdict.hostile_causes,
        "recurrences": verdict.recurrences,
        "reminders": verdict.reminders,
        "reminders_expected": verdict.reminders_expected,
        "reminders_fired_once": verdict.reminders_fired_once,
        "problems": verdict.problems(),
        "notes": execution.notes[:20],
        "command": _command(args, seed),
    }
    _say(
        f"seed {seed}: {'ok' if verdict.ok else 'FAILED'} in {seconds:.1f}s, "
        f"{result['actions']} actions, conflicts {result['conflicts']}, faults {result['faults']}, "
        f"hostile {sum(result['hostile'].values())}"
    )
    if not verdict.ok and args.shrink_seconds > 0:
        culprit_steps = [r.step for r in execution.returned if set(r.ids) & verdict.culprits]
        tries = iter(range(1, 10**6))

        async def fails(candidate: Scenario) -> bool:
            n = next(tries)
            _say(f"shrinking seed {seed}: try {n}, {len(candidate.steps)} steps")
            folder = root / f"seed{seed}-shrink{n}"
            _, v, _ = await _attempt(backend, candidate, folder, args.broken)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
            return not v.ok

        steps, runs = await shrink(
            scenario,
            fails,
            last_culprit_step=max(culprit_steps) if culprit_steps else None,
            budget_s=args.shrink_seconds,
        )
        body = [s for s in steps if not s.setup]
        result["shrunk"] = {
            "runs": runs,
            "fails": True,
            "setup_steps": len(steps) - len(body),
            "steps": [s.describe() for s in body],
        }
    return result


async def run_async(args: argparse.Namespace) -> dict[str, Any]:
    from outpost.conflicts.cluster import ClusterBackend
    from outpost.conflicts.orchestrator import BACKEND_ENV, RAISED_LIMITS, Backend
    from outpost.conflicts.report import failure_text, summary, totals

    seed = args.seed if args.seed is not None else random.randrange(10**6)
    root = Path(tempfile.mkdtemp(prefix="outpost-conflicts-"))
    started = time.monotonic()
    backend: Backend | ClusterBackend
    if args.cluster:
        # Standbys wait for a lease holder's kill; without that fault they only cost a start.
        standbys = 1 if "consumer_kill" in _cluster_faults(args) or not args.faults else 0
        backend = ClusterBackend(root, BACKEND_ENV, bffs=args.bffs, standbys=standbys)
    else:
        backend = Backend(root / "server", args.backend_url, args.broken)
    runs: list[dict[str, Any]] = []
    try:
        where = "the backend" if backend.own else "on " + args.backend_url
        if args.cluster:
            where = f"a cluster ({args.bffs} BFFs, 3 NATS nodes, PostgreSQL, consumers apart)"
        _say(f"starting {where} in {root}")
        if backend.own:
            _say("limits raised: " + " ".join(f"{k}={v}" for k, v in RAISED_LIMITS.items()))
        await backend.start()
        for k in range(args.scenarios):
            result = await _one(args, backend, seed + k, root)
            runs.append(result)
            if not result["ok"]:
                print(failure_text(result), file=sys.stderr, flush=True)
            if not args.keep and result["ok"]:
                shutil.rmtree(root / f"seed{seed + k}", ignore_errors=True)
    finally:
        await backend.stop()
        if args.keep:
            _say(f"stores and logs kept in {root}")
        else:
            if isinstance(backend, ClusterBackend):
                backend.remove_outside_data()
            shutil.rmtree(root, ignore_errors=True)
    adversary = (args.faults if args.adversary is None else args.adversary) and args.users >= 2
    report = totals(
        runs,
        faults=args.faults,
        adversary=adversary,
        wall_s=time.monotonic() - started,
        cluster=args.cluster,
        cluster_faults=_cluster_faults(args),
    )
    report["command"] = _command(args, seed) + (
        f" --scenarios {args.scenarios}" if args.scenarios > 1 else ""
    )
    report["kept"] = str(root) if args.keep else None
    print(summary(report), flush=True)
    return report


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"outpost conflicts: {problem}", file=sys.stderr)
        return 2
    report = asyncio.run(run_async(args))
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outpost conflicts", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
