"""Checks made before anything is recorded or sent, each failing with a message a user can
act on. The limits are the event catalog's (SPEC section 4), so nothing the app accepts is
rejected for its shape later."""

from __future__ import annotations

import re
from datetime import date

from client.errors import InvalidAction
from protocol import patterns

_USERNAME = patterns.compile_whole(patterns.USERNAME)
_DATE = patterns.compile_whole(patterns.DATE)
_PRIORITY = patterns.compile_whole(r"[0-4]")


class Refused(InvalidAction):
    """Input the app refuses before acting; the message is already in plain words."""


def username(text: str) -> str:
    text = text.strip()
    if not _USERNAME.fullmatch(text):
        raise Refused("A username is 3 to 32 characters: lowercase a-z, 0-9, _ . or -")
    return text


def password(text: str) -> str:
    if not 8 <= len(text) <= 128:
        raise Refused("A password is 8 to 128 characters long")
    return text


def server_url(text: str) -> str:
    text = text.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", text):
        raise Refused("The server address starts with http:// or https://")
    return text


def board_name(text: str) -> str:
    return _text(text, "A board needs a name", 200, "A board name is at most 200 characters")


def title(text: str) -> str:
    return _text(text, "A task needs a title", 500, "A title is at most 500 characters")


def label(text: str) -> str:
    return _text(text, "A label needs a name", 50, "A label is at most 50 characters")


def comment(text: str) -> str:
    return _text(text, "Write something first", 10_000, "A comment is at most 10,000 characters")


def notes(text: str) -> str:
    if len(text) > 20_000:
        raise Refused("Notes are at most 20,000 characters")
    return text


def due(text: str) -> str | None:
    """``YYYY-MM-DD``, or empty for no due date."""
    text = text.strip()
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise Refused("Write the due date as YYYY-MM-DD, for example 2025-03-14")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise Refused(f"{text} is not a date on the calendar") from None
    return text


PRIORITY_NAMES = ("None", "Low", "Medium", "High", "Urgent")


def priority(value: int | str) -> int:
    """0..4, or its name (``High``: 3, any case)."""
    if isinstance(value, str):
        value = value.strip()
        named = [name.casefold() for name in PRIORITY_NAMES]
        if value.casefold() in named:
            return named.index(value.casefold())
        if not _PRIORITY.fullmatch(value):  # int() would also read "٣" or " 3\n"
            raise Refused("Priority is None, Low, Medium, High or Urgent (0 to 4)")
    number = int(value)
    if not 0 <= number <= 4:
        raise Refused("Priority is None, Low, Medium, High or Urgent (0 to 4)")
    return number


def wip_limit(value: int | str | None) -> int | None:
    """1..100 tasks in Doing per assignee, or none (empty, ``none`` or ``0``)."""
    if value is None or (isinstance(value, str) and value.strip().casefold() in ("", "none")):
        return None
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,3}", text):
        raise Refused("The limit is a whole number from 1 to 100, or none")
    number = int(text)
    if number == 0:
        return None
    if number > 100:
        raise Refused("The limit is a whole number from 1 to 100, or none")
    return number


def assignee(text: str) -> str | None:
    """A username, or empty for nobody."""
    text = text.strip()
    if not text:
        return None
    if not _USERNAME.fullmatch(text):
        raise Refused("Assign the task to a username (3 to 32 of a-z, 0-9, _ . -) or to nobody")
    return text


def _text(text: str, empty: str, most: int, too_long: str) -> str:
    text = text.strip()
    if not text:
        raise Refused(empty)
    if len(text) > most:
        raise Refused(too_long)
    return text
