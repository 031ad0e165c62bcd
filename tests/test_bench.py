"""``outpost bench --quick`` runs every scenario on real parts and writes the documented
JSON. It asserts nothing about speed: the machine is shared and noisy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outpost.bench import SCENARIOS, main

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
