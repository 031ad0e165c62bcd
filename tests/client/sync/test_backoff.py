"""The sync thread's backoff between failed attempts."""

from __future__ import annotations

from client.sync.runner import backoff


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    samples = [backoff(attempt, base=0.5, cap=30) for attempt in range(12) for _ in range(50)]
    assert all(0 <= s <= 30 for s in samples)
    assert max(backoff(1, base=0.5) for _ in range(200)) <= 1.0
    assert max(backoff(10, base=0.5) for _ in range(200)) > 5  # grows, then caps at 30
