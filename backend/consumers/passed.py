"""How far a consumer of this process has passed in the stream, for whoever waits on it.

The push of an interactive action waits on the projector beside the BFF (``PushService``'s
``shown``, up to ``SHOWN_WAIT_S``): its answer is sent once the projector has committed the
action's events and handed their change notice to the live hub, so the answer's watermark
already covers them, and the pages to the other devices are written before the push's
answer takes the event loop. Without it, the push's answer (reading the views' status,
writing the response) ran in the moment between the stream's acknowledgement and the
projector's fetch, and every other device waited about a millisecond more for it.
"""

from __future__ import annotations

import asyncio

__all__ = ["Passed"]


class Passed:
    """The last stream seq a consumer has passed (committed, and its notice given)."""

    def __init__(self) -> None:
        self.seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def advance(self, seq: int) -> None:
        """The consumer is past ``seq``: wake whoever waits for it or less."""
        if seq <= self.seq:
            return
        self.seq = seq
        waiting = []
        for target, future in self._waiters:
            if target > seq:
                waiting.append((target, future))
            elif not future.done():
                future.set_result(None)
        self._waiters = waiting

    async def wait_past(self, seq: int, timeout_s: float) -> bool:
        """Until the consumer is past ``seq`` (True), or ``timeout_s`` passed (False)."""
        if self.seq >= seq:
            return True
        future = asyncio.get_running_loop().create_future()
        entry = (seq, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout_s):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
