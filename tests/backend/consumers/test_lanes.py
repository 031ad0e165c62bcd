"""A lane's retry bookkeeping: attempts per message, isolation of a failed batch."""

from __future__ import annotations

from backend.consumers.lanes import Lane


def lane() -> Lane:
    return Lane("events", "OUTPOST_EVENTS", "outpost.events.>", "c", "c", batch=64)


def test_a_failed_batch_is_retried_one_message_at_a_time_until_past_it() -> None:
    it = lane()
    assert it.fetch_size == 64
    it.isolate_until = 10
    assert it.fetch_size == 1
    it.past(9)
    assert it.fetch_size == 1, "still inside the failed batch"
    it.past(10)
    assert it.isolate_until is None and it.fetch_size == 64


def test_an_idle_lane_fetches_one_message() -> None:
    it = lane()
    it.backlog = False
    assert it.fetch_size == 1


def test_attempts_count_per_message_and_are_forgotten_once_passed() -> None:
    it = lane()
    assert it.failed(5) == 1
    assert it.failed(5) == 2
    assert it.failed(7) == 1
    it.past(5)
    assert it.attempts == {7: 1}
