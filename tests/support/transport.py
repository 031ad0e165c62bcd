"""Transports for device tests, at httpx's own seam (``httpx.AsyncBaseTransport``): the real
one, remembering what it pushed and got back; and the same where a test may answer chosen
requests itself (a 500, a 503) while every other request goes to the real backend."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.pushes: list[bytes] = []
        self.statuses: list[int] = []
        self.most_pushes_at_once = 0
        """The most push requests that were out together (awaiting their answers)."""
        self._pushes_out = 0

    def push_sizes(self) -> list[tuple[int, int]]:
        """(events, bytes) of every push sent."""
        return [(len(msgspec.json.decode(body)["events"]), len(body)) for body in self.pushes]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        push = request.url.path == "/v1/sync/push"
        if not push:
            return await self.inner.handle_async_request(request)
        self.pushes.append(request.content)
        self._pushes_out += 1
        self.most_pushes_at_once = max(self.most_pushes_at_once, self._pushes_out)
        try:
            response = await self.inner.handle_async_request(request)
        finally:
            self._pushes_out -= 1
        self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


Answer = Callable[[httpx.Request], httpx.Response | None]


class AnsweringTransport(RecordingTransport):
    """``answer`` sees every request and may answer it (None: the real backend answers,
    over real HTTP)."""

    def __init__(self) -> None:
        super().__init__(AnswerFirst(self))
        self.answer: Answer = lambda _request: None


class AnswerFirst(httpx.AsyncBaseTransport):
    """Below the recorder, so what a test answers is recorded as the server's answer."""

    def __init__(self, owner: AnsweringTransport) -> None:
        self._owner = owner
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        made = self._owner.answer(request)
        return made if made is not None else await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def error(status: int, detail: str, **headers: str) -> httpx.Response:
    """An error answer shaped as the backend's: ``{"status_code", "detail"}``."""
    return httpx.Response(status, json={"status_code": status, "detail": detail}, headers=headers)
