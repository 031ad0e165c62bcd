"""Fractional positions: order keys that always leave room for one more in between.

A key is an integer part and a fraction, in base 62 (``0-9A-Za-z``, which sorts the same as
its digits' values, bytewise). The integer part's first character gives its length
(``a``..``z``: 2..27 characters, ``A``..``Z``: the negative range), so appending after the
last task, the common case, grows keys only logarithmically. The fraction never ends in
``0``, so a key strictly between any two keys always exists. This is the well-known scheme
of David Greenspan and Evan Wallace ("fractional indexing"); it is short enough to own.
"""

from __future__ import annotations

from protocol.errors import PositionError

__all__ = [
    "MAX_POSITION_LENGTH",
    "is_valid_position",
    "position_after",
    "position_before",
    "position_between",
    "positions_between",
]

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT_VALUE = {c: i for i, c in enumerate(DIGITS)}
_SMALLEST_INTEGER = "A" + "0" * 26
MAX_POSITION_LENGTH = 255
"""Longest position the protocol accepts: reached only by hundreds of inserts at one spot."""

_FIRST = "a0"


def _integer_length(head: str) -> int:
    if "a" <= head <= "z":
        return ord(head) - ord("a") + 2
    if "A" <= head <= "Z":
        return ord("Z") - ord(head) + 2
    raise PositionError(f"position head {head!r} is not a letter")


def _split(key: str) -> tuple[str, str]:
    if not key:
        raise PositionError("position must not be empty")
    size = _integer_length(key[0])
    if len(key) < size:
        raise PositionError(f"position {key!r} is shorter than its integer part")
    return key[:size], key[size:]


def is_valid_position(key: object) -> bool:
    """True for a key this module could have made (and the protocol accepts)."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_POSITION_LENGTH:
        return False
    try:
        _, fraction = _split(key)
    except PositionError:
        return False
    if key == _SMALLEST_INTEGER or fraction.endswith("0"):
        return False
    return all(c in _DIGIT_VALUE for c in key[1:])


def _check(key: str) -> None:
    if not is_valid_position(key):
        raise PositionError(f"{key!r} is not a valid position")


def _midpoint(low: str, high: str | None) -> str:
    """A fraction strictly between two fractions (``high`` None: above ``low``)."""
    if high is not None:
        common = 0
        while common < len(high) and (low[common] if common < len(low) else "0") == high[common]:
            common += 1
        if common:
            return high[:common] + _midpoint(low[common:], high[common:])
    digit_low = _DIGIT_VALUE[low[0]] if low else 0
    digit_high = _DIGIT_VALUE[high[0]] if high is not None else len(DIGITS)
    if digit_high - digit_low > 1:
        return DIGITS[(digit_low + digit_high + 1) // 2]
    if high is not None and len(high) > 1:
        return high[:1]
    return DIGITS[digit_low] + _midpoint(low[1:], None)


def _increment(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in range(len(digits) - 1, -1, -1):
        value = _DIGIT_VALUE[digits[i]] + 1
        if value < len(DIGITS):
            digits[i] = DIGITS[value]
            return head + "".join(digits)
        digits[i] = "0"
    if head == "Z":
        return "a0"
    if head == "z":
        return None
    new_head = chr(ord(head) + 1)
    if new_head > "a":
        digits.append("0")
    else:
        digits.pop()
    return new_head + "".join(digits)


def _decrement(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in range(len(digits) - 1, -1, -1):
        value = _DIGIT_VALUE[digits[i]] - 1
        if value >= 0:
            digits[i] = DIGITS[value]
            return head + "".join(digits)
        digits[i] = DIGITS[-1]
    if head == "a":
        return "Z" + DIGITS[-1]
    if head == "A":
        return None
    new_head = chr(ord(head) - 1)
    if new_head < "Z":
        digits.append(DIGITS[-1])
    else:
        digits.pop()
    return new_head + "".join(digits)


def position_between(before: str | None, after: str | None) -> str:
    """A key strictly between ``before`` and ``after``; None stands for either open end.

    Raises PositionError if the bounds are not keys or out of order, or if the new key
    would be longer than MAX_POSITION_LENGTH (the caller then spreads the column again
    with ``positions_between``).
    """
    key = _between(before, after)
    if len(key) > MAX_POSITION_LENGTH:
        raise PositionError(
            f"no short position left between {before!r} and {after!r}: spread the column again"
        )
    return key


def _between(before: str | None, after: str | None) -> str:
    if before is not None:
        _check(before)
    if after is not None:
        _check(after)
    if before is not None and after is not None and before >= after:
        raise PositionError(f"{before!r} must sort before {after!r}")
    if before is None and after is None:
        return _FIRST
    if before is None:
        assert after is not None
        integer, fraction = _split(after)
        if integer == _SMALLEST_INTEGER:
            return integer + _midpoint("", fraction)
        if integer < after:
            return integer
        smaller = _decrement(integer)
        if smaller is None:
            raise PositionError("no position left before the smallest key")
        return smaller
    integer, fraction = _split(before)
    if after is None:
        larger = _increment(integer)
        return integer + _midpoint(fraction, None) if larger is None else larger
    integer_after, fraction_after = _split(after)
    if integer == integer_after:
        return integer + _midpoint(fraction, fraction_after)
    larger = _increment(integer)
    if larger is None:
        raise PositionError("no position left after the largest integer")
    return larger if larger < after else integer + _midpoint(fraction, None)


def position_before(first: str | None) -> str:
    """A key that sorts before ``first`` (the first task of a column), or the first key."""
    return position_between(None, first)


def position_after(last: str | None) -> str:
    """A key that sorts after ``last`` (the last task of a column), or the first key."""
    return position_between(last, None)


def positions_between(before: str | None, after: str | None, count: int) -> list[str]:
    """``count`` increasing keys strictly between the bounds, spread to keep them short."""
    if count <= 0:
        return []
    if count == 1:
        return [position_between(before, after)]
    middle = position_between(before, after)
    half = count // 2
    return [
        *positions_between(before, middle, half),
        middle,
        *positions_between(middle, after, count - half - 1),
    ]
