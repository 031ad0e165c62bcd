"""``free_port``: a port for a server of ours that no outgoing connection takes meanwhile."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from backend import ports
from backend.ports import RESERVED_PORTS, free_port

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.fixture(autouse=True)
def own_leases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A lease file of this test's own: the machine's is shared with the tests beside it."""
    leases = tmp_path / "leases"
    monkeypatch.setattr(ports, "_LEASES", leases)
    return leases


def _kernel_port() -> int:
    """A free port that no lease knows of."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        excluded = _kernel_port()
        wanted = _kernel_port()
        monkeypatch.setattr(ports, "_outside_ephemeral", lambda: [busy, excluded, wanted])
        assert free_port(exclude={excluded}) == wanted


@pytest.mark.integration
def test_a_port_handed_out_is_never_handed_to_another_process_before_its_lease_ends(
    monkeypatch: pytest.MonkeyPatch, own_leases: Path
) -> None:
    """The port a backend was given is free until the backend binds it, a second or so
    later; a test worker beside it must not start its nats-server there meanwhile."""
    first, second = _kernel_port(), _kernel_port()
    monkeypatch.setattr(ports, "_outside_ephemeral", lambda: [first, second])
    given = free_port()
    assert _bindable(given)  # not bound by anyone yet: only the lease keeps it
    script = (
        "import sys; from pathlib import Path; from backend import ports; "
        "ports._LEASES = Path(sys.argv[1]); "
        f"ports._outside_ephemeral = lambda: [{first}, {second}]; "
        "print(ports.free_port())"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(own_leases)], capture_output=True, text=True
    )
    assert other.returncode == 0, other.stderr
    assert int(other.stdout) == ({first, second} - {given}).pop()
    # both leased now: the kernel's pick, never one of them
    assert free_port() not in {first, second}


def test_an_ended_lease_frees_its_port_and_a_torn_lease_file_is_started_again(
    monkeypatch: pytest.MonkeyPatch, own_leases: Path
) -> None:
    only = _kernel_port()
    monkeypatch.setattr(ports, "_outside_ephemeral", lambda: [only])
    assert free_port() == only
    assert free_port() != only
    monkeypatch.setattr(ports, "LEASE_S", 0.0)
    own_leases.write_text(json.dumps({only: 0}))  # a lease that ended
    assert free_port() == only
    own_leases.write_bytes(b"\x00{not json")
    assert free_port() == only


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
