"""Who does what in a running local cluster: the stream leader, the consumers' lease holders.

The stream leader is what JetStream's stream info says for ``OUTPOST_EVENTS``. A consumer's
lease is a PostgreSQL advisory lock held by one of its connections (``Database.try_lease``):
the lock's session names its client port (``pg_stat_activity``), and the process whose
socket has that local port (``/proc``) is the holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Any

import nats
from sqlalchemy.engine import make_url

from backend.nats.streams import EVENTS_STREAM
from outpost.cluster.state import State, alive

_TIMEOUT_S = 3.0


async def stream_leader(state: State, stream: str = EVENTS_STREAM) -> str | None:
    """The server name of the node that leads ``stream`` now (None if none does)."""
    try:
        nc = await nats.connect(
            state.nats_urls, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False
        )
    except Exception:
        return None
    try:
        info = await asyncio.wait_for(nc.jetstream().stream_info(stream), _TIMEOUT_S)
        return info.cluster.leader if info.cluster is not None else None
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def lease_holders(state: State, components: list[str]) -> dict[str, int]:
    """component -> pid of the consumer process that holds its lease now."""
    import asyncpg

    if not state.db_url:
        return {}
    url = make_url(state.db_url)
    try:
        connection = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=_TIMEOUT_S,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return {}
    try:
        rows = await connection.fetch(
            """
            SELECT names.name, activity.client_port
            FROM pg_locks AS locks
            JOIN pg_stat_activity AS activity ON activity.pid = locks.pid
            JOIN unnest($1::text[]) AS names(name)
              ON locks.objid::bigint = (hashtext('outpost:' || names.name)::bigint & 4294967295)
            WHERE locks.locktype = 'advisory' AND locks.granted
            """,
            components,
        )
    finally:
        await connection.close()
    ports = {int(row["client_port"]): str(row["name"]) for row in rows if row["client_port"]}
    holders: dict[str, int] = {}
    for part in state.of_kind("consumer"):
        if part.pid is None or not alive(part.pid):
            continue
        for port in local_ports(part.pid):
            if port in ports:
                holders[ports[port]] = part.pid
    return holders


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of ``pid``'s sockets (Linux ``/proc``; empty elsewhere)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                match = re.fullmatch(r"socket:\[(\d+)\]", target)
                if match:
                    inodes.add(match.group(1))
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def roles(state: State) -> dict[str, str]:
    components = sorted({str(p.extra.get("component")) for p in state.of_kind("consumer")})
    leader, holders = await asyncio.gather(stream_leader(state), lease_holders(state, components))
    found: dict[str, str] = {}
    for part in state.parts:
        if part.kind == "nats":
            is_leader = leader is not None and part.extra.get("server_name") == leader
            found[part.name] = "stream leader" if is_leader else "replica"
        elif part.kind == "consumer":
            holder = holders.get(str(part.extra.get("component")))
            found[part.name] = "lease holder" if holder == part.pid else "standby"
        elif part.kind == "bff":
            found[part.name] = "BFF (no consumers)"
        else:
            found[part.name] = "database"
    return found


def rows(state: State) -> list[dict[str, Any]]:
    named = asyncio.run(roles(state)) if state.phase == "ready" else {}
    return [
        {
            "process": part.name,
            "pid": part.pid,
            "port": part.port,
            "alive": alive(part.pid),
            "ready": part.ready,
            "restarts": part.restarts,
            "role": named.get(part.name, "-"),
        }
        for part in state.parts
    ]


def table(found: list[dict[str, Any]]) -> str:
    columns = ["process", "pid", "port", "alive", "ready", "restarts", "role"]
    cells = [[("-" if r[c] is None else str(r[c])) for c in columns] for r in found]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
