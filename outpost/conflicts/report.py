"""The summary line and the JSON of a conflict-tool run."""

from __future__ import annotations

from collections import Counter
from typing import Any

from outpost.conflicts.adversary import HOSTILE_KINDS
from outpost.conflicts.oracle import CONFLICT_KINDS
from outpost.conflicts.scenario import CLUSTER_STEP_KINDS, fault_kinds


def totals(
    runs: list[dict[str, Any]],
    *,
    faults: bool,
    adversary: bool,
    wall_s: float,
    cluster: bool = False,
    cluster_faults: tuple[str, ...] = CLUSTER_STEP_KINDS,
) -> dict[str, Any]:
    kinds = fault_kinds(cluster, cluster_faults)
    conflicts: Counter[str] = Counter({k: 0 for k in CONFLICT_KINDS})
    fault_counts: Counter[str] = Counter({k: 0 for k in kinds} if faults else {})
    hostile: Counter[str] = Counter({k: 0 for k in HOSTILE_KINDS} if adversary else {})
    for run in runs:
        conflicts.update(run["conflicts"])
        fault_counts.update(run["faults"])
        hostile.update(run["hostile"])
    return {
        "ok": all(r["ok"] for r in runs),
        "seeds": [r["seed"] for r in runs],
        "scenarios": len(runs),
        "actions": sum(r["actions"] for r in runs),
        "actions_planned": sum(r["actions_planned"] for r in runs),
        "conflicts": dict(conflicts),
        "faults": dict(fault_counts),
        "faults_not_fired": [k for k in kinds if faults and not fault_counts[k]],
        "cluster": cluster,
        "hostile": dict(hostile),
        "hostile_not_fired": [k for k in HOSTILE_KINDS if adversary and not hostile[k]],
        "hostile_causes": sum(r["hostile_causes"] for r in runs),
        "conflicts_not_seen": [k for k in CONFLICT_KINDS if not conflicts[k]],
        "divergences": sum(r["divergences"] for r in runs),
        "losses": sum(r["losses"] for r in runs),
        "applied_twice": sum(r["applied_twice"] for r in runs),
        "invariant_breaks": sum(r["invariant_breaks"] for r in runs),
        "compensated": sum(r["compensated"] for r in runs),
        "recurrences": sum(r.get("recurrences", 0) for r in runs),
        "reminders": sum(r.get("reminders", 0) for r in runs),
        "reminders_expected": sum(r.get("reminders_expected", 0) for r in runs),
        "reminders_fired_once": sum(r.get("reminders_fired_once", 0) for r in runs),
        "rejected": sum(sum(r["rejected"].values()) for r in runs),
        "failed_seeds": [r["seed"] for r in runs if not r["ok"]],
        "wall_seconds": round(wall_s, 1),
        "runs": runs,
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def summary(report: dict[str, Any]) -> str:
    verdict = "OK" if report["ok"] else f"FAILED (seeds {report['failed_seeds']})"
    return (
        f"outpost conflicts: {report['scenarios']} scenarios, {report['actions']} actions "
        f"returned of {report['actions_planned']} planned; "
        f"conflicts: {_counts(report['conflicts'])}; faults: {_counts(report['faults'])}; "
        f"hostile events answered as SPEC says: {_counts(report['hostile'])} "
        f"(WIP causes among them {report['hostile_causes']}); "
        f"divergences {report['divergences']}, losses {report['losses']}, applied twice "
        f"{report['applied_twice']}, invariant breaks {report['invariant_breaks']}, "
        f"compensations {report['compensated']}, recurring tasks spawned once "
        f"{report['recurrences']}, reminders once each {report['reminders']} (expected "
        f"{report['reminders_expected']}, fired once {report['reminders_fired_once']}): "
        f"{verdict} in "
        f"{report['wall_seconds']} s"
    )


def failure_text(run: dict[str, Any]) -> str:
    lines = [f"seed {run['seed']} FAILED; reproduce with: {run['command']}"]
    lines += [f"  {p}" for p in run["problems"][:20]]
    if len(run["problems"]) > 20:
        lines.append(f"  ... {len(run['problems']) - 20} more")
    shrunk = run.get("shrunk")
    if shrunk:
        lines.append(
            f"  shrunk to {len(shrunk['steps'])} steps after setup, in {shrunk['runs']} runs "
            f"({'still failing' if shrunk['fails'] else 'the full run only'}):"
        )
        lines += [f"    {s}" for s in shrunk["steps"]]
    return "\n".join(lines)
