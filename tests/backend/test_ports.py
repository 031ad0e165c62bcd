"""``free_port``: a port for a server of ours that no outgoing connection takes meanwhile."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from backend import ports
from backend.ports import RESERVED_PORTS, free_port

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.skipif(
    not ports._outside_ephemeral(), reason="a kernel that says its ephemeral range, and leaves room"
)
def test_the_port_is_free_and_outside_the_range_outgoing_connections_take_theirs_from() -> None:
    low, high = (int(word) for word in _RANGE.read_text().split())
    for _ in range(50):
        port = free_port()
        assert not low <= port <= high
        assert port >= 10_000 and port not in RESERVED_PORTS
        assert _bindable(port)


def test_a_port_in_use_or_excluded_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        excluded = free_port()
        wanted = free_port(exclude={excluded})
        monkeypatch.setattr(ports, "_outside_ephemeral", lambda: [busy, excluded, wanted])
        assert {free_port(exclude={excluded}) for _ in range(30)} == {wanted}


def test_without_the_kernels_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_RANGE_FILE", Path("/nonexistent/ip_local_port_range"))
    assert _bindable(free_port())


def test_no_free_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "RESERVED_PORTS", range(65_536))
    with pytest.raises(OSError, match=r"found no free port on 127\.0\.0\.1"):
        free_port()
