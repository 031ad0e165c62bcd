"""``make run`` (``outpost/run_local.py``) says when the backend it started died while the
app runs: the exit code, the last lines of its log and the log's path, once; the app goes
on. Real processes stand for the app and the backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.launcher import BackendLauncher
from outpost.run_local import backend_died, wait_for_app

pytestmark = pytest.mark.integration


def process(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_backend_that_dies_while_the_app_runs_is_announced_once_with_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = BackendLauncher(tmp_path / "data")
    backend.log.parent.mkdir(parents=True)
    backend.log.write_text("starting\nOSError: [Errno 98] address already in use\n")
    backend.process = process("import sys; sys.exit(3)")
    app = process("import time; time.sleep(2.5)")
    assert wait_for_app(app, backend, poll_s=0.2) == 0, "the app went on"
    err = capsys.readouterr().err
    assert err.count("outpost: the backend stopped (exit code 3)") == 1
    assert f"Why, in its log {backend.log}:" in err
    assert "address already in use" in err


def test_a_running_backend_is_not_announced(tmp_path: Path) -> None:
    backend = BackendLauncher(tmp_path / "data")
    assert backend_died(backend) is None, "not started"
    backend.process = process("import time; time.sleep(30)")
    try:
        assert backend_died(backend) is None
    finally:
        backend.process.kill()
        backend.process.wait()
