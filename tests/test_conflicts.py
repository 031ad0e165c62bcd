"""``outpost conflicts``: the CI sweep, determinism, argument errors (the oracle's self-test
is ``test_conflicts_oracle.py``: apart, so that the two long runs go side by side).

The sweep runs the real tool (a real backend, nats-server and device processes) as a child
process, exactly as CI and ``make conflicts`` do.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from outpost.conflicts import main
from outpost.conflicts.adversary import HOSTILE_KINDS
from outpost.conflicts.oracle import CONFLICT_KINDS
from outpost.conflicts.report import totals
from outpost.conflicts.scenario import FAULT_KINDS, generate
from tests.support.cli import conflicts_tool

SWEEP_TIMEOUT_S = 660


SWEEP_HALVES = (("1", "5"), ("6", "5"))
"""The ten seeds as two runs side by side (seed, count): each is mostly processes waiting."""


@pytest.mark.integration
def test_ci_sweep_ten_seeds_with_faults(tmp_path: Path) -> None:
    """10 seeds x 3 device processes x 200 actions, every fault kind and the adversary."""
    started = time.monotonic()

    def half(seed: str, count: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = tmp_path / f"sweep-{seed}.json"
        done = conflicts_tool(
            "--scenarios", count, "--seed", seed, "--clients", "3", "--ops", "200", "--faults",
            "--shrink-seconds", "0", "--json", str(out),
            timeout=SWEEP_TIMEOUT_S,
        )  # fmt: skip
        assert out.exists(), done.stderr[-4000:]
        return done, out

    with ThreadPoolExecutor(len(SWEEP_HALVES)) as pool:
        halves = list(pool.map(lambda args: half(*args), SWEEP_HALVES))
    seconds = time.monotonic() - started
    runs = [run for _, out in halves for run in json.loads(out.read_text())["runs"]]
    report = totals(runs, faults=True, adversary=True, wall_s=seconds)
    print(*(done.stdout for done, _ in halves), f"sweep wall time {seconds:.1f}s", sep="\n")
    (Path(__file__).parent / "artifacts").mkdir(exist_ok=True)
    (Path(__file__).parent / "artifacts" / "conflicts-sweep.json").write_text(json.dumps(report))
    assert report["scenarios"] == 10
    # 200 actions each after the setup; a few are skipped (a task not yet seen by a device)
    assert all(r["actions_planned"] >= 200 for r in report["runs"]), report["runs"]
    assert all(r["actions"] >= 150 for r in report["runs"]), report["runs"]
    assert report["faults_not_fired"] == [], report["faults"]
    # the adversary: every hostile kind got the answer SPEC gives it (a wrong answer is an
    # invariant break), and a cause it stamped minutes ahead was compensated all the same
    assert report["hostile_not_fired"] == [], report["hostile"]
    assert all(report["hostile"][kind] > 0 for kind in HOSTILE_KINDS), report["hostile"]
    assert report["hostile_causes"] > 0
    assert all(report["faults"][kind] > 0 for kind in FAULT_KINDS), report["faults"]
    for kind in ("same_field", "different_field", "delete_vs_edit", "label", "wip"):
        assert report["conflicts"][kind] > 0, report["conflicts"]
    assert report["divergences"] == 0, [r["problems"] for r in report["runs"]]
    assert report["losses"] == 0, [r["problems"] for r in report["runs"]]
    assert report["applied_twice"] == 0
    # every reminder due by the end (most scenario due dates are past) reached its assignee
    assert report["reminders_expected"] > 0, [r["notes"] for r in report["runs"]]
    problems = [r["problems"] for r in report["runs"]]
    assert report["reminders_fired_once"] == report["reminders_expected"], problems
    assert report["invariant_breaks"] == 0, [r["problems"] for r in report["runs"]]
    assert report["ok"], report["failed_seeds"]
    assert all(done.returncode == 0 for done, _ in halves), [d.stderr[-2000:] for d, _ in halves]


def test_the_same_seed_gives_the_same_scenario() -> None:
    one = generate(7, 3, 2, 200, True).to_json()
    assert one == generate(7, 3, 2, 200, True).to_json()
    assert one != generate(8, 3, 2, 200, True).to_json()
    kinds = {step["kind"] for step in one["steps"]}
    assert {"kill_act", "kill_sync", "backend_restart", "nats_restart", "dup", "hostile"} <= kinds
    assert (
        sum(1 for s in one["steps"] if s["kind"] in ("act", "kill_act") and not s["setup"]) >= 200
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clients", "1"], "--clients must be at least 2"),
        (["--clients", "3", "--users", "4"], "--users must be between 1 and --clients"),
        (["--ops", "-1"], "--ops must not be negative"),
        (["--scenarios", "0"], "--scenarios must be at least 1"),
        (["--backend-url", "localhost:8000"], "--backend-url must be an http"),
    ],
)
def test_argument_errors_are_clear(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_broken_rule_and_bad_numbers_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--break", "nonsense"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ops", "many"])
    assert "invalid int value" in capsys.readouterr().err


def test_every_kind_is_named_in_the_report() -> None:
    assert set(CONFLICT_KINDS) == {
        "same_field",
        "different_field",
        "delete_vs_edit",
        "label",
        "wip",
    }
    assert len(FAULT_KINDS) == 8
