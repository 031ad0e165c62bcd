"""A share of the fan-out scenario's live connections, in a process of its own, so that
reading a thousand streams is not the bench's one event loop's work (issue 15: the bench
must not be the bottleneck of what it measures).

Driven over its standard input and output, one line each way at a time:

- in: a JSON object ``{"host", "port", "connections": [[token, cursor], ...]}``; out:
  ``ready`` once every connection is open;
- in: ``arm``; out: ``armed``, then ``done <t>`` when every connection has had its page of
  changes (or a poke), ``t`` the ``time.perf_counter()`` of the last (one clock for every
  process of the machine: CLOCK_MONOTONIC), or ``timeout <n>`` with how many had none
  after 30 s;
- in: ``close`` (or the end of input): close them all and exit.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

from outpost.bench.sse import LiveConnection

OPEN_AT_ONCE = 100
ROUND_TIMEOUT_S = 30.0
SETUP_LIMIT = 64 * 1024 * 1024
"""The longest line read: the setup names every connection's token and cursor."""


class _Setup(msgspec.Struct):
    host: str
    port: int
    connections: list[tuple[str, str]]


class Countdown:
    """Set ``done`` once ``hit`` was called ``count`` times."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.done.set()


async def _line(reader: asyncio.StreamReader) -> str:
    return (await reader.readline()).decode().strip()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=SETUP_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    setup = msgspec.json.decode(await reader.readline(), type=_Setup)
    connections = [
        LiveConnection(setup.host, setup.port, token, cursor) for token, cursor in setup.connections
    ]

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    try:
        for start in range(0, len(connections), OPEN_AT_ONCE):
            await asyncio.gather(*(c.open() for c in connections[start : start + OPEN_AT_ONCE]))
        say("ready")
        while await _line(reader) == "arm":
            everyone = Countdown(len(connections))
            for connection in connections:
                connection.arm(everyone.hit)
            say("armed")
            try:
                await asyncio.wait_for(everyone.done.wait(), timeout=ROUND_TIMEOUT_S)
            except TimeoutError:
                say(f"timeout {everyone.remaining}")
                continue
            say(f"done {max(c.poked_at or 0.0 for c in connections)!r}")
    finally:
        await asyncio.gather(*(c.close() for c in connections))


if __name__ == "__main__":
    asyncio.run(main())
