"""The per-user cap on live connections, held across BFF processes (SPEC section 6).

At most ``max_per_user`` live connections per user: when one more opens, the oldest is
closed. A user's connections may sit on several BFF processes, so each process announces
on ``outpost.live`` (core NATS, like the change notices) the connections it holds, per
user, with when each opened: at once when they change (coalesced), and again every
``announce_interval_s`` as a heartbeat. Each process then knows, for every user it holds
a connection of, the connections the others hold, and closes its own that are not among
the user's ``max_per_user`` newest. Every process decides only about its own connections,
all by the same order (opening time, then process, then connection id), so they agree
without talking further, and a connection is closed by the process that serves it.

Only the connections opened after one of ours can ever close it, and those are announced
while we hold it, so a process keeps what others announce only for users it serves now.
A process that ended without saying so stops counting once its last heartbeat is older
than three intervals. ``CapRegistry`` is that bookkeeping, with no I/O; ``ChangeHub``
(``live.py``) sends and receives the announcements.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

__all__ = ["CapRegistry", "LiveConnections"]


class LiveConnections(msgspec.Struct):
    """One announcement on ``outpost.live``: the live connections ``origin`` holds."""

    origin: str
    users: dict[str, list[tuple[int, str]]]
    """username -> [(opened at, ns since the epoch; connection id)]; empty: none any more."""


@dataclass
class _Remote:
    connections: list[tuple[int, str]]
    seen_at: float


@dataclass
class CapRegistry:
    """Which of this process's live connections the cap closes."""

    origin: str
    max_per_user: int
    ttl_s: float
    """How long what another process announced counts without being heard again."""
    clock: Callable[[], float] = time.monotonic
    _local: dict[str, dict[str, int]] = field(default_factory=dict)
    """username -> {connection id: opened at} of this process."""
    _remote: dict[str, dict[str, _Remote]] = field(default_factory=dict)
    """username -> {origin: its connections}, for the users this process serves."""

    @property
    def users(self) -> list[str]:
        """The users this process holds live connections of."""
        return sorted(self._local)

    def open(self, username: str, connection: str, opened_at: int) -> list[str]:
        """A connection opened here: the ids of this process's connections to close now."""
        self._local.setdefault(username, {})[connection] = opened_at
        return self._over_cap(username)

    def close(self, username: str, connection: str) -> None:
        local = self._local.get(username)
        if local is None:
            return
        local.pop(connection, None)
        if not local:
            del self._local[username]
            self._remote.pop(username, None)

    def local(self, username: str) -> list[tuple[int, str]]:
        """What to announce for ``username``: this process's connections, oldest first."""
        return sorted((at, c) for c, at in self._local.get(username, {}).items())

    def learn(self, announcement: LiveConnections) -> list[str]:
        """Another process announced its connections: the ids of ours to close now."""
        if announcement.origin == self.origin:
            return []
        closing: list[str] = []
        now = self.clock()
        for username, connections in announcement.users.items():
            if username not in self._local:
                continue  # none of ours to close: what it holds matters only later, if ever
            remote = self._remote.setdefault(username, {})
            if connections:
                remote[announcement.origin] = _Remote(list(connections), now)
            else:
                remote.pop(announcement.origin, None)
            closing += self._over_cap(username)
        return closing

    def _over_cap(self, username: str) -> list[str]:
        local = self._local.get(username, {})
        everyone = [(at, self.origin, c) for c, at in local.items()]
        everyone += self._fresh_remote(username)
        if len(everyone) <= self.max_per_user:
            return []
        newest = sorted(everyone, reverse=True)[: self.max_per_user]
        kept = {c for _, origin, c in newest if origin == self.origin}
        return [c for c in local if c not in kept]

    def _fresh_remote(self, username: str) -> Iterable[tuple[int, str, str]]:
        remote = self._remote.get(username, {})
        oldest = self.clock() - self.ttl_s
        for origin in [o for o, r in remote.items() if r.seen_at < oldest]:
            del remote[origin]  # its process went away without a word
        for origin, known in remote.items():
            for at, connection in known.connections:
                yield (at, origin, connection)
