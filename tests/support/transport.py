"""Transports for device tests: the real one, remembering what it pushed and got back; and
the same with httpx's ``MockTransport`` at its seam, so a test can answer chosen requests
itself (a 500, a 503) while every other request goes to the real backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import msgspec

from client.sync.transport import HttpxTransport, Reply


class RecordingTransport:
    def __init__(self, server: str, inner: HttpxTransport | None = None) -> None:
        self.inner = inner or HttpxTransport(server)
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


Answer = Callable[[httpx.Request], httpx.Response | None]


class AnsweringTransport(RecordingTransport):
    """``HttpxTransport`` over ``httpx.MockTransport``: ``answer`` sees every request and
    may answer it (None: the real backend answers, over real HTTP). No live stream."""

    def __init__(self, server: str) -> None:
        super().__init__(
            server, HttpxTransport(server, transport=httpx.MockTransport(self._handle))
        )
        self.answer: Answer = lambda _request: None
        self._real = httpx.AsyncClient(timeout=30)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        made = self.answer(request)
        if made is not None:
            return made
        forwarded = self._real.build_request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        return await self._real.send(forwarded)

    async def close(self) -> None:
        await super().close()
        await self._real.aclose()


def error(status: int, detail: str, **headers: str) -> httpx.Response:
    """An error answer shaped as the backend's: ``{"status_code", "detail"}``."""
    return httpx.Response(status, json={"status_code": status, "detail": detail}, headers=headers)
