"""Free ports for the servers we start, and why they are not simply the kernel's.

A port that a bind to port 0 calls free is one of the kernel's ephemeral ports: the range
it also takes the local port of every outgoing connection from. Between our check and the
server's own bind (a backend runs its migrations first, for a second or so), any connection
on the machine (a backend of the same cluster to NATS or PostgreSQL, a test beside it) can
take that port, and the server exits with "address already in use". ``free_port`` picks
from outside that range instead, where no ``connect`` lands, and checks the port with a
bind of its own.

Outside the range, the same gap is open to another ``free_port`` caller: a test worker
beside this one could pick the port a backend was handed a moment ago and has not bound
yet, and start its nats-server there. So every port handed out is leased for
``LEASE_S`` in a file all of this user's processes share (under an ``flock``), and no
other caller is handed it while the lease runs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import socket
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path

__all__ = ["LEASE_S", "RESERVED_PORTS", "free_port"]

RESERVED_PORTS = frozenset({4222, 5432, 6222, 8222})
"""NATS's and PostgreSQL's well-known ports: a machine may run those services itself."""

_LOWEST = 10_000  # below: ports that other programs tend to take by default
_TRIES = 200
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")

LEASE_S = 120.0
"""How long a port handed out stays out of other callers' reach: far longer than any of
our servers takes from its start to its bind, after which the bind check covers it."""
_LEASES = Path(tempfile.gettempdir()) / f"outpost-ports-{getattr(os, 'getuid', lambda: 0)()}"


def free_port(host: str = "127.0.0.1", *, exclude: Collection[int] = ()) -> int:
    """A TCP port on ``host`` that is free now and outside the kernel's ephemeral range,
    never one of ``RESERVED_PORTS`` nor one in ``exclude``, nor one handed to any caller
    less than ``LEASE_S`` ago (the port returned is leased in turn). Where the range is
    unknown (not Linux) or leaves no room, or a hundred ports outside it were all taken,
    one the kernel picks (inside the range: the race above is back for it). Raises
    ``OSError`` if none is found, or the bind's own error for an address this machine
    cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    outside = _outside_ephemeral()
    with _leases() as leased:
        for attempt in range(_TRIES):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                wanted = random.choice(outside) if outside and attempt < _TRIES // 2 else 0
                if wanted in leased:
                    continue  # handed to another caller, which may not have bound it yet
                try:
                    sock.bind((host, wanted))
                except OSError as error:
                    if error.errno in (errno.EADDRINUSE, errno.EACCES):
                        continue  # taken, or kept for another user: try another
                    raise
                port = int(sock.getsockname()[1])
            if port not in RESERVED_PORTS and port not in exclude and port not in leased:
                leased[port] = time.time() + LEASE_S
                return port
    raise OSError(f"found no free port on {host}")


@contextlib.contextmanager
def _leases() -> Iterator[dict[int, float]]:
    """The ports other callers were handed and their leases' ends, held under an exclusive
    lock for the block and written back after it. Where no such file can be kept (no
    ``fcntl``, a temporary folder we cannot write), an empty dict that nothing shares."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the bind check alone
        yield {}
        return
    try:
        handle = os.open(_LEASES, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield {}
        return
    with os.fdopen(handle, "r+b") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
        now = time.time()
        try:
            stored = json.loads(file.read() or b"{}")
            leased = {int(port): float(end) for port, end in stored.items() if float(end) > now}
        except (ValueError, TypeError, AttributeError):
            leased = {}  # a torn or foreign file: start again
        yield leased
        file.seek(0)
        file.truncate()
        file.write(json.dumps(leased).encode())


def _outside_ephemeral() -> range | list[int]:
    """The ports from ``_LOWEST`` up that the kernel never gives an outgoing connection."""
    try:
        low, high = (int(word) for word in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return []
    below = range(_LOWEST, max(_LOWEST, low))
    above = range(max(_LOWEST, high + 1), 65_536)
    return [*below, *above] if above else below
