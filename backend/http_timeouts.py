"""Header and body read timeouts for the BFF's HTTP server (SPEC 6: "Requests must send their
headers and body within a timeout").

uvicorn has none (encode/uvicorn#157): a client that sends half a request line, or its
headers and half a body, keeps a connection and a file descriptor for as long as it likes,
and a thousand of them exhaust the process. ASGI middleware cannot help, since the app sees a
request only once its headers are complete. So ``TimedH11Protocol`` subclasses uvicorn's
HTTP/1.1 protocol (h11, the one uvicorn runs here) and gives every request two deadlines:

- its headers must be complete within ``header_timeout_s`` of its first byte (for the first
  request of a connection, of the connection itself: a client that sends nothing is slow too);
- its body must be complete within ``body_timeout_s`` of the end of its headers, plus one
  second for every ``body_min_rate`` bytes that have arrived by then: a client on a slow link
  keeps its request as long as it sends at that rate (a 1 MiB push at 8 KB/s takes 2 minutes,
  and must not be refused for ever), while one that trickles a byte at a time is cut off.

When one passes, a request whose response has not started gets a 408 with the usual JSON
error body, and the connection closes; otherwise the connection just closes. Only reading the
request is timed: a response may take as long as it likes, so ``/v1/sync/live`` streams for
ever. Between requests on a kept-alive connection, uvicorn's own keep-alive timeout applies.

Other servers were weighed: hypercorn's ``read_timeout`` bounds each read, so a byte every
few seconds keeps a request open for ever; granian bounds HTTP/1 headers but not bodies. Both
would also replace the server that the backend's orderly shutdown is built around.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["TimedH11Protocol", "timed_h11_protocol"]

log = logging.getLogger("outpost.http")


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header and a body deadline for every request."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_rate: float = 4096.0
    """Bytes per second of body that extend its deadline by a second each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: str | None = None  # "headers" or "body" while a deadline runs
        self._body_started = 0.0
        self._body_bytes = 0  # received since the body's deadline started

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start("headers", self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading == "body":
            self._body_bytes += len(data)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have been read from the buffer

    def _follow(self) -> None:
        """Move the deadline along with what h11 has read of the current request."""
        state = self.conn.their_state
        if state is h11.IDLE:
            # Part of a request line or headers waits in the buffer: its first byte came in
            # this call (or it is the connection's first request, timed since it was made).
            # With nothing buffered the connection is idle between requests, which uvicorn's
            # keep-alive timeout bounds.
            if self.conn.trailing_data[0] and self._reading != "headers":
                self._start("headers", self.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._reading != "body":
                self._start("body", self.body_timeout_s)
                self._body_started, self._body_bytes = self.loop.time(), 0
        else:  # DONE, MUST_CLOSE, CLOSED, ERROR: this request is read, or it is over
            self._stop()

    def _start(self, reading: str, timeout_s: float) -> None:
        self._stop()
        self._reading = reading
        self._deadline = self.loop.call_later(timeout_s, self._expired, reading, timeout_s)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._reading = None, None

    def _expired(self, reading: str, timeout_s: float) -> None:
        if reading == "body":
            earned = self._body_bytes / self.body_min_rate if self.body_min_rate > 0 else 0.0
            deadline = self._body_started + timeout_s + earned
            if deadline > self.loop.time():  # it kept sending at the rate: more time
                self._deadline = self.loop.call_at(deadline, self._expired, reading, timeout_s)
                return
            timeout_s = self.loop.time() - self._body_started
        self._deadline, self._reading = None, None
        if self.transport.is_closing():
            return
        log.debug("closing %s: its request %s took over %.1fs", self.client, reading, timeout_s)
        cycle = self.cycle  # for headers: the previous request's, long answered
        if reading == "headers" or (cycle is not None and not cycle.response_started):
            self.transport.write(_request_timeout(reading, timeout_s))
        if reading == "body" and cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's next receive() says http.disconnect
            cycle.message_event.set()
        self.transport.close()


def _request_timeout(reading: str, timeout_s: float) -> bytes:
    detail = f"the request's {reading} did not arrive within {timeout_s:g} s"
    body = json.dumps({"status_code": 408, "detail": detail}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def timed_h11_protocol(
    *, header_timeout_s: float, body_timeout_s: float, body_min_rate: float = 4096.0
) -> type[H11Protocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``, with these deadlines."""
    return type(
        "TimedH11Protocol",
        (TimedH11Protocol,),
        {
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
            "body_min_rate": body_min_rate,
        },
    )
