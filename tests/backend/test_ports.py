"""``free_port``: a port for a server of ours that no outgoing connection takes meanwhile."""

from __future__ import annotations

import errno
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


def test_without_the_kernels_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ports, "_RANGE_FILE", tmp_path / "ip_local_port_range")  # none there
    port = free_port()
    assert _bindable(port)
    if _RANGE.exists():  # the kernel's pick is one of its ephemeral ports
        low, high = (int(word) for word in _RANGE.read_text().split())
        assert low <= port <= high


@pytest.mark.parametrize(
    ("kernel_range", "lowest", "highest"),
    [
        ("32768\t60999", 10_000, 65_535),
        ("1024 5000", 10_000, 65_535),  # above it, still never under 10,000
        ("10001 65535", 10_000, 10_000),
        ("1024 65535", None, None),  # no room: the kernel picks
        ("not a range", None, None),
    ],
)
def test_the_ports_outside_the_range_start_at_10000(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kernel_range: str,
    lowest: int | None,
    highest: int | None,
) -> None:
    (tmp_path / "range").write_text(kernel_range + "\n")
    monkeypatch.setattr(ports, "_RANGE_FILE", tmp_path / "range")
    outside = ports._outside_ephemeral()
    if lowest is None:
        assert not outside
    else:
        assert (min(outside), max(outside)) == (lowest, highest)
        low, high = (int(word) for word in kernel_range.split())
        assert not set(outside) & set(range(low, high + 1))


_NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")


@pytest.mark.skipif(
    _NONLOCAL_BIND.exists() and _NONLOCAL_BIND.read_text().strip() != "0",
    reason="a kernel that lets a socket bind an address of no interface",
)
def test_an_address_this_machine_cannot_bind_is_said_as_such() -> None:
    with pytest.raises(OSError) as raised:
        free_port("192.0.2.1")  # TEST-NET-1: on no interface here
    assert raised.value.errno == errno.EADDRNOTAVAIL


def test_no_free_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "RESERVED_PORTS", range(65_536))
    with pytest.raises(OSError, match=r"found no free port on 127\.0\.0\.1"):
        free_port()
