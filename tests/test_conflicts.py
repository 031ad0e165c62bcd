"""``outpost conflicts``: the CI sweep, determinism, the oracle's self-test, argument errors.

The sweep and the self-test run the real tool (a real backend, nats-server and device
processes) as a child process, exactly as CI and ``make conflicts`` do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from outpost.conflicts import main
from outpost.conflicts.adversary import HOSTILE_KINDS
from outpost.conflicts.broken import CAUGHT_BY, RULES
from outpost.conflicts.oracle import CONFLICT_KINDS
from outpost.conflicts.report import totals
from outpost.conflicts.scenario import FAULT_KINDS, generate

SWEEP_TIMEOUT_S = 660


def _tool(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outpost", "conflicts", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


SWEEP_HALVES = (("1", "5"), ("6", "5"))
"""The ten seeds as two runs side by side (seed, count): each is mostly processes waiting."""


@pytest.mark.integration
def test_ci_sweep_ten_seeds_with_faults(tmp_path: Path) -> None:
    """10 seeds x 3 device processes x 200 actions, every fault kind and the adversary."""
    started = time.monotonic()

    def half(seed: str, count: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = tmp_path / f"sweep-{seed}.json"
        done = _tool(
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


@pytest.mark.integration
def test_a_broken_merge_rule_fails_with_the_seed_and_a_shrunk_list(tmp_path: Path) -> None:
    """The oracle's self-test: last writer wins by arrival order instead of (hlc, id)."""
    out = tmp_path / "broken.json"
    done = _tool(
        "--seed", "5", "--ops", "60", "--break", "lww-arrival-order",
        "--shrink-seconds", "20", "--json", str(out),
        timeout=400,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-4000:]
    assert "seed 5 FAILED" in done.stderr
    assert "--seed 5" in done.stderr  # how to reproduce it
    assert "loss:" in done.stderr
    report = json.loads(out.read_text())
    run = report["runs"][0]
    assert not report["ok"] and run["losses"] > 0
    shrunk = run["shrunk"]["steps"]
    assert 0 < len(shrunk) < 60, shrunk
    assert "shrunk to" in done.stderr


SELF_TESTS = sorted(
    (r for r in RULES if r != "lww-arrival-order"), key=lambda r: r != "reminders-off"
)
"""``reminders-off`` first: it waits out the heal's reminder wait, the longest of them."""
SELF_TESTS_AT_ONCE = 4
"""Broken builds run side by side: each is mostly processes waiting on each other."""


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """Every broken build's run, SELF_TESTS_AT_ONCE at a time: (exit code, stderr, JSON)."""
    folder = tmp_path_factory.mktemp("broken")

    def one(rule: str) -> tuple[int, str, Path]:
        out = folder / f"{rule}.json"
        done = _tool(
            "--seed", "3", "--clients", "3", "--ops", "24", "--adversary", "--break", rule,
            "--shrink-seconds", "0", "--json", str(out),
            timeout=600,
        )  # fmt: skip
        return done.returncode, done.stderr, out

    with ThreadPoolExecutor(SELF_TESTS_AT_ONCE) as pool:
        return dict(zip(SELF_TESTS, pool.map(one, SELF_TESTS), strict=True))


@pytest.mark.integration
@pytest.mark.parametrize("rule", SELF_TESTS)
def test_each_check_of_the_oracle_catches_its_broken_build(
    broken_runs: dict[str, tuple[int, str, Path]], rule: str
) -> None:
    """One deliberately broken build per check of the oracle (``outpost.conflicts.broken``):
    the run fails, and its problems name that check, so no check passes vacuously."""
    code, stderr, out = broken_runs[rule]
    assert code == 1, stderr[-4000:]
    problems = json.loads(out.read_text())["runs"][0]["problems"]
    for words in CAUGHT_BY[rule]:
        assert any(words in problem for problem in problems), (words, problems[:10])


def test_every_check_has_a_broken_build() -> None:
    checks = {"loss:", "divergence:", "applied twice:", "was never compensated"}
    checks |= {"ahead of the server", "without being a member", "SPEC answers"}
    checks |= {"was stored or applied all the same", "was never reminded of task"}
    named = {words for caught in CAUGHT_BY.values() for words in caught}
    assert all(any(check in words for words in named) for check in checks)


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
