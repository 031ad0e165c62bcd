"""The engine's one seam to the network is httpx's own: an ``httpx.AsyncClient``, whose
``transport`` decides where requests go.

``connect(server)`` makes the client the device uses: real HTTP to ``server``. Tests, the
bench and the conflict tool pass their own ``transport=``: an ``httpx.ASGITransport`` over
an app, an ``httpx.MockTransport``, or an ``httpx.AsyncBaseTransport`` subclass that wraps
the real one to cut a device off or count what it sends. The engine never knows.

A connection that fails raises ``httpx.TransportError`` (a subclass of ``httpx.HTTPError``);
the engine turns it into ``ServerUnreachable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

LIVE_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
"""The server comments on the live stream every 15 s: a minute of silence is a dead line."""


def connect(
    server: str, *, transport: httpx.AsyncBaseTransport | None = None, timeout: float = 30.0
) -> httpx.AsyncClient:
    """The HTTP client for ``server``; the caller closes it (``aclose`` or ``async with``)."""
    return httpx.AsyncClient(
        base_url=server.rstrip("/"),
        timeout=httpx.Timeout(timeout, connect=5.0),
        transport=transport,
        headers={"Content-Type": "application/json"},
    )


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def detail_of(response: httpx.Response) -> str:
    """The ``detail`` of an error answer, or the start of a body that has none."""
    try:
        return str(msgspec.json.decode(response.content).get("detail", ""))
    except (msgspec.DecodeError, AttributeError):
        return response.content[:200].decode(errors="replace")


def body_of(response: httpx.Response) -> Any:
    return msgspec.json.decode(response.content)


@asynccontextmanager
async def live_lines(
    http: httpx.AsyncClient, token: str, since: str | None = None
) -> AsyncIterator[AsyncIterator[str]]:
    """The lines of ``/v1/sync/live`` (with ``since``, a pull cursor: ``event: changes``
    pages from it); any failure, at once or later, is an ``httpx.HTTPError``."""
    headers = {**bearer(token), "Accept": "text/event-stream"}
    params = {"since": since} if since is not None else None
    async with http.stream(
        "GET", "/v1/sync/live", headers=headers, params=params, timeout=LIVE_TIMEOUT
    ) as response:
        if response.status_code != 200:
            await response.aread()
            raise httpx.HTTPStatusError(
                f"live: HTTP {response.status_code}", request=response.request, response=response
            )
        yield response.aiter_lines()


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-Sent Events as (event, data) pairs; comments (keep-alives) are skipped."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if event or data:
                yield event or "message", "\n".join(data)
            event = ""
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
