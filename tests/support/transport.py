"""A transport for device tests: the real one, remembering what it pushed and got back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec

from client.sync.transport import HttpxTransport, Reply


class RecordingTransport:
    def __init__(self, server: str) -> None:
        self.inner = HttpxTransport(server)
        self.pushes: list[bytes] = []
        self.statuses: list[int] = []

    def push_sizes(self) -> list[tuple[int, int]]:
        """(events, bytes) of every push sent."""
        return [(len(msgspec.json.decode(body)["events"]), len(body)) for body in self.pushes]

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Reply:
        if path == "/v1/sync/push" and body is not None:
            self.pushes.append(body)
        reply = await self.inner.request(method, path, body=body, params=params, token=token)
        if path == "/v1/sync/push":
            self.statuses.append(reply.status)
        return reply

    def live(self, token: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        return self.inner.live(token)

    async def close(self) -> None:
        await self.inner.close()
