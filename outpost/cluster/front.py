"""A small round-robin TCP front over the BFF processes, as a load balancer would be.

Each new connection goes to the next BFF that is up; one that refuses is skipped, so when a
BFF dies its clients' next connections land on another. Bytes are copied both ways as they
come (live streams included), and a connection ends when either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger("outpost.cluster.front")

_CONNECT_TIMEOUT_S = 2.0
_CHUNK = 64 * 1024


class Front:
    def __init__(self, bffs_up: Callable[[], list[tuple[str, int]]]) -> None:
        self._bffs_up = bffs_up
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        candidates = self._bffs_up()
        if not candidates:
            return None
        first = next(self._turn)
        for k in range(len(candidates)):
            host, port = candidates[(first + k) % len(candidates)]
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(host, port), _CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                continue
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections += 1
        try:
            upstream = await self._connect()
            if upstream is None:
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
                )
                with contextlib.suppress(OSError):
                    await writer.drain()
                return
            up_reader, up_writer = upstream
            pipes = {
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            }
            try:
                # HTTP neither side half-closes: when one side ends, the connection is over.
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                up_writer.close()
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            self._connections.discard(task)


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    """Copy until the source ends or either side fails."""
    with contextlib.suppress(OSError):
        while data := await source.read(_CHUNK):
            target.write(data)
            await target.drain()
