"""``outpost bench --peer pouchdb`` (issue 15): the pinned packages, the peer absent, the
peer's figures beside Outpost's in the table and the JSON, and one tiny real run of the
peer script. Nothing here asserts a speed: the figures of the renderer tests are made up."""

from __future__ import annotations

import array
import asyncio
import fcntl
import json
import os
import subprocess
import sys
import termios
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import pytest

from outpost.bench import main, pouchdb, report
from outpost.bench.plan import QUICK
from outpost.bench.report import Figure, ScenarioResult, Target

LOCK = Path(pouchdb.__file__).parent / "peer" / "package-lock.json"


def test_the_lockfile_pins_exactly_the_three_packages_at_their_majors() -> None:
    lock = json.loads(LOCK.read_text())
    manifest = json.loads((LOCK.parent / "package.json").read_text())

    assert lock["lockfileVersion"] >= 2
    assert set(lock["packages"][""]["dependencies"]) == set(pouchdb.PACKAGES)
    assert set(manifest["dependencies"]) == set(pouchdb.PACKAGES)
    for name, major in pouchdb.PACKAGES.items():
        pinned = lock["packages"][f"node_modules/{name}"]
        assert int(pinned["version"].split(".")[0]) == major, (name, pinned["version"])
        assert pinned["integrity"].startswith("sha512-"), name


def test_without_node_on_path_it_says_which_tool_is_missing(tmp_path: Path) -> None:
    with pytest.raises(pouchdb.PeerMissing, match="node and npm not found on PATH"):
        pouchdb.find_tools(path=str(tmp_path))


def _result(name: str, title: str, figures: list[tuple[str, str, float]]) -> ScenarioResult:
    result = ScenarioResult(name, title)
    for figure, unit, value in figures:
        result.add(Figure(figure, unit, value, baseline=value / 2, baseline_label="raw"))
    return result


PROP_P50 = "A's action to B's view, p50"


def _document(results: list[ScenarioResult], peer: dict[str, Any] | None) -> dict[str, Any]:
    """``report.document``'s shape, on a made-up machine (``machine()`` starts uname)."""
    info = {"cpu": "CPU", "cores": 2, "memory_mb": 1, "python": "3", "platform": "p", "date": "d"}
    return {
        "schema": report.SCHEMA,
        "quick": False,
        "started_at": "t",
        "seconds": 1.0,
        "machine": info,
        "scenarios": [r.to_json() for r in results],
        "peer": peer,
    }


def _rounds() -> tuple[dict[str, list[ScenarioResult]], list[pouchdb.PeerRun]]:
    """Three made-up rounds: Outpost's propagation p50 and ingest rate, and the peer's."""
    outpost = {
        "propagation": [
            _result("propagation", "3. propagation", [(PROP_P50, "ms", v)])
            for v in (30.0, 10.0, 20.0)
        ],
        "ingest": [
            _result("ingest", "2. end-to-end ingest", [(pouchdb.INGEST_FIGURE, "ev/s", v)])
            for v in (1000.0, 3000.0, 2000.0)
        ],
    }
    peers = [
        pouchdb.PeerRun(
            {("propagation", PROP_P50): p, ("ingest", pouchdb.INGEST_FIGURE): i},
            {"pouchdb-node": "9.0.0", "express": "4.22.3", "express-pouchdb": "4.2.0"},
            "v20.0.0",
        )
        for p, i in ((15.0, 1500.0), (20.0, 1000.0), (10.0, 1600.0))
    ]
    return outpost, peers


def test_the_peer_stands_beside_outpost_in_the_json_and_the_table() -> None:
    outpost, peers = _rounds()
    results = [pouchdb.combine(outpost["ingest"]), pouchdb.combine(outpost["propagation"])]
    pouchdb.attach(results, outpost, peers, None)

    doc = _document(results, pouchdb.summary(peers, None))

    assert doc["peer"]["versions"]["pouchdb-node"] == "9.0.0"
    assert doc["peer"]["rounds"] == 3 and doc["peer"]["missing"] is None
    ingest, prop = (s["figures"][0] for s in doc["scenarios"])
    # Outpost's own figure is the median of its rounds; the baseline too
    assert prop["value"] == 20.0 and prop["baseline"] == 10.0
    # latency: Outpost/peer per round (2.0, 0.5, 2.0), median 2.0: the peer ahead
    assert prop["peer"]["value"] == 15.0
    assert prop["peer"]["ratio_is"] == "Outpost/peer"
    assert [r["ratio"] for r in prop["peer"]["rounds"]] == [2.0, 0.5, 2.0]
    assert prop["peer"]["ratio"] == 2.0
    assert prop["peer"]["met"] is False
    # throughput: peer/Outpost per round (1.5, 1/3, 0.8), median 0.8: at least 2x not met
    assert ingest["peer"]["ratio_is"] == "peer/Outpost"
    assert ingest["peer"]["ratio"] == pytest.approx(0.8)
    assert ingest["peer"]["target"] == {"op": "<=", "value": 0.5}
    assert ingest["peer"]["met"] is False
    table = report.markdown(doc)
    assert "| peer | vs peer (< 1: Outpost ahead) |" in table
    assert "| 15.0 ms | 2.00 (Outpost/peer); target < 1.00: **no** |" in table
    assert "| 1,500 ev/s | 0.80 (peer/Outpost); target <= 0.500: **no** |" in table
    assert "pouchdb-node 9.0.0" in table


def test_outpost_ahead_meets_the_ratio_targets() -> None:
    outpost, peers = _rounds()
    fast = [pouchdb.PeerRun({k: v * 10 for k, v in p.figures.items()}, {}, "") for p in peers]
    for run in fast:  # the peer 10x slower on latency, 10x faster on throughput
        key = ("ingest", pouchdb.INGEST_FIGURE)
        run.figures[key] = run.figures[key] / 100
    results = [pouchdb.combine(outpost["propagation"]), pouchdb.combine(outpost["ingest"])]
    pouchdb.attach(results, outpost, fast, None)

    prop, ingest = (r.figures[0].peer for r in results)

    assert prop is not None and prop.met is True and prop.ratio == pytest.approx(0.2)
    assert ingest is not None and ingest.met is True and ingest.ratio == pytest.approx(0.08)


def test_a_missing_peer_leaves_its_targets_not_met_and_says_why() -> None:
    outpost, _ = _rounds()
    results = [pouchdb.combine(outpost["propagation"][:1])]
    pouchdb.attach(results, outpost, [], "node and npm not found on PATH")

    doc = _document(results, pouchdb.summary([], "node and npm not found on PATH"))

    figure = doc["scenarios"][0]["figures"][0]
    assert figure["peer"]["value"] is None and figure["peer"]["met"] is False
    assert figure["peer"]["missing"] == "node and npm not found on PATH"
    table = report.markdown(doc)
    assert "| missing | target < 1.00: **no** |" in table
    assert "**peer figures missing**: node and npm not found on PATH" in table


def test_without_peer_the_figures_say_peer_null() -> None:
    result = ScenarioResult("drain", "6. drain")
    result.add(Figure("seconds", "s", 3.0, target=Target("<=", 2.0)))

    doc = _document([result], None)

    assert doc["peer"] is None and doc["scenarios"][0]["figures"][0]["peer"] is None
    assert "vs peer" not in report.markdown(doc)


@pytest.mark.integration
def test_the_peer_absent_runs_the_rest_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # PATH with this interpreter's folder only: no node, no npm
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    out = tmp_path / "b.json"

    code = main(["--quick", "--peer", "pouchdb", "--only", "local_action", "--json", str(out)])

    assert code == 0
    captured = capsys.readouterr()
    assert "peer: node and npm not found on PATH" in captured.err
    doc = json.loads(out.read_text())
    assert doc["peer"]["missing"].startswith("node and npm not found on PATH")
    (scenario,) = doc["scenarios"]
    assert scenario["error"] is None and scenario["figures"]
    for figure in scenario["figures"]:
        assert figure["value"] > 0
        assert figure["peer"]["value"] is None and figure["peer"]["missing"]
    assert "**peer figures missing**: node and npm not found on PATH" in captured.out


@pytest.mark.integration
def test_the_peer_script_runs_tiny(tmp_path: Path) -> None:
    # npm ci from the committed lockfile into the cache on first use: needs the registry.
    # Without network this fails with npm's own words (PeerMissing), it does not skip.
    node, packages = pouchdb.prepare()
    plan = replace(
        QUICK, local_actions=50, local_board_tasks=50, ingest_events=200, propagation_actions=20
    )

    run = asyncio.run(pouchdb.run(tmp_path, plan, node, packages, list(pouchdb.WORKLOADS)))

    for name, major in pouchdb.PACKAGES.items():
        assert run.versions[name].split(".")[0] == str(major)
    assert {(p.scenario, p.figure) for p in pouchdb.PAIRS} == set(run.figures)
    assert all(value > 0 for value in run.figures.values()), run.figures
    assert os.listdir(tmp_path) == []  # the peer's files are removed


@pytest.mark.integration
def test_the_peer_script_flushes_a_large_result_before_it_exits(tmp_path: Path) -> None:
    # node writes to a pipe asynchronously: exiting right after the write cut the full
    # run's result at 65,536 bytes. A reader that comes late must still get all of it.
    node, packages = pouchdb.prepare()
    plan = replace(QUICK, local_actions=3000, local_board_tasks=50)
    config = json.dumps(pouchdb.config(plan, tmp_path, ["local_action"]))
    env = {**os.environ, "NODE_PATH": str(packages / "node_modules")}
    child = subprocess.Popen(
        [node, str(pouchdb.SCRIPT), config],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert child.stdout is not None
    try:
        # a late reader: nothing is read until the pipe is full (or the child gone), and a
        # moment more, in which the old script exited with the rest of its result unsent
        while child.poll() is None and _unread(child.stdout) < 65_536:
            time.sleep(0.05)
        time.sleep(1)
        out = child.stdout.read()
        assert child.wait() == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()

    assert len(out) > 65_536
    result = json.loads(out)
    assert len(result["local_action"]["edit_ms"]) == 3000


def _unread(pipe: IO[bytes]) -> int:
    """Bytes waiting in a pipe, unread."""
    waiting = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, waiting)
    return waiting[0]


@pytest.mark.integration
def test_a_failed_install_says_so_and_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real npm, with a registry nothing listens on and an empty npm cache: no network
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _, npm = pouchdb.find_tools()
    env = {
        **os.environ,
        "npm_config_registry": "http://127.0.0.1:9/",
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_fetch_retries": "0",
    }

    with pytest.raises(pouchdb.PeerMissing, match=r"npm ci of the peer's packages failed") as got:
        pouchdb.install(npm, env=env)

    assert "ECONNREFUSED" in str(got.value)  # npm's own words: why it failed

    assert not pouchdb.cache_dir().exists()
    assert list(pouchdb.cache_dir().parent.iterdir()) == []
