"""The auth routes take small flat JSON objects; anything else is 400 before Litestar
decodes it (its own decoding turns invalid UTF-8 or JSON nested a thousand deep into 500s).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from backend.errors import BadRequest

__all__ = ["flat_json_object"]

_flat_object = msgspec.json.Decoder(dict[str, str | int | float | bool | None])


async def flat_json_object(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: the body is one JSON object of plain values, in UTF-8."""
    if not isinstance(connection, Request):
        return
    try:
        _flat_object.decode(await connection.body())
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body must be one JSON object of plain values: {exc}") from exc
