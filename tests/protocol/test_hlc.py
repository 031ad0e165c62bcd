"""The hybrid logical clock: format, monotonicity, taking in remote time, rebase."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ClockError, HybridLogicalClock, Timestamp, format_hlc, parse_hlc, saga_hlc
from protocol.hlc import MAX_COUNTER

T0 = 1_764_136_800_000
DAY = 86_400_000


class FakeWallClock:
    """A wall clock the test moves by hand, backwards too."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_the_string_form_is_fixed_width_and_round_trips() -> None:
    assert format_hlc(T0, 7, "d-7f3a") == "1764136800000:00007:d-7f3a"
    assert parse_hlc("1764136800000:00007:d-7f3a") == Timestamp(T0, 7, "d-7f3a")
    assert str(Timestamp(T0, 7, "d-7f3a")) == "1764136800000:00007:d-7f3a"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1764136800000:00000",
        "1764136800000:0:d",
        "176413680000:00000:d",
        "x:00000:d",
        "1764136800000:00000:",
        "1764136800000:00000:a:b",
        "1764136800000:100000:d",
        "0000000000000:00000:d",  # a wall format_hlc refuses
        "١٧٦٤١٣٦٨٠٠٠٠٠:00000:d",  # Arabic-Indic digits sort above every ASCII stamp
        "1764136800000:\uff100000:d",  # a fullwidth digit
        "1764136800000:00000:d\n",
        "1764136800000:00000:d é",
        "1764136800000:00000:d\x00",
    ],
)
def test_a_malformed_stamp_is_a_clock_error(text: str) -> None:
    with pytest.raises(ClockError, match="is not"):
        parse_hlc(text)


@pytest.mark.parametrize(
    ("wall", "counter", "node"),
    [
        (1, 0, "d"),
        (T0, MAX_COUNTER + 1, "d"),
        (T0, 0, "a:b"),
        (T0, 0, ""),
        (T0, 0, "d\n"),
        (T0, 0, "\uff44"),  # a fullwidth d
    ],
)
def test_format_refuses_what_would_not_parse(wall: int, counter: int, node: str) -> None:
    with pytest.raises(ClockError):
        format_hlc(wall, counter, node)


@given(
    st.tuples(
        st.integers(10**12, 10**13 - 1),
        st.integers(0, MAX_COUNTER),
        st.text("abz-_.", min_size=1, max_size=5),
    ),
    st.tuples(
        st.integers(10**12, 10**13 - 1),
        st.integers(0, MAX_COUNTER),
        st.text("abz-_.", min_size=1, max_size=5),
    ),
)
def test_strings_order_like_wall_then_counter_then_node(
    a: tuple[int, int, str], b: tuple[int, int, str]
) -> None:
    assert (format_hlc(*a) < format_hlc(*b)) == (a < b)


def test_now_follows_the_wall_clock_while_it_moves_forward() -> None:
    wall = FakeWallClock()
    clock = HybridLogicalClock("d-a", wall)
    assert clock.now() == format_hlc(T0, 0, "d-a")
    wall.ms += 5
    assert clock.now() == format_hlc(T0 + 5, 0, "d-a")
    assert clock.now() == format_hlc(T0 + 5, 1, "d-a")


def test_now_stays_monotonic_when_the_wall_clock_goes_backwards() -> None:
    wall = FakeWallClock()
    clock = HybridLogicalClock("d-a", wall)
    first = clock.now()
    wall.ms -= DAY
    second, third = clock.now(), clock.now()
    assert first < second < third
    assert parse_hlc(third) == Timestamp(T0, 2, "d-a")


def test_the_counter_overflows_into_the_next_millisecond() -> None:
    clock = HybridLogicalClock("d-a", FakeWallClock(), last=format_hlc(T0, MAX_COUNTER, "d-a"))
    assert clock.now() == format_hlc(T0 + 1, 0, "d-a")


def test_after_receiving_a_stamp_the_next_one_wins_whatever_the_nodes() -> None:
    clock = HybridLogicalClock("a", FakeWallClock(T0 - DAY))  # a day behind
    remote = format_hlc(T0, 42, "zzz")  # a greater node at the same wall and counter
    clock.receive(remote)
    assert clock.now() > remote
    assert parse_hlc(clock.now())[:2] > parse_hlc(remote)[:2]


def test_taking_in_server_time_catches_a_slow_clock_up() -> None:
    clock = HybridLogicalClock("d-a", FakeWallClock(T0 - DAY))
    clock.receive_time(T0)
    assert parse_hlc(clock.now()).wall == T0


def test_receiving_an_older_stamp_changes_nothing() -> None:
    wall = FakeWallClock()
    clock = HybridLogicalClock("d-a", wall)
    clock.now()
    clock.receive(format_hlc(T0 - 1000, 5, "d-b"))
    assert clock.now() == format_hlc(T0, 1, "d-a")


def test_rebase_after_clock_skew_drops_the_rejected_future_stamps() -> None:
    wall = FakeWallClock(T0 + DAY)  # this device's clock is a day ahead
    clock = HybridLogicalClock("d-a", wall)
    rejected = [clock.now() for _ in range(3)]
    accepted_floor = format_hlc(T0 - 60_000, 3, "d-a")
    clock.rebase(server_time_ms=T0, floor=accepted_floor)
    assert clock.offset_ms == -DAY
    stamp = clock.now()
    assert accepted_floor < stamp < min(rejected)
    assert parse_hlc(stamp).wall == T0
    wall.ms += 10
    assert parse_hlc(clock.now()).wall == T0 + 10  # the correction stays in force


def test_rebase_without_a_floor_starts_from_server_time() -> None:
    clock = HybridLogicalClock("d-a", FakeWallClock(T0 + DAY))
    clock.now()
    clock.rebase(T0, None)
    assert clock.now() == format_hlc(T0, 0, "d-a")


def test_the_last_stamp_persists_across_a_restart() -> None:
    wall = FakeWallClock()
    first = HybridLogicalClock("d-a", wall)
    made = first.now()
    wall.ms -= 500
    reopened = HybridLogicalClock("d-a", wall, last=first.last)
    assert reopened.now() > made
    assert HybridLogicalClock("d-a", wall).last is None


def test_an_offset_shifts_the_clock_like_a_wrong_wall_clock() -> None:
    clock = HybridLogicalClock("d-a", FakeWallClock(), offset_ms=DAY)
    assert parse_hlc(clock.now()).wall == T0 + DAY


def test_a_node_with_a_colon_is_refused() -> None:
    with pytest.raises(ClockError):
        HybridLogicalClock("d:a")


def test_a_saga_stamp_sorts_just_after_its_cause() -> None:
    cause = format_hlc(T0, 3, "d-a")
    later = format_hlc(T0, 4, "d-0")
    assert saga_hlc(cause) == "1764136800000:00003:d-a~saga"
    assert cause < saga_hlc(cause) < later


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("now"), st.integers(-DAY, DAY)),
            st.tuples(st.just("receive"), st.integers(-DAY, DAY)),
        ),
        max_size=60,
    )
)
def test_every_stamp_exceeds_all_made_or_received_before(steps: list[tuple[str, int]]) -> None:
    wall = FakeWallClock()
    clock = HybridLogicalClock("d-a", wall)
    highest = ""
    for op, delta in steps:
        if op == "now":
            wall.ms = T0 + delta  # the wall clock jumps anywhere, backwards included
            stamp = clock.now()
            assert parse_hlc(stamp)[:2] > parse_hlc(highest)[:2] if highest else True
            highest = max(highest, stamp)
        else:
            remote = format_hlc(T0 + delta, abs(delta) % 100, "d-z")
            clock.receive(remote)
            highest = max(highest, remote)
