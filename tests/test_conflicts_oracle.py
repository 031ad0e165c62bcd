"""The oracle's self-test of ``outpost conflicts``: a broken merge rule, and one broken build
per check of the oracle, each must fail the run with that check named. Apart from
``test_conflicts.py`` so that its runs and the CI sweep go side by side on the two workers.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from outpost.conflicts.broken import CAUGHT_BY, RULES
from tests.support.cli import conflicts_tool


@pytest.mark.integration
def test_a_broken_merge_rule_fails_with_the_seed_and_a_shrunk_list(tmp_path: Path) -> None:
    """The oracle's self-test: last writer wins by arrival order instead of (hlc, id)."""
    out = tmp_path / "broken.json"
    done = conflicts_tool(
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
        done = conflicts_tool(
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
