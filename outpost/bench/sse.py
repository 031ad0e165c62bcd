"""Live connections without a client library: one asyncio socket per ``/v1/sync/live``
stream, light enough for a thousand of them in the bench's one process. With a cursor
(``since``) the stream carries ``event: changes`` pages, as devices use it by default."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import quote

from outpost.bench.harness import BenchError

POKE = b"event: poke"
CHANGES = b"event: changes"


class LiveConnection:
    """One SSE stream; ``poked_at`` is when the first poke or page of changes after ``arm()``
    arrived."""

    def __init__(self, host: str, port: int, token: str, since: str | None = None) -> None:
        self.host, self.port, self.token = host, port, token
        self.since = since
        self.poked_at: float | None = None
        self.armed = False
        self.on_poke: Callable[[], None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def open(self, timeout_s: float = 30) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout_s
        )
        self._writer = writer
        path = "/v1/sync/live" if self.since is None else f"/v1/sync/live?since={quote(self.since)}"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise BenchError(f"live stream: HTTP {status.decode()}: {head[:200]!r}")
        self._reader_task = asyncio.create_task(self._read(reader))
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    def arm(self, on_poke: Callable[[], None] | None = None) -> None:
        """Note the next poke from now on (and call ``on_poke`` then)."""
        self.poked_at = None
        self.on_poke = on_poke
        self.armed = True

    async def _read(self, reader: asyncio.StreamReader) -> None:
        tail = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            data = tail + chunk
            if b": connected" in data:
                self._connected.set()
            if self.armed and (POKE in data or CHANGES in data):
                self.armed = False
                self.poked_at = now
                if self.on_poke is not None:
                    self.on_poke()
            tail = data[-len(CHANGES) :]

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
