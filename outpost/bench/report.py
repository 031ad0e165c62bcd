"""Results: the figures of each scenario beside their baselines, as a markdown table and JSON.

A figure is one number with its unit; where the run measured a baseline for it (the same
work done by a raw tool on the same machine, in the same run), the ratio figure/baseline
says how much the product costs over the raw tool, which stays meaningful on a shared,
noisy machine where absolute numbers drift. A target is the goal from the issue: noted,
never asserted.

The JSON (``SCHEMA`` 1)::

    {"schema": 1, "quick": bool, "started_at": iso, "seconds": float,
     "machine": {"cpu", "cores", "memory_mb", "python", "platform", "date"},
     "scenarios": [{"name", "title", "params": {...}, "seconds", "error": str | null,
                    "figures": [{"name", "unit", "value", "baseline", "baseline_label",
                                 "ratio", "target": {"op", "value"} | null,
                                 "met": bool | null}]}]}
"""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

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
class Figure:
    name: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_label: str | None = None
    target: Target | None = None

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
        }


@dataclass
class ScenarioResult:
    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

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
    results: list[ScenarioResult], *, quick: bool, started_at: str, seconds: float
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "quick": quick,
        "started_at": started_at,
        "seconds": seconds,
        "machine": machine(),
        "scenarios": [r.to_json() for r in results],
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
    if previous is not None:
        header += " previous run | now/previous |"
        rule += " ---: | ---: |"
    lines += [header, rule]
    before = _figures_by_key(previous) if previous is not None else {}
    for scenario in doc["scenarios"]:
        if scenario["error"]:
            row = f"| {scenario['title']} | **failed** | {scenario['error']} | | | | |"
            lines.append(row + (" | |" if previous is not None else ""))
        for figure in scenario["figures"]:
            lines.append(_row(scenario, figure, before, previous is not None))
    lines.append("")
    lines.append("ratio = value / baseline, both measured in this run on this machine.")
    return "\n".join(lines)


def _row(
    scenario: dict[str, Any],
    figure: dict[str, Any],
    before: dict[tuple[str, str], dict[str, Any]],
    compare: bool,
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
