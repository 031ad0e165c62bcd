"""Results: the figures of each scenario beside their baselines, as a markdown table and JSON.

A figure is one number with its unit; where the run measured a baseline for it (the same
work done by a raw tool on the same machine, in the same run), the ratio figure/baseline
says how much the product costs over the raw tool, which stays meaningful on a shared,
noisy machine where absolute numbers drift. A target is the goal from the issue: noted,
never asserted.

The JSON (``SCHEMA`` 1)::

    {"schema": 1, "quick": bool, "started_at": iso, "seconds": float,
     "machine": {"cpu", "cores", "memory_mb", "python", "platform", "date"},
     "settings_differ": {OUTPOST_NAME: value},
     "scenarios": [{"name", "title", "params": {...}, "seconds", "error": str | null,
                    "budget": null | BUDGET,
                    "figures": [{"name", "unit", "value", "baseline", "baseline_label",
                                 "ratio", "target": {"op", "value"} | null,
                                 "met": bool | null, "peer": PEER | null}]}],
     "peer": null | {"name": "pouchdb", "label", "versions": {package: version}, "node",
                     "rounds": int, "missing": str | null, "differences": [str]}}

With ``--peer pouchdb`` the figures Outpost and the peer both measure carry ``PEER``::

    {"label", "value": float | null, "unit", "ratio": float | null,
     "ratio_is": "Outpost/peer" | "peer/Outpost", "target": {"op", "value"} | null,
     "met": bool | null, "missing": str | null,
     "rounds": [{"outpost": float, "peer": float, "ratio": float | null}]}

Propagation carries ``BUDGET``, where one action's time goes (``budget.py``)::

    {"actions", "traced", "total": {"p50", "p99", "mean"}, "unattributed_share",
     "hops": [{"name", "what", "p50", "p99", "mean", "share"}],
     "cpu_ms_per_action": {"backend", "consumers", "nats-server", "devices": float}}

(``cpu_ms_per_action``: user + system CPU time of each process during the actions, per
action, a median over the rounds; empty where ``/proc`` does not exist. ``backend`` is the
BFF with the projector; ``consumers`` its child process of the other consumers, since
2026-11-30: before, ``backend`` held both.)

``value`` and ``ratio`` are medians over the rounds (Outpost's own ``value`` too, then); the
ratio is Outpost/peer for latencies and peer/Outpost for throughput, so below 1.0 Outpost
is ahead either way. ``target`` bounds the ratio (issue 15); a missing peer figure
(``value`` null, ``missing`` saying why) leaves that target not met.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from outpost.bench import budget as hop_budget
from outpost.bench.budget import Budget

SCHEMA = 1


@dataclass(frozen=True)
class Target:
    op: Literal["<=", ">="]
    value: float

    def met_by(self, value: float) -> bool:
        return value <= self.value if self.op == "<=" else value >= self.value

    def __str__(self) -> str:
        return f"{self.op} {_number(self.value)}"


@dataclass
class PeerComparison:
    """The peer's figure beside one of Outpost's: medians over the alternating rounds."""

    label: str
    lower_is_better: bool
    rounds: list[tuple[float, float]] = field(default_factory=list)
    """(Outpost's figure, the peer's figure) of each round."""
    target_ratio: tuple[Literal["<", "<="], float] | None = None
    missing: str | None = None

    @property
    def ratio_is(self) -> str:
        return "Outpost/peer" if self.lower_is_better else "peer/Outpost"

    def round_ratio(self, outpost: float, peer: float) -> float | None:
        if outpost <= 0 or peer <= 0:
            return None
        return outpost / peer if self.lower_is_better else peer / outpost

    @property
    def value(self) -> float | None:
        if self.missing is not None or not self.rounds:
            return None
        return statistics.median(peer for _, peer in self.rounds)

    @property
    def ratio(self) -> float | None:
        if self.missing is not None:
            return None
        ratios = [r for o, p in self.rounds if (r := self.round_ratio(o, p)) is not None]
        return statistics.median(ratios) if ratios else None

    @property
    def met(self) -> bool | None:
        if self.target_ratio is None:
            return None
        ratio = self.ratio
        if ratio is None:
            return False  # a missing peer figure: the target is not met
        op, bound = self.target_ratio
        return ratio < bound if op == "<" else ratio <= bound

    def to_json(self, unit: str) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "unit": unit,
            "ratio": self.ratio,
            "ratio_is": self.ratio_is,
            "target": None
            if self.target_ratio is None
            else {"op": self.target_ratio[0], "value": self.target_ratio[1]},
            "met": self.met,
            "missing": self.missing,
            "rounds": [
                {"outpost": o, "peer": p, "ratio": self.round_ratio(o, p)} for o, p in self.rounds
            ],
        }


@dataclass
class Figure:
    name: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_label: str | None = None
    target: Target | None = None
    peer: PeerComparison | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "target": None
            if self.target is None
            else {"op": self.target.op, "value": self.target.value},
            "met": self.met,
            "peer": None if self.peer is None else self.peer.to_json(self.unit),
        }


@dataclass
class ScenarioResult:
    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    budget: Budget | None = None
    """Where the time of one action goes, hop by hop (propagation)."""

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "params": self.params,
            "seconds": self.seconds,
            "error": self.error,
            "figures": [f.to_json() for f in self.figures],
            "budget": None if self.budget is None else self.budget.to_json(),
        }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def document(
    results: list[ScenarioResult],
    *,
    quick: bool,
    started_at: str,
    seconds: float,
    peer: dict[str, Any] | None = None,
    settings_differ: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "quick": quick,
        "started_at": started_at,
        "seconds": seconds,
        "machine": machine(),
        "settings_differ": settings_differ or {},
        "scenarios": [r.to_json() for r in results],
        "peer": peer,
    }


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n")


def load_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.json.decode(path.read_bytes())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a bench result of schema {SCHEMA}")
    return doc


def markdown(doc: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The results table, with the machine on top; with ``previous``, a column comparing
    each figure with the same figure of that earlier run."""
    info = doc["machine"]
    mode = "quick" if doc["quick"] else "full"
    lines = [
        f"Outpost bench ({mode}), {info['date']}: {info['cpu']}, {info['cores']} cores, "
        f"{info['memory_mb']} MB, Python {info['python']}, {info['platform']}",
        "",
    ]
    header = "| scenario | figure | value | baseline | ratio | target | met |"
    rule = "| --- | --- | ---: | --- | ---: | --- | --- |"
    peer = doc.get("peer")
    if peer is not None:
        header += " peer | vs peer (< 1: Outpost ahead) |"
        rule += " ---: | --- |"
    if previous is not None:
        header += " previous run | now/previous |"
        rule += " ---: | ---: |"
    lines += [header, rule]
    before = _figures_by_key(previous) if previous is not None else {}
    for scenario in doc["scenarios"]:
        if scenario["error"]:
            row = f"| {scenario['title']} | **failed** | {scenario['error']} | | | | |"
            row += " | |" if peer is not None else ""
            lines.append(row + (" | |" if previous is not None else ""))
        for figure in scenario["figures"]:
            lines.append(_row(scenario, figure, before, previous is not None, peer is not None))
    lines.append("")
    lines.append("ratio = value / baseline, both measured in this run on this machine.")
    differ = doc.get("settings_differ") or {}
    if differ:
        lines.append(
            "settings that differ from `make run`'s defaults (a target they bear on is void): "
            + "; ".join(f"{name}={value}" for name, value in differ.items())
        )
    if peer is not None:
        lines += _peer_notes(peer)
    for scenario in doc["scenarios"]:
        if scenario.get("budget"):
            lines += hop_budget.markdown(scenario["title"], scenario["budget"])
    return "\n".join(lines)


def _peer_notes(peer: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in peer["versions"].items())
    rounds = f"{peer['rounds']} rounds" if peer["rounds"] else "not run"
    lines = [
        f"peer = {peer['label']} ({versions or 'not installed'}), {rounds}; "
        "the rounds alternate with Outpost's own runs of those scenarios; "
        "value and peer are medians over the rounds, vs peer the median of each round's "
        "Outpost/peer (latency) or peer/Outpost (throughput): below 1.0 Outpost is ahead.",
    ]
    if peer["missing"]:
        lines.append(f"**peer figures missing**: {peer['missing']}")
    lines += [f"- differs: {text}" for text in peer["differences"]]
    return lines


def _peer_cells(figure: dict[str, Any]) -> list[str]:
    peer = figure.get("peer")
    if peer is None:
        return ["", ""]
    value = "missing"
    if peer["value"] is not None:
        value = f"{_number(peer['value'])} {peer['unit']}"
    ratio = "" if peer["ratio"] is None else f"{peer['ratio']:.2f} ({peer['ratio_is']})"
    target = peer["target"]
    if target is not None:
        met = {True: "yes", False: "**no**", None: ""}[peer["met"]]
        ratio = f"{ratio}; target {target['op']} {_number(target['value'])}: {met}".lstrip("; ")
    return [value, ratio]


def _row(
    scenario: dict[str, Any],
    figure: dict[str, Any],
    before: dict[tuple[str, str], dict[str, Any]],
    compare: bool,
    with_peer: bool = False,
) -> str:
    unit = figure["unit"]
    baseline = ""
    if figure["baseline"] is not None:
        baseline = f"{_number(figure['baseline'])} {unit} ({figure['baseline_label']})"
    ratio = "" if figure["ratio"] is None else f"{figure['ratio']:.2f}"
    target = figure["target"]
    target_text = "" if target is None else f"{target['op']} {_number(target['value'])} {unit}"
    met = {True: "yes", False: "**no**", None: ""}[figure["met"]]
    cells = [
        scenario["title"],
        figure["name"],
        f"{_number(figure['value'])} {unit}",
        baseline,
        ratio,
        target_text,
        met,
    ]
    if with_peer:
        cells += _peer_cells(figure)
    if compare:
        old = before.get((scenario["name"], figure["name"]))
        if old is None or not old["value"]:
            cells += ["", ""]
        else:
            cells += [f"{_number(old['value'])} {unit}", f"{figure['value'] / old['value']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def _figures_by_key(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (scenario["name"], figure["name"]): figure
        for scenario in doc.get("scenarios", [])
        for figure in scenario.get("figures", [])
    }


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
