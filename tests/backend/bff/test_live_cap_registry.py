"""The bookkeeping of the per-user live connection cap on its own (no I/O)."""

from __future__ import annotations

from backend.bff.sync.live_cap import CapRegistry, LiveConnections


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def registry(clock: Clock | None = None, origin: str = "here") -> CapRegistry:
    return CapRegistry(origin=origin, max_per_user=2, ttl_s=15.0, clock=clock or Clock())


def test_a_connection_beyond_the_cap_closes_the_oldest_of_that_user_only() -> None:
    cap = registry()
    assert cap.open("alice", "a1", 10) == []
    assert cap.open("bob", "b1", 11) == []
    assert cap.open("alice", "a2", 20) == []
    assert cap.open("alice", "a3", 30) == ["a1"]
    cap.close("alice", "a1")
    assert cap.local("alice") == [(20, "a2"), (30, "a3")]
    assert cap.local("bob") == [(11, "b1")]


def test_newer_connections_elsewhere_close_the_oldest_here() -> None:
    cap = registry()
    cap.open("alice", "a1", 10)
    cap.open("alice", "a2", 40)
    closing = cap.learn(LiveConnections("there", {"alice": [(20, "t1"), (30, "t2")]}))
    assert closing == ["a1"]


def test_older_connections_elsewhere_close_nothing_here() -> None:
    cap = registry()
    cap.open("alice", "a1", 50)
    cap.open("alice", "a2", 60)
    assert cap.learn(LiveConnections("there", {"alice": [(20, "t1"), (30, "t2")]})) == []


def test_a_process_that_says_it_holds_nothing_any_more_counts_no_longer() -> None:
    cap = registry()
    cap.open("alice", "a1", 10)
    cap.learn(LiveConnections("there", {"alice": [(20, "t1")]}))
    cap.learn(LiveConnections("there", {"alice": []}))
    assert cap.open("alice", "a2", 30) == []


def test_a_process_not_heard_for_longer_than_the_ttl_counts_no_longer() -> None:
    clock = Clock()
    cap = registry(clock)
    cap.open("alice", "a1", 10)
    cap.learn(LiveConnections("there", {"alice": [(20, "t1")]}))
    clock.now = 16.0
    assert cap.open("alice", "a2", 30) == []


def test_its_own_announcements_and_users_it_does_not_serve_are_ignored() -> None:
    cap = registry()
    cap.open("alice", "a1", 10)
    assert cap.learn(LiveConnections("here", {"alice": [(20, "x"), (30, "y")]})) == []
    cap.learn(LiveConnections("there", {"bob": [(20, "t1"), (30, "t2")]}))
    assert cap.open("bob", "b1", 5) == []  # what was said of Bob before was not kept
    assert cap.users == ["alice", "bob"]


def test_ties_of_opening_time_are_broken_the_same_way_by_every_process() -> None:
    here, there = registry(origin="p1"), registry(origin="p2")
    here.open("alice", "c1", 10)
    there.open("alice", "c2", 10)
    there.open("alice", "c3", 10)
    closed_here = here.learn(LiveConnections("p2", {"alice": there.local("alice")}))
    closed_there = there.learn(LiveConnections("p1", {"alice": here.local("alice")}))
    assert len(closed_here) + len(closed_there) == 1
