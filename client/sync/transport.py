"""The engine's one seam to the network: a ``Transport`` does HTTP requests and opens the
live stream. ``HttpxTransport`` is the real one; tests and the conflict tool may wrap it
(cut a device off, count requests) without touching the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import msgspec

from client.errors import ClientError


class TransportError(ClientError):
    """The server could not be reached, or the connection broke."""


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    def detail(self) -> str:
        try:
            return str(self.json().get("detail", ""))
        except (msgspec.DecodeError, AttributeError):
            return self.body[:200].decode(errors="replace")


class Transport(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Reply: ...

    def live(self, token: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """The lines of ``/v1/sync/live``."""
        ...

    async def close(self) -> None: ...


class HttpxTransport:
    def __init__(
        self,
        server: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: httpx's own seam (tests put an ``httpx.MockTransport`` there)."""
        self._client = httpx.AsyncClient(
            base_url=server.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Reply:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.request(
                method, path, content=body, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return Reply(response.status_code, response.content, dict(response.headers))

    @asynccontextmanager
    async def live(self, token: str) -> AsyncIterator[AsyncIterator[str]]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        timeout = httpx.Timeout(60.0, connect=5.0)  # the server comments every 15 s
        try:
            async with self._client.stream(
                "GET", "/v1/sync/live", headers=headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise TransportError(f"live: HTTP {response.status_code}")
                yield _lines(response)
        except httpx.HTTPError as exc:
            raise TransportError(f"live: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    try:
        async for line in response.aiter_lines():
            yield line
    except httpx.HTTPError as exc:
        raise TransportError(f"live: {type(exc).__name__}: {exc}") from exc
