"""A quiet terminal: the app started as ``outpost app`` starts it (``prepare_terminal``,
then ``run_app``) on a virtual display prints no traceback and no DEBUG line; with
``--verbose`` Kivy's and httpx's debug lines are there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.xvfb import Xvfb, running_xvfb

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[3]
STARTUP_S = 90


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    with running_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log") as server:
        yield server


def ask(control: Path, op: str) -> object:
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(60)
        connection.connect(str(control))
        stream = connection.makefile("rwb")
        stream.write(json.dumps({"op": op}).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    return json.loads(line) if line else None


def start_and_quit(display: Xvfb, tmp_path: Path, *options: str) -> str:
    """Start the app (the shipped start path, with the test control), wait for its first
    screen, quit it, and return everything it printed."""
    control = Path(tempfile.mkdtemp(prefix="outpost-quiet-")) / "control.sock"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KIVY_")},
        **display.env,
        "KIVY_HOME": str(tmp_path / "kivy"),  # a first start: Kivy writes its config anew
    }
    command = [sys.executable, "-m", "tests.support.app_under_test", "--control", str(control)]
    command += ["--data-dir", str(tmp_path / "profile"), "--server", "http://127.0.0.1:9"]
    app = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        cwd=REPOSITORY,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert app.poll() is None, "the app exited"
            try:
                answer = ask(control, "query")
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start"
                time.sleep(0.2)
        assert isinstance(answer, dict) and answer["ok"]
        assert answer["result"]["screen"] == "signin"
        ask(control, "quit")
        output, _ = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    return output.decode(errors="replace")


def test_the_app_starts_without_a_traceback_or_a_debug_line(display: Xvfb, tmp_path: Path) -> None:
    output = start_and_quit(display, tmp_path)
    assert "Traceback" not in output, output
    assert "DEBUG" not in output, output
    for noise in ("MTDev", "Cutbuffer", "xclip", "httpcore"):
        assert noise not in output, output


def test_verbose_shows_the_debug_lines(display: Xvfb, tmp_path: Path) -> None:
    output = start_and_quit(display, tmp_path, "--verbose")
    assert "DEBUG kivy" in output, output
