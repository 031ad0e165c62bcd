"""Raw nats-py on the backend's own nats-server: the baselines the stream-bound scenarios
are measured against. A stream of their own (``BENCH_BASELINE``, file storage like
``OUTPOST_EVENTS``, and ``Nats-Msg-Id`` on every message as the BFF sets it) keeps their
messages away from the projector; it is deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext

from backend.nats import DEFAULT_DUPLICATE_WINDOW_S
from outpost.bench.harness import BenchError

STREAM = "BENCH_BASELINE"
SUBJECT = "bench.baseline"


class RawJetStream:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self._ids = 0

    def _msg_id(self) -> str:
        self._ids += 1
        return f"bench-{time.time_ns()}-{self._ids}"

    async def publish_one_at_a_time(self, bodies: list[bytes]) -> float:
        """Seconds to publish every body, awaiting each acknowledgement before the next."""
        started = time.perf_counter()
        for body in bodies:
            await self.js.publish(f"{SUBJECT}.seq", body, headers={"Nats-Msg-Id": self._msg_id()})
        return time.perf_counter() - started

    async def publish_pipelined(self, bodies: list[bytes], window: int = 500) -> float:
        """Seconds to publish every body ``window`` at a time, each acknowledged, the way
        the BFF publishes one push batch: send them all, then await the acks together."""
        started = time.perf_counter()
        for start in range(0, len(bodies), window):
            futures = [
                await self.js.publish_async(
                    f"{SUBJECT}.pipe", body, headers={"Nats-Msg-Id": self._msg_id()}
                )
                for body in bodies[start : start + window]
            ]
            acks = await asyncio.gather(*futures)
            if len(acks) != len(futures):
                raise BenchError("raw JetStream: an acknowledgement is missing")
        return time.perf_counter() - started

    async def publish_atomic(self, bodies: list[bytes], batch: int = 500) -> float | None:
        """Seconds to publish every body in atomic batches of ``batch`` (one acknowledgement
        per batch), as the BFF stores a push; None when the server does not take them."""
        started = time.perf_counter()
        for start in range(0, len(bodies), batch):
            chunk = bodies[start : start + batch]
            batch_id = f"bench-{time.time_ns()}"
            for number, body in enumerate(chunk[:-1], start=1):
                headers = {
                    "Nats-Msg-Id": self._msg_id(),
                    "Nats-Batch-Id": batch_id,
                    "Nats-Batch-Sequence": str(number),
                }
                await self.nc.publish(f"{SUBJECT}.atomic", body, headers=headers)
            headers = {
                "Nats-Msg-Id": self._msg_id(),
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(len(chunk)),
                "Nats-Batch-Commit": "1",
            }
            reply = await self.nc.request(f"{SUBJECT}.atomic", chunk[-1], 10, headers=headers)
            answer = json.loads(reply.data)
            if "error" in answer or answer.get("count") != len(chunk):
                return None
        return time.perf_counter() - started

    async def delivery_latencies(self, body: bytes, count: int, rate: float) -> list[float]:
        """ms from a publish to its delivery to a subscriber of the stream, at ``rate``/s."""
        arrived: dict[int, float] = {}
        done = asyncio.Event()

        async def on_message(message: Msg) -> None:
            index = int(message.header["Bench-Index"]) if message.header else -1
            arrived[index] = time.perf_counter()
            if len(arrived) >= count:
                done.set()

        subscription = await self.js.subscribe(
            f"{SUBJECT}.latency", cb=on_message, ordered_consumer=True
        )
        try:
            sent: dict[int, float] = {}
            started = time.perf_counter()
            for index in range(count):
                await _sleep_until(started + index / rate)
                sent[index] = time.perf_counter()
                headers = {"Nats-Msg-Id": self._msg_id(), "Bench-Index": str(index)}
                await self.js.publish(f"{SUBJECT}.latency", body, headers=headers)
            await asyncio.wait_for(done.wait(), timeout=30)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        return [(arrived[i] - sent[i]) * 1000 for i in range(count)]


async def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


@asynccontextmanager
async def raw_jetstream(url: str) -> AsyncIterator[RawJetStream]:
    """A connection with the baseline stream made, and removed on the way out."""
    nc = await nats.connect(url, name="outpost-bench", connect_timeout=5)
    try:
        jsm = nc.jsm()
        with contextlib.suppress(Exception):
            await jsm.delete_stream(STREAM)
        await jsm.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=[f"{SUBJECT}.>"],
                storage=StorageType.FILE,
                duplicate_window=DEFAULT_DUPLICATE_WINDOW_S,
                allow_atomic=True,
            )
        )
        try:
            yield RawJetStream(nc)
        finally:
            with contextlib.suppress(Exception):
                await jsm.delete_stream(STREAM)
    finally:
        await nc.close()
