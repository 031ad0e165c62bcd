"""A real HTTP receiver of webhooks for the tests: it answers each request with the next
status of its plan (then 200), and keeps every request it got."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[int]] = {}
        """Path -> statuses to answer, in order; then 200."""
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    plan = receiver.plans.get(self.path, [])
                    status = plan.pop(0) if plan else 200
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait(
        self, path: str, until: Callable[[list[Received]], bool], timeout: float = 20
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.at(path)
            if until(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: the receiver got {len(got)} requests: {got}")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
