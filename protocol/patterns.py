"""Every pattern of the contract, written once (SPEC section 3).

Each pattern is ASCII and matches a whole string: ``[0-9]``, never a Unicode digit class,
and no trailing newline passes. A pattern is used in two places, and both must agree:

- Python checks compile the body with ``re.ASCII`` and call ``fullmatch`` (``compile_whole``);
- msgspec ``Meta(pattern=...)`` and the exported JSON Schemas take ``anchored(body)``. msgspec
  copies the pattern verbatim into the JSON Schema, where it must be valid ECMA-262, and
  checks values with Python's ``re.search``. Python's ``$`` also matches before a trailing
  newline, and ``\\Z`` means nothing in ECMA-262, so the anchored form is ``^body$(?!\\n)``:
  the lookahead refuses the newline in Python and is a no-op in ECMA-262.

Bodies use explicit ASCII classes only, so Python without ``re.ASCII`` (msgspec) and
ECMA-262 with or without its ``u`` flag read them the same way.
"""

from __future__ import annotations

import re

__all__ = [
    "DATE",
    "DERIVED_UUID",
    "DEVICE_ID",
    "HLC",
    "POSITION",
    "SAGA_HLC",
    "SAGA_SUFFIX",
    "SIGNIN_NAME",
    "USERNAME",
    "UUID",
    "anchored",
    "compile_whole",
]

SAGA_SUFFIX = "~saga"

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-([1-8])[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
"""A lowercase canonical UUID; the group is its version."""

DERIVED_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-(5)[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
"""A version 5 UUID: what the backend derives from a cause (``protocol.ids.derived_id``)."""

DEVICE_ID = r"[A-Za-z0-9_.-]{1,64}"
"""A device id, made by the device: no ``:`` (it is the node of its hlc), a safe file name."""

USERNAME = r"[a-z0-9_.-]{3,32}"

SIGNIN_NAME = r"[!-~]{1,64}"
"""What sign-in reads as a username: printable ASCII, looser than ``USERNAME`` on purpose
(no account rule to leak: a wrong one is just 401), so that a NUL, a control character or a
lone surrogate never reaches a lookup or a throttle key (PostgreSQL's text holds no NUL)."""

DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
"""``YYYY-MM-DD``; whether it is a real calendar day is checked after the pattern."""

POSITION = r"[A-Za-z][0-9A-Za-z]*"
"""A fractional index key (``protocol.positions`` checks the rest)."""

HLC = rf"([1-9][0-9]{{12}}):([0-9]{{5}}):({DEVICE_ID}(?:{SAGA_SUFFIX})?)"
"""``<wall ms, 13 digits>:<counter, 5 digits>:<node>``: the node is a device id, with
``~saga`` on the backend's compensations. The wall's first digit is never 0, so every
parsed stamp is one that ``format_hlc`` can write back."""

SAGA_HLC = rf"([1-9][0-9]{{12}}):([0-9]{{5}}):({DEVICE_ID}{SAGA_SUFFIX})"
"""The stamp of a compensation (``protocol.hlc.saga_hlc``)."""


def anchored(body: str) -> str:
    """The whole-string form for msgspec and JSON Schema (see the module docstring)."""
    return f"^{body}$(?!\\n)"


def compile_whole(body: str) -> re.Pattern[str]:
    """The Python check of a body: ASCII classes; callers use ``fullmatch``."""
    return re.compile(body, re.ASCII)
