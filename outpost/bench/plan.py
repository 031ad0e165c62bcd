"""How big each scenario is: the issue's sizes for the full run, small ones for ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    quick: bool
    local_actions: int
    """Measured actions of each kind (edit, add), after a warm-up."""
    local_board_tasks: int
    """Tasks already on the board the local actions work on."""
    ingest_events: int
    propagation_actions: int
    """Actions device A makes at ``propagation_rate`` per second."""
    bootstrap_tasks: int
    bootstrap_large_tasks: int
    """The second bootstrap (``bootstrap_large``): a million tasks in the full run."""
    fanout_connections: int
    fanout_users: int
    fanout_more_connections: int
    """The second, bigger fan-out (measured, no target): more users, 20 connections each."""
    fanout_rounds: int
    drain_events: int
    guess_pulls: int
    """Pulls of another user timed with and without the sign-in guessers."""
    scroll_cards: int = 1000
    """Cards on the board the app opens, scrolls and filters (``board_scroll``)."""
    scroll_frames: int = 200
    scroll_filters: int = 10
    propagation_rate: float = 20.0


FULL = Plan(
    quick=False,
    local_actions=2000,
    local_board_tasks=1000,
    ingest_events=20_000,
    propagation_actions=400,
    bootstrap_tasks=100_000,
    bootstrap_large_tasks=1_000_000,
    fanout_connections=1000,
    fanout_users=50,  # 20 live connections each: the default cap
    fanout_more_connections=3000,
    fanout_rounds=30,
    drain_events=5000,
    guess_pulls=400,
)

QUICK = Plan(
    quick=True,
    local_actions=200,
    local_board_tasks=100,
    ingest_events=2000,
    propagation_actions=60,
    bootstrap_tasks=3000,
    bootstrap_large_tasks=6000,
    fanout_connections=100,
    fanout_users=5,
    fanout_more_connections=0,
    fanout_rounds=5,
    drain_events=1000,
    guess_pulls=50,
    scroll_cards=30,
    scroll_frames=10,
    scroll_filters=2,
)
