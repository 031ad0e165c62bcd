"""The circuit breaker as a state machine: closed, opened by an outage, closed by work."""

from __future__ import annotations

from backend.consumers.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000

    def __call__(self) -> int:
        return self.ms


def test_a_new_breaker_is_closed() -> None:
    breaker = Breaker(clock=Clock())
    assert breaker.state == "closed" and not breaker.is_open
    assert breaker.since is None and breaker.openings == 0


def test_an_outage_opens_it_since_that_moment() -> None:
    clock = Clock()
    breaker = Breaker(clock=clock)
    assert breaker.open("database unavailable: refused") is True
    assert breaker.is_open and breaker.state == "open"
    assert breaker.since == 1_000
    assert breaker.last_error == "database unavailable: refused"
    assert breaker.openings == 1


def test_a_second_outage_while_open_keeps_the_opening_and_the_time() -> None:
    clock = Clock()
    breaker = Breaker(clock=clock)
    breaker.open("database unavailable: refused")
    clock.ms = 4_000
    assert breaker.open("stream unavailable: no responders") is False
    assert breaker.since == 1_000, "open since the first outage"
    assert breaker.openings == 1
    assert breaker.last_error == "stream unavailable: no responders"


def test_work_closes_it_and_says_for_how_long_it_was_open() -> None:
    clock = Clock()
    breaker = Breaker(clock=clock)
    breaker.open("database unavailable")
    clock.ms = 3_500
    assert breaker.close() == 2_500
    assert breaker.state == "closed" and breaker.since is None
    assert breaker.last_error == "database unavailable", "the last error stays for health"


def test_closing_a_closed_breaker_changes_nothing() -> None:
    breaker = Breaker(clock=Clock())
    assert breaker.close() is None
    assert breaker.state == "closed" and breaker.openings == 0


def test_each_new_outage_after_a_close_counts_as_an_opening() -> None:
    clock = Clock()
    breaker = Breaker(clock=clock)
    for _ in range(3):
        assert breaker.open("database unavailable")
        clock.ms += 10
        breaker.close()
    assert breaker.openings == 3 and not breaker.is_open
