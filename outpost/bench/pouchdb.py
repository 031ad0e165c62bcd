"""``outpost bench --peer pouchdb``: the peer to beat, measured in the same run (issue 15).

PouchDB devices (LevelDB files) replicating through an express-pouchdb server in a process
of its own, driven by ``peer/peer.js`` through the same three workloads as Outpost's
``local_action``, ``ingest`` and ``propagation`` scenarios, at the plan's sizes and rate.
The packages come from the committed ``peer/package-lock.json`` (pouchdb-node 9, express 4,
express-pouchdb 4), installed once with ``npm ci`` into a cache folder named after the
lockfile's hash and reused while the lockfile is unchanged.

Where the workloads differ (stated in the report's JSON as ``peer.differences``):
- local writes: LevelDB writes without fsync, Outpost fsyncs every action;
  an edit is ``get`` + ``put`` of the document, an add one ``put``;
- device to device: the peer's A writes N new documents (PouchDB replicates only the
  latest revision of a document, so N edits of 50 tasks would move 50 documents);
  Outpost's A makes N edits of 50 tasks, every one of which travels as an event;
- live propagation: the same edits of 50 tasks at the same rate, B's changes feed
  standing for B's view.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from outpost.bench import local_action, propagation
from outpost.bench.budget import Budget
from outpost.bench.harness import BenchError, percentile, progress
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, PeerComparison, ScenarioResult
from outpost.bench.shared import TASKS

NAME = "pouchdb"
PEER_DIR = Path(__file__).parent / "peer"
LOCKFILE = PEER_DIR / "package-lock.json"
SCRIPT = PEER_DIR / "peer.js"
PACKAGES = {"pouchdb-node": 9, "express": 4, "express-pouchdb": 4}
"""The packages the lockfile pins, with their major versions."""
WORKLOADS = ("local_action", "ingest", "propagation")
"""Outpost's scenarios the peer runs too."""
ROUNDS = 3
INSTALL_TIMEOUT_S = 600
DIFFERENCES = [
    "local writes: the peer's LevelDB does not fsync; Outpost fsyncs every action",
    "local edit: the peer's is get + put of the document; Outpost's is set_task",
    "device to device: the peer's A writes N new documents (PouchDB replicates only the "
    "latest revision, so N edits of 50 tasks would move 50 documents); Outpost's A makes "
    "N edits of 50 tasks, each pushed and pulled as an event",
    "both: the peer's server runs in a node process of its own, both devices in another",
]
LABEL = "PouchDB 9 (LevelDB) via express-pouchdb 4"


class PeerMissing(BenchError):
    """The peer cannot run here: node or npm is missing, or its install failed."""


@dataclass(frozen=True)
class PeerFigure:
    """Which figure of the peer's output stands beside which figure of Outpost's."""

    scenario: str
    figure: str
    lower_is_better: bool
    target_ratio: tuple[Literal["<", "<="], float] | None = None
    """Issue 15's bound on the median ratio (< 1.0 is Outpost ahead)."""


INGEST_FIGURE = "events/s, push to another device's pull"
PAIRS = (
    PeerFigure("local_action", "edit task p50", True),
    PeerFigure("local_action", "edit task p99", True),
    PeerFigure("local_action", "add task p50", True),
    PeerFigure("local_action", "add task p99", True),
    # at least twice the peer's documents per second: peer/Outpost at most 0.5
    PeerFigure("ingest", INGEST_FIGURE, False, ("<=", 0.5)),
    # both percentiles below the peer's
    PeerFigure("propagation", "A's action to B's view, p50", True, ("<", 1.0)),
    PeerFigure("propagation", "A's action to B's view, p99", True, ("<", 1.0)),
)


def lock_hash() -> str:
    return hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "outpost" / f"peer-{lock_hash()}"


def find_tools(path: str | None = None) -> tuple[str, str]:
    """node and npm on ``path`` (default: PATH), or PeerMissing saying which is missing."""
    node, npm = shutil.which("node", path=path), shutil.which("npm", path=path)
    missing = [name for name, found in (("node", node), ("npm", npm)) if found is None]
    if missing or node is None or npm is None:
        raise PeerMissing(
            f"{' and '.join(missing)} not found on PATH: the PouchDB peer cannot run, "
            "its figures are missing (and the targets against it are not met)"
        )
    return node, npm


def install(npm: str, *, env: Mapping[str, str] | None = None) -> Path:
    """The cache folder with the lockfile's packages installed (``npm ci`` on first use)."""
    folder = cache_dir()
    ready = folder / ".ready"
    if ready.exists():
        progress(f"peer: reusing the packages in {folder}")
        return folder
    progress(f"peer: installing pouchdb-node, express, express-pouchdb into {folder} (npm ci)")
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PEER_DIR / name, staging / name)
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PeerMissing(f"npm ci did not finish in {INSTALL_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        said = (done.stdout + done.stderr).strip().splitlines()
        errors = [line for line in said if line.startswith("npm error") and "log" not in line]
        reason = " | ".join((errors or said)[:4])
        raise PeerMissing(
            f"npm ci of the peer's packages failed (exit {done.returncode}; no network?): {reason}"
        )
    (staging / ".ready").write_text(lock_hash() + "\n")
    if folder.exists():  # another bench installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(folder)
    return folder


def prepare() -> tuple[str, Path]:
    """node and the installed packages' folder, or PeerMissing."""
    node, npm = find_tools()
    return node, install(npm)


def config(plan: Plan, folder: Path, workloads: list[str]) -> dict[str, Any]:
    """What peer.js runs: the plan's sizes and rate, the warm-ups of Outpost's scenarios."""
    return {
        "folder": str(folder),
        "workloads": workloads,
        "local_actions": plan.local_actions,
        "local_board_tasks": plan.local_board_tasks,
        "ingest_docs": plan.ingest_events,
        "tasks": TASKS,
        "propagation_actions": plan.propagation_actions,
        "propagation_rate": plan.propagation_rate,
        "warm_up_local": local_action.WARM_UP,
        "warm_up_propagation": propagation.WARM_UP,
    }


@dataclass
class PeerRun:
    figures: dict[tuple[str, str], float]
    """Keyed like Outpost's: (scenario, figure name)."""
    versions: dict[str, str]
    node: str


async def run(
    workspace: Path, plan: Plan, node: str, packages: Path, workloads: list[str]
) -> PeerRun:
    """One run of peer.js through ``workloads``, its files in a new folder of ``workspace``."""
    folder = workspace / f"peer-{os.urandom(4).hex()}"
    folder.mkdir(parents=True)
    env = {**os.environ, "NODE_PATH": str(packages / "node_modules")}
    child = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        msgspec.json.encode(config(plan, folder, workloads)).decode(),
        stdout=asyncio.subprocess.PIPE,
        stderr=sys.stderr,
        env=env,
    )
    try:
        out, _ = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        shutil.rmtree(folder, ignore_errors=True)
    if child.returncode != 0:
        raise BenchError(f"the peer script failed (exit {child.returncode}); see its lines above")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise BenchError("the peer script printed no result")
    try:
        output: dict[str, Any] = msgspec.json.decode(lines[-1])
    except msgspec.DecodeError as exc:
        raise BenchError(f"the peer's result is not JSON ({exc}): {lines[-1][:200]}") from exc
    return PeerRun(figures(output), dict(output["versions"]), str(output["node"]))


def figures(output: dict[str, Any]) -> dict[tuple[str, str], float]:
    """The peer's figures from peer.js's output, by the same percentile as Outpost's."""
    found: dict[tuple[str, str], float] = {}
    local = output.get("local_action")
    if local is not None:
        for label, key in (("edit task", "edit_ms"), ("add task", "add_ms")):
            for pct in (50, 99):
                found[("local_action", f"{label} p{pct}")] = percentile(local[key], pct)
    ingest = output.get("ingest")
    if ingest is not None:
        found[("ingest", INGEST_FIGURE)] = ingest["docs"] / ingest["seconds"]
    prop = output.get("propagation")
    if prop is not None:
        made = {int(k): v / 1000 for k, v in prop["made"].items()}
        seen = {int(k): v / 1000 for k, v in prop["seen"].items()}
        latencies = propagation._latencies(made, seen, int(prop["cycle"]))[propagation.WARM_UP :]
        for pct in (50, 99):
            found[("propagation", f"A's action to B's view, p{pct}")] = percentile(latencies, pct)
    return found


def combine(rounds: list[ScenarioResult]) -> ScenarioResult:
    """One scenario's alternating rounds as one result: each figure's value and baseline
    the median over the rounds (the first failed round, if any, instead)."""
    failed = [r for r in rounds if r.error is not None]
    if failed:
        return failed[0]
    first = rounds[0]
    merged = ScenarioResult(
        first.name,
        first.title,
        params={**first.params, "rounds": len(rounds)},
        seconds=sum(r.seconds for r in rounds),
    )
    for result in rounds:
        if result.budget is not None:
            if merged.budget is None:
                merged.budget = Budget()
            merged.budget.extend(result.budget)
    for i, figure in enumerate(first.figures):
        same = [r.figures[i] for r in rounds]
        baselines = [f.baseline for f in same if f.baseline is not None]
        merged.add(
            Figure(
                figure.name,
                figure.unit,
                statistics.median(f.value for f in same),
                baseline=statistics.median(baselines) if baselines else None,
                baseline_label=figure.baseline_label,
                target=figure.target,
            )
        )
    return merged


def attach(
    results: list[ScenarioResult],
    outpost_rounds: dict[str, list[ScenarioResult]],
    peer_rounds: list[PeerRun],
    missing: str | None,
) -> None:
    """Put the peer's figures beside Outpost's (in place): per round, Outpost's figure of
    that round with the peer's run that followed it."""
    by_name = {r.name: r for r in results}
    for pair in PAIRS:
        result = by_name.get(pair.scenario)
        if result is None or result.error is not None:
            continue
        figure = next((f for f in result.figures if f.name == pair.figure), None)
        if figure is None:
            continue
        comparison = PeerComparison(
            LABEL, pair.lower_is_better, target_ratio=pair.target_ratio, missing=missing
        )
        for outpost_round, peer_run in zip(
            outpost_rounds.get(pair.scenario, []), peer_rounds, strict=False
        ):
            mine = next(f for f in outpost_round.figures if f.name == pair.figure)
            theirs = peer_run.figures.get((pair.scenario, pair.figure))
            if theirs is not None:
                comparison.rounds.append((mine.value, theirs))
        if missing is None and not comparison.rounds:
            comparison.missing = "the peer produced no such figure"
        figure.peer = comparison


def summary(peer_rounds: list[PeerRun], missing: str | None) -> dict[str, Any]:
    """The report's top-level ``peer`` object."""
    return {
        "name": NAME,
        "label": LABEL,
        "versions": peer_rounds[0].versions if peer_rounds else {},
        "node": peer_rounds[0].node if peer_rounds else None,
        "rounds": len(peer_rounds),
        "missing": missing,
        "differences": DIFFERENCES,
    }
