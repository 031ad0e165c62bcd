"""The contract's patterns as test data: where they are, how to make valid values, hostile ones.

``pattern_fields`` finds every string field with a pattern in msgspec types by walking the
types themselves, so a new field is found without anyone listing it. ``CONTRACT`` gives each
pattern a generator of valid values (made the way the product makes them: ``format_hlc``,
``new_id``, ``date.isoformat``...) and its parse/format pair. ``hostile`` turns a valid
value into the faults of FAULTS row 19: Unicode digits, fullwidth letters, a trailing
newline, control characters.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol import format_hlc, parse_hlc, patterns, saga_hlc
from protocol.errors import ClockError
from protocol.ids import derived_id, uuid_version
from protocol.positions import is_valid_position, position_after, position_between

Path = tuple[str, ...]
ITEM = "[]"


def pattern_fields(root: Any) -> Iterator[tuple[Path, str]]:
    """(path, pattern) of every patterned string reachable from ``root``'s fields."""
    yield from _walk(msgspec.inspect.type_info(root), (), set())


def _walk(info: msgspec.inspect.Type, path: Path, seen: set[type]) -> Iterator[tuple[Path, str]]:
    if isinstance(info, msgspec.inspect.Metadata):
        yield from _walk(info.type, path, seen)
    elif isinstance(info, msgspec.inspect.StrType):
        if info.pattern is not None:
            yield path, info.pattern
    elif isinstance(info, msgspec.inspect.StructType):
        if info.cls in seen:
            return
        for field in info.fields:
            yield from _walk(field.type, (*path, field.encode_name), {*seen, info.cls})
    elif isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            yield from _walk(member, path, seen)
    elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType)):
        yield from _walk(info.item_type, (*path, ITEM), seen)
    elif isinstance(info, msgspec.inspect.DictType):
        yield from _walk(info.value_type, (*path, ITEM), seen)


@dataclass(frozen=True)
class ContractPattern:
    name: str
    body: str
    make: Callable[[random.Random], str]
    """A valid value, made as the product makes one."""
    parse: Callable[[str], Any]
    """The protocol's reading of a value; raises ValueError (or ClockError) if it refuses."""
    format: Callable[[Any], str]
    """Writes a parsed value back: ``format(parse(s)) == s`` for every accepted ``s``."""

    @property
    def anchored(self) -> str:
        return patterns.anchored(self.body)


def _parse_uuid(text: str) -> uuid.UUID:
    if uuid_version(text) is None:
        raise ValueError(f"{text!r} is not a lowercase canonical UUID")
    return uuid.UUID(text)


def _make_uuid(rng: random.Random) -> str:
    """A device's v4 or v7 id, or the backend's v5, drawn from ``rng`` alone."""
    version = rng.choice((4, 5, 7))
    if version == 5:
        return derived_id("t", str(rng.getrandbits(64)))
    bits = rng.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62)
    return str(uuid.UUID(int=bits | version << 76 | 0b10 << 62))


def _whole(body: str) -> Callable[[str], str]:
    check = patterns.compile_whole(body)

    def parse(text: str) -> str:
        if not check.fullmatch(text):
            raise ValueError(f"{text!r} does not match {body}")
        return text

    return parse


def _parse_date(text: str) -> datetime.date:
    _whole(patterns.DATE)(text)
    return datetime.date.fromisoformat(text)


def _parse_position(text: str) -> str:
    if not is_valid_position(text):
        raise ValueError(f"{text!r} is not a position")
    return text


def _make_position(rng: random.Random) -> str:
    """A key from a random sequence of appends and inserts, as a board makes them."""
    keys = ["a0"]
    for _ in range(rng.randrange(0, 60)):
        i = rng.randrange(0, len(keys))
        new = position_after(keys[i]) if i == len(keys) - 1 else position_between(*keys[i : i + 2])
        keys.insert(i + 1, new)
    return rng.choice(keys)


def _make_hlc(rng: random.Random) -> str:
    node = "d-" + rng.randbytes(rng.randrange(1, 20)).hex()
    if rng.random() < 0.2:
        node += patterns.SAGA_SUFFIX
    return format_hlc(rng.randrange(10**12, 10**13), rng.randrange(0, 100_000), node)


def _parse_hlc(text: str) -> Any:
    try:
        return parse_hlc(text)
    except ClockError as exc:
        raise ValueError(str(exc)) from exc


_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
_DEVICE_ALPHABET = _ALPHABET + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))

CONTRACT: dict[str, ContractPattern] = {
    p.anchored: p
    for p in (
        ContractPattern("uuid", patterns.UUID, _make_uuid, _parse_uuid, str),
        ContractPattern(
            "device id",
            patterns.DEVICE_ID,
            lambda rng: "".join(rng.choices(_DEVICE_ALPHABET, k=rng.randrange(1, 65))),
            _whole(patterns.DEVICE_ID),
            str,
        ),
        ContractPattern(
            "sign-in name",
            patterns.SIGNIN_NAME,
            lambda rng: "".join(rng.choices(_PRINTABLE, k=rng.randrange(1, 65))),
            _whole(patterns.SIGNIN_NAME),
            str,
        ),
        ContractPattern(
            "username",
            patterns.USERNAME,
            lambda rng: "".join(rng.choices(_ALPHABET, k=rng.randrange(3, 33))),
            _whole(patterns.USERNAME),
            str,
        ),
        ContractPattern(
            "date",
            patterns.DATE,
            lambda rng: datetime.date.fromordinal(rng.randrange(1, 3_652_060)).isoformat(),
            _parse_date,
            datetime.date.isoformat,
        ),
        ContractPattern("position", patterns.POSITION, _make_position, _parse_position, str),
        ContractPattern("hlc", patterns.HLC, _make_hlc, _parse_hlc, str),
        ContractPattern(
            "derived uuid",
            patterns.DERIVED_UUID,
            lambda rng: derived_id("t", str(rng.getrandbits(64))),
            _parse_uuid,
            str,
        ),
        ContractPattern(
            "saga hlc",
            patterns.SAGA_HLC,
            lambda rng: saga_hlc(_make_hlc(rng).removesuffix(patterns.SAGA_SUFFIX)),
            _parse_hlc,
            str,
        ),
    )
}

# Arabic-Indic, Persian, Devanagari, fullwidth and mathematical bold zeros.
_UNICODE_ZEROS = (0x0660, 0x06F0, 0x0966, 0xFF10, 0x1D7CE)
_CONTROLS = ("\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u200b")


def hostile(value: str, rng: random.Random) -> list[str]:
    """Variants of a valid value that must all be refused (FAULTS row 19)."""
    variants = [value + "\n", value + "\r\n", "\n" + value]
    digits = [i for i, c in enumerate(value) if c.isascii() and c.isdigit()]
    if digits:
        i = rng.choice(digits)
        zero = rng.choice(_UNICODE_ZEROS)
        variants.append(value[:i] + chr(zero + int(value[i])) + value[i + 1 :])
    letters = [i for i, c in enumerate(value) if c.isascii() and c.isalpha()]
    if letters:
        i = rng.choice(letters)
        variants.append(value[:i] + chr(ord(value[i]) - 0x21 + 0xFF01) + value[i + 1 :])
    i = rng.randrange(0, len(value) + 1)
    variants.append(value[:i] + rng.choice(_CONTROLS) + value[i:])
    return variants
