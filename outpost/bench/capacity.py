"""The figures the README's capacity model is built on, measured on this machine:

- events per second that **one BFF process** accepts (``outpost backend`` with no stream
  consumers, ``OUTPOST_COMPONENTS=``), from devices pushing one event per request (what a
  user's action is) and in batches of 50 (a device back online), several devices at once;
- events per second that **one stream consumer** applies (``outpost backend consume
  --components NAME``, alone in its process, from its own fresh database), for each
  component in ``backend/components.py``, from a stream that already holds the events.

Every part is real: the embedded nats-server (``sync_interval: always``), SQLite files, HTTP.
Each part runs alone so it has the machine's cores to itself as far as the machine allows
(it is shared: the figures are what it gave at the time, and are printed with the load).

    python -m outpost.bench.capacity [--events 6000] [--devices 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nats
import nats.js.errors

from backend.components import NAMES
from backend.launcher import BackendLauncher
from backend.nats import EmbeddedNats
from backend.nats.streams import EVENTS_STREAM
from outpost.bench.harness import BENCH_ENV, PASSWORD, BenchError, progress
from outpost.bench.seed import Seeder

CAPACITY_ENV = {
    **BENCH_ENV,
    "OUTPOST_RATE_LIMIT_PER_S": "1000000",  # one event a request, thousands a second
    "OUTPOST_RATE_LIMIT_BURST": "1000000",
    "OUTPOST_SIGNUP_LIMIT": "1000000",  # every scripted device signs up from 127.0.0.1
}
"""The capacity model measures how many events a process takes, not what a user may send:
the per-user limits are raised for it (``outpost bench`` keeps them)."""


@dataclass
class Figures:
    machine: str
    load_before: tuple[float, float, float]
    events: int
    devices: int
    bff_single: float = 0.0
    """Events/s one BFF accepted, one event per push."""
    bff_batch50: float = 0.0
    """Events/s one BFF accepted, 50 events per push."""
    consumers: dict[str, float] = field(default_factory=dict)
    """Events/s each consumer applied, alone."""
    stream_bytes_per_event: float = 0.0
    """What one event takes on the stream (JetStream's own count, headers included)."""
    bytes_per_event: dict[str, float] = field(default_factory=dict)
    """The data folder of the BFF and of each consumer after the run (SQLite files and,
    for the lake, its archive), divided by the events on the stream."""
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


async def _devices(url: str, count: int) -> list[tuple[Seeder, str, list[str]]]:
    """``count`` scripted devices, each a user with a board of 50 tasks (set-up)."""
    import httpx

    made = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for n in range(count):
            username = f"cap{os.getpid()}x{n}"
            reply = await http.post(
                "/v1/auth/signup", json={"username": username, "password": PASSWORD}
            )
            if reply.status_code != 201:
                raise BenchError(f"signup: HTTP {reply.status_code} {reply.text}")
            seeder = Seeder(url, reply.json()["token"])
            board = await seeder.board(f"Capacity {n}")
            made.append((seeder, board, await seeder.tasks(board, 50)))
    return made


async def _push_rate(
    devices: list[tuple[Seeder, str, list[str]]], events: int, batch: int
) -> float:
    """Events/s accepted while every device pushes its share, ``batch`` events a request."""
    share = events // len(devices)

    async def one(seeder: Seeder, board: str, tasks: list[str]) -> None:
        bodies = [
            seeder.event(
                "TaskUpdated", board, tasks[i % len(tasks)], {"fields": {"priority": i % 5}}
            )
            for i in range(share)
        ]
        for start in range(0, share, batch):
            await seeder.push(bodies[start : start + batch])

    started = time.perf_counter()
    await asyncio.gather(*(one(*device) for device in devices))
    return share * len(devices) / (time.perf_counter() - started)


async def _acked(url: str, durable: str) -> int:
    nc = await nats.connect(url)
    try:
        try:
            info = await nc.jetstream().consumer_info(EVENTS_STREAM, durable)
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.ack_floor.stream_seq or 0)
    finally:
        await nc.close()


async def _last_seq(url: str) -> int:
    return (await _stream_state(url))[0]


async def _stream_state(url: str) -> tuple[int, int]:
    """(last seq, bytes) of the events stream."""
    nc = await nats.connect(url)
    try:
        state = (await nc.jetstream().stream_info(EVENTS_STREAM)).state
        return int(state.last_seq), int(state.bytes)
    finally:
        await nc.close()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix != ".log")


async def _consume_rate(root: Path, url: str, name: str) -> float:
    """Events/s ``name`` applies alone: from its first acknowledged batch to the last event
    (its start-up, migrations and connection are not counted)."""
    last = await _last_seq(url)
    data = root / f"consumer-{name}"
    data.mkdir()
    command = [sys.executable, "-m", "outpost", "backend", "consume", "--components", name]
    command += ["--data-dir", str(data), "--nats-url", url]
    with (data / "consume.log").open("ab") as log:
        env = {**os.environ, **CAPACITY_ENV}
        child = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        first_seq, first_at = 0, 0.0
        deadline = time.monotonic() + 600
        while True:
            acked = await _acked(url, name)
            now = time.perf_counter()
            if acked and not first_seq:
                first_seq, first_at = acked, now
            if acked >= last:
                break
            if child.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{name} stopped at seq {acked} of {last}: see {data}/consume.log")
            await asyncio.sleep(0.05)
        if now <= first_at:
            raise BenchError(f"{name} took the whole stream in one batch: give more --events")
        return (last - first_seq) / (now - first_at)
    finally:
        child.terminate()
        child.wait(30)


async def measure(events: int, devices: int) -> Figures:
    figures = Figures(_machine(), os.getloadavg(), events, devices)
    root = Path(tempfile.mkdtemp(prefix="outpost-capacity-"))
    server = EmbeddedNats(root / "nats", stop_timeout_s=10)
    await server.start(supervise=False)
    try:
        bff = BackendLauncher(
            root / "bff", nats_url=server.url, env={**CAPACITY_ENV, "OUTPOST_COMPONENTS": ""}
        )
        await asyncio.to_thread(bff.start)
        try:
            made = await _devices(bff.url, devices)
            progress(f"one BFF: {events:,} events, one per push, from {devices} devices")
            figures.bff_single = await _push_rate(made, events, 1)
            progress(f"one BFF: {events:,} events, 50 per push")
            figures.bff_batch50 = await _push_rate(made, events, 50)
            for seeder, _, _ in made:
                await seeder.close()
        finally:
            await asyncio.to_thread(bff.stop)
        last, stream_bytes = await _stream_state(server.url)
        figures.stream_bytes_per_event = stream_bytes / last
        figures.bytes_per_event["bff"] = _folder_bytes(root / "bff") / last
        for name in NAMES:
            progress(f"consumer {name} alone, from seq 1 to {last:,}")
            figures.consumers[name] = await _consume_rate(root, server.url, name)
            figures.bytes_per_event[name] = _folder_bytes(root / f"consumer-{name}") / last
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)
    figures.load_after = os.getloadavg()
    return figures


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outpost.bench.capacity", description=__doc__)
    parser.add_argument(
        "--events", type=int, default=6000, help="events per BFF run (default 6000)"
    )
    parser.add_argument(
        "--devices", type=int, default=8, help="devices pushing at once (default 8)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.events, args.devices))
    print(
        f"machine: {figures.machine}; load average before {figures.load_before}, "
        f"after {figures.load_after}"
    )
    print(f"one BFF, one event per push:   {figures.bff_single:8,.0f} events/s")
    print(f"one BFF, 50 events per push:   {figures.bff_batch50:8,.0f} events/s")
    for name, rate in figures.consumers.items():
        print(f"consumer {name + ':':<22}{rate:8,.0f} events/s")
    print(f"bytes per event on the stream: {figures.stream_bytes_per_event:,.0f}")
    for name, size in figures.bytes_per_event.items():
        print(f"bytes per event in {name}'s data folder: {size:,.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
