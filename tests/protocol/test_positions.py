"""Fractional positions: a key always fits between two others, and keys stay short."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    PositionError,
    is_valid_position,
    position_after,
    position_before,
    position_between,
    positions_between,
)


def test_the_first_key_and_keys_around_it() -> None:
    first = position_between(None, None)
    assert position_before(first) < first < position_after(first)
    assert position_before(None) == position_after(None) == first


@pytest.mark.parametrize(("a", "b"), [("a0", "a1"), ("a0", "a0V"), ("Zz", "a0"), ("a1", "b10")])
def test_a_key_between_two_neighbours_sorts_strictly_between(a: str, b: str) -> None:
    middle = position_between(a, b)
    assert a < middle < b
    assert is_valid_position(middle)


@pytest.mark.parametrize(("a", "b"), [("a1", "a0"), ("a0", "a0")])
def test_bounds_out_of_order_are_refused(a: str, b: str) -> None:
    with pytest.raises(PositionError, match="must sort before"):
        position_between(a, b)


@pytest.mark.parametrize("key", ["", "a", "a00", "a10", "0", "!", "a0 ", "A" + "0" * 26, 7])
def test_malformed_keys_are_not_positions(key: object) -> None:
    assert not is_valid_position(key)
    if isinstance(key, str):
        with pytest.raises(PositionError):
            position_after(key)


def test_appending_a_thousand_tasks_keeps_keys_short() -> None:
    keys = [position_after(None)]
    for _ in range(999):
        keys.append(position_after(keys[-1]))
    assert keys == sorted(keys) and len(set(keys)) == 1000
    assert max(map(len, keys)) <= 3


def test_prepending_keeps_keys_short_and_ordered() -> None:
    keys = [position_before(None)]
    for _ in range(999):
        keys.insert(0, position_before(keys[0]))
    assert keys == sorted(keys) and len(set(keys)) == 1000
    assert max(map(len, keys)) <= 4


def test_a_key_too_long_for_the_protocol_is_refused_with_advice() -> None:
    low, high = "a0", "a1"
    with pytest.raises(PositionError, match="spread the column again"):
        for _ in range(2000):
            high = position_between(low, high)


@given(st.integers(0, 40), st.sampled_from([None, "a0", "Zz"]), st.sampled_from([None, "b10"]))
def test_n_keys_between_bounds_are_increasing_and_inside(
    count: int, low: str | None, high: str | None
) -> None:
    keys = positions_between(low, high, count)
    assert len(keys) == count
    assert keys == sorted(set(keys))
    assert all((low is None or low < k) and (high is None or k < high) for k in keys)


@given(st.lists(st.integers(min_value=0), min_size=1, max_size=150))
def test_random_inserts_keep_the_list_sorted_and_valid(choices: list[int]) -> None:
    keys: list[str] = []
    for choice in choices:
        slot = choice % (len(keys) + 1)
        before = keys[slot - 1] if slot else None
        after = keys[slot] if slot < len(keys) else None
        key = position_between(before, after)
        assert is_valid_position(key)
        keys.insert(slot, key)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
