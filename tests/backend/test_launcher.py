"""The backend launcher that make run, the benchmarks and the tests share."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from backend.launcher import BackendLauncher, LaunchError, answers
from backend.ports import free_port

pytestmark = pytest.mark.integration


def test_it_starts_a_backend_that_answers_and_stops_it_cleanly(tmp_path: Path) -> None:
    launcher = BackendLauncher(tmp_path / "data")
    launcher.start()
    try:
        assert answers(launcher.url)
    finally:
        assert launcher.stop() == 0
    assert not answers(launcher.url)
    assert "outpost backend ready" in launcher.tail()
    assert "uvloop loop)" in launcher.tail()  # the faster loop, where it is installed


def test_a_backend_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        launcher = BackendLauncher(tmp_path / "data", port=taken.getsockname()[1])
        with pytest.raises(LaunchError, match="the backend exited with") as failure:
            launcher.start(timeout_s=60)
    assert "address already in use" in str(failure.value).lower()
    assert launcher.stop() is not None  # it had exited: nothing left to stop


def test_a_port_where_a_nats_server_listens_is_no_backend_and_the_launch_says_why(
    tmp_path: Path,
) -> None:
    """A nats-server that took the port first greets with ``INFO {...}``, no HTTP status
    line: the launch fails with the backend's own error, not the HTTP client's."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()

        def greet() -> None:
            with contextlib.suppress(OSError):
                while True:
                    peer, _ = taken.accept()
                    with peer:
                        peer.sendall(b'INFO {"server_name":"outpost-embedded"}\r\n')

        threading.Thread(target=greet, daemon=True).start()
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"
        assert not answers(url)
        launcher = BackendLauncher(tmp_path / "data", port=taken.getsockname()[1])
        with pytest.raises(LaunchError, match="the backend exited with") as failure:
            launcher.start(timeout_s=60)
    assert "address already in use" in str(failure.value).lower()
