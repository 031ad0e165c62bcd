"""``outpost bench --quick`` runs every scenario on real parts and writes the documented
JSON. It asserts nothing about speed: the machine is shared and noisy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from outpost.bench import SCENARIOS, main
from outpost.bench.budget import HOPS

FIGURE_KEYS = {
    "name",
    "unit",
    "value",
    "baseline",
    "baseline_label",
    "ratio",
    "target",
    "met",
    "peer",
}


@pytest.mark.integration
def test_quick_bench_produces_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.json"

    assert main(["--quick", "--json", str(out)]) == 0

    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and doc["quick"] is True
    assert {"cpu", "cores", "memory_mb", "python", "platform", "date"} <= set(doc["machine"])
    assert [s["name"] for s in doc["scenarios"]] == list(SCENARIOS)
    assert doc["peer"] is None  # CI's --quick does not run the PouchDB peer
    # Every setting that differs from make run's defaults is said, and no more: the live
    # cap is not among them (fan-out spreads its connections over users), nor the request
    # and sign-up limits (the users sign up from loopback addresses of their own).
    assert set(doc["settings_differ"]) == {"OUTPOST_PASSWORD_TIME_COST", "OUTPOST_HOP_TRACE"}
    for scenario in doc["scenarios"]:
        assert scenario["error"] is None, scenario
        assert scenario["figures"], scenario["name"]
        for figure in scenario["figures"]:
            assert set(figure) == FIGURE_KEYS and figure["peer"] is None
            assert figure["value"] > 0, (scenario["name"], figure)
            assert figure["baseline"] > 0, (scenario["name"], figure)
            assert figure["ratio"] == pytest.approx(figure["value"] / figure["baseline"])
            if figure["target"] is not None:
                assert figure["target"]["op"] in ("<=", ">=")
                assert isinstance(figure["met"], bool)
    table = capsys.readouterr().out
    assert "| scenario | figure | value | baseline | ratio | target | met |" in table
    assert doc["machine"]["cpu"] in table
    assert "settings that differ from `make run`'s defaults" in table
    _check_budget(doc, table)


def _check_budget(doc: dict[str, Any], table: str) -> None:
    """Propagation says where the time goes: every hop named, every action traced, the
    hops' shares adding up to the whole with next to nothing unattributed."""
    [propagation] = [s for s in doc["scenarios"] if s["name"] == "propagation"]
    budget = propagation["budget"]
    assert [hop["name"] for hop in budget["hops"]] == [name for name, _ in HOPS]
    assert budget["traced"] == budget["actions"] > 0
    assert sum(hop["share"] for hop in budget["hops"]) == pytest.approx(1.0)
    assert budget["unattributed_share"] < 0.05
    assert all(hop["p50"] >= 0 and hop["p99"] >= hop["p50"] for hop in budget["hops"])
    assert "latency budget" in table and "| **total** | A's action to B's view |" in table
    # What each process on the path spends per action, the figure load leaves standing.
    cpu = budget["cpu_ms_per_action"]
    assert set(cpu) == {"backend", "consumers", "nats-server", "devices"}, cpu
    assert cpu["backend"] > 0 and cpu["consumers"] > 0, cpu
    assert "CPU time per action" in table
    assert all(s["budget"] is None for s in doc["scenarios"] if s["name"] != "propagation")
    # Ingest says what each process spends per event, the consumers until they caught up.
    [ingest] = [s for s in doc["scenarios"] if s["name"] == "ingest"]
    per_event = ingest["params"]["cpu_us_per_event"]
    assert set(per_event) == {"backend", "consumers", "nats-server", "devices"}, per_event
    assert all(us > 0 for us in per_event.values()), per_event
