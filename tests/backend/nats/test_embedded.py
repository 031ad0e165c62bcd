"""The embedded nats-server: ports, durability settings, supervision and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import nats.errors
import pytest

from backend.nats import (
    EVENTS_STREAM,
    EmbeddedNats,
    NatsStartError,
    StoreInUseError,
    ensure_streams,
    event_subject,
)
from tests.backend.nats.store_processes import nats_servers_on, wait_for_servers
from tests.support.nats import connected, run, running_nats, wait_until

pytestmark = pytest.mark.integration


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starts_on_a_free_loopback_port_with_jetstream_on(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server:
            varz = await server.monitor("varz")
            assert server.url == f"nats://127.0.0.1:{varz['port']}"
            assert varz["host"] == "127.0.0.1"
            assert varz["port"] not in (4222, 8222)
            assert varz["http_port"] not in (4222, 8222)
            assert server.monitor_url == f"http://127.0.0.1:{varz['http_port']}"
            async with connected(server) as nc:
                account = await nc.jetstream().account_info()
            assert account.limits is not None

    run(body())


def test_the_running_server_fsyncs_every_jetstream_write(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server:
            # Reported by the server itself: /varz jetstream.config.sync_always, set only by
            # `sync_interval: always` (the Go field is omitempty, absent otherwise).
            varz = await server.monitor("varz")
            jsz = await server.monitor("jsz")
        assert varz["jetstream"]["config"]["sync_always"] is True
        assert jsz["config"]["sync_always"] is True
        assert Path(varz["jetstream"]["config"]["store_dir"]).is_relative_to(nats_store.resolve())

    run(body())


def test_stop_ends_the_process_and_is_idempotent(nats_store: Path) -> None:
    async def body() -> None:
        server = EmbeddedNats(nats_store)
        await server.stop()  # never started: nothing to do
        await server.start()
        pid = server.pid
        assert pid is not None and _process_exists(pid)
        await server.stop()
        assert not server.running
        assert not _process_exists(pid)
        await server.stop()
        assert not server.running

    run(body())


def test_the_context_manager_stops_the_server_when_the_body_raises(nats_store: Path) -> None:
    pids: list[int] = []

    async def body() -> None:
        async with EmbeddedNats(nats_store) as server:
            assert server.pid is not None
            pids.append(server.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(body())
    assert pids and not _process_exists(pids[0])


def test_a_taken_port_fails_start_with_the_log_tail(nats_store: Path) -> None:
    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            server = EmbeddedNats(nats_store, port=taken.getsockname()[1])
            try:
                with pytest.raises(NatsStartError, match="address already in use"):
                    await server.start()
                assert not server.running
            finally:
                await server.stop()

    run(body())


def test_restart_keeps_the_url_and_the_store(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server:
            url, pid = server.url, server.pid
            async with connected(server) as nc:
                js = nc.jetstream()
                await ensure_streams(js)
                ack = await js.publish(event_subject("b1"), b"kept")
                await server.restart()
                assert (server.url, server.restarts) == (url, 0)
                assert server.pid != pid
                await wait_until(lambda: nc.is_connected, what="the client to reconnect")
                stored = await js.get_msg(EVENTS_STREAM, ack.seq)
            assert stored.data == b"kept"

    run(body())


def test_sigkill_during_a_burst_loses_no_acknowledged_message(nats_store: Path) -> None:
    run(_sigkill_during_a_burst(nats_store))


async def _sigkill_during_a_burst(store: Path) -> None:
    async with running_nats(store) as server, connected(server) as nc:
        js = nc.jetstream()
        await ensure_streams(js)
        url, first_pid = server.url, server.pid
        acked: dict[int, bytes] = {}
        done = asyncio.Event()

        async def publisher(name: int) -> None:
            n = 0
            while not done.is_set():
                payload = f"publisher-{name}-message-{n}".encode()
                n += 1
                try:
                    ack = await js.publish(event_subject("burst"), payload, timeout=2.0)
                except (nats.errors.Error, TimeoutError):
                    continue  # not acknowledged: the stream owes us nothing for it
                assert ack.seq not in acked, "two acknowledged messages share a sequence"
                acked[ack.seq] = payload

        publishers = [asyncio.create_task(publisher(i)) for i in range(8)]
        try:
            await wait_until(lambda: len(acked) >= 50, what="acks before the kill")
            server.kill()
            acked_at_kill = len(acked)
            await wait_until(lambda: server.restarts == 1, what="the supervisor to restart")
            await wait_until(lambda: len(acked) >= acked_at_kill + 50, what="acks after restart")
        finally:
            done.set()
            await asyncio.gather(*publishers)

        assert server.url == url and server.pid != first_pid
        assert nc.is_connected and nc.stats["reconnects"] >= 1
        stored = {seq: (await js.get_msg(EVENTS_STREAM, seq)).data for seq in sorted(acked)}
        assert stored == acked
        info = await js.stream_info(EVENTS_STREAM)
        assert info.state.messages >= len(acked)


def test_a_second_server_on_a_store_in_use_is_refused_naming_the_first(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as first:
            second = EmbeddedNats(nats_store)
            named = f"nats-server pid {first.pid} at {first.url}"
            with pytest.raises(StoreInUseError, match=named):
                await second.start()
            assert nats_servers_on(nats_store) == [first.pid]
            assert not second.running
        async with running_nats(nats_store) as third:  # free again once the first stopped
            assert nats_servers_on(nats_store) == [third.pid]

    run(body())


_STARTER = """
import asyncio, sys
from pathlib import Path
from backend.nats import EmbeddedNats

async def main() -> None:
    server = EmbeddedNats(Path(sys.argv[1]))
    await server.start()
    print(server.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_the_server_dies_with_the_process_that_started_it(nats_store: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER, str(nats_store)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert starter.stdout is not None
        pid = int(starter.stdout.readline())
        assert nats_servers_on(nats_store) == [pid]
        starter.send_signal(signal.SIGKILL)
        starter.wait(10)
        wait_for_servers(nats_store, 0, timeout_s=15)
    finally:
        starter.kill()
        for leftover in nats_servers_on(nats_store):
            os.kill(leftover, signal.SIGKILL)


def test_the_next_server_on_a_store_listens_on_the_port_of_the_last(nats_store: Path) -> None:
    """A client of a server that stopped (a command beside a backend that restarted)
    finds the next one at the same URL, if that port is still free."""

    async def body() -> None:
        async with running_nats(nats_store) as first:
            url = first.url
        async with running_nats(nats_store) as second:
            assert second.url == url

    run(body())
