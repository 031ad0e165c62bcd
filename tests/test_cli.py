"""The ``outpost`` command line: the subcommand names of SPEC section 7."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outpost", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.integration
def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0
    names = ("backend", "app", "client", "users", "conflicts", "bench", "docs", "faults", "lake")
    names += ("webhooks", "reminders")
    for name in names:
        assert name in result.stdout


@pytest.mark.integration
def test_an_unknown_subcommand_is_a_usage_error() -> None:
    result = run("serve")
    assert result.returncode == 2
    assert "invalid choice: 'serve'" in result.stderr


@pytest.mark.integration
def test_docs_check_fails_on_an_outdated_folder_and_passes_once_written(tmp_path: Path) -> None:
    stale = run("docs", "--check", "--dir", str(tmp_path))
    assert stale.returncode == 1
    assert "run `outpost docs`" in stale.stderr
    assert run("docs", "--dir", str(tmp_path)).returncode == 0
    assert run("docs", "--check", "--dir", str(tmp_path)).returncode == 0


def test_the_bundle_entry_takes_the_flags_of_outpost_app(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from outpost.cli import app_main

    with pytest.raises(SystemExit) as exited:
        app_main(["--help"])
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: outpost-app")
    for flag in ("--server", "--data-dir", "--demo"):
        assert flag in usage


def test_the_bundle_entry_refuses_an_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from outpost.cli import app_main

    with pytest.raises(SystemExit) as exited:
        app_main(["--port", "1"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --port 1" in capsys.readouterr().err
