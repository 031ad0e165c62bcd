"""A scripted device that speaks the HTTP contract directly, to lay out what a scenario
needs (a board of 100,000 tasks, members) faster than a real device would make it.

Seeding is set-up, never measured: the measured side is always a real device.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from outpost.bench.harness import BenchError, progress
from protocol import HybridLogicalClock, new_device_id, new_id, positions_between

BATCH = 500


class Seeder:
    def __init__(self, url: str, token: str) -> None:
        self.device = new_device_id()
        self.clock = HybridLogicalClock(self.device)
        self.http = httpx.AsyncClient(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        self.last_seq = 0

    async def close(self) -> None:
        await self.http.aclose()

    def event(self, type_: str, board: str, entity: str, payload: dict[str, Any]) -> bytes:
        raw = {
            "id": new_id(),
            "type": type_,
            "schema": 1,
            "board": board,
            "entity": entity,
            "hlc": self.clock.now(),
            "device": self.device,
            "payload": payload,
        }
        return msgspec.json.encode(raw)

    async def push(self, events: list[bytes], *, label: str = "") -> None:
        """Push in batches of the contract's size; every event must be accepted."""
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            body = b'{"device":"%s","protocol":1,"events":[%s]}' % (
                self.device.encode(),
                b",".join(batch),
            )
            reply = await self.http.post(
                "/v1/sync/push", content=body, headers={"Content-Type": "application/json"}
            )
            if reply.status_code != 200:
                raise BenchError(f"seeding push: HTTP {reply.status_code} {reply.text[:300]}")
            answer = reply.json()
            self.clock.receive_time(answer["server_time"])
            for result in answer["results"]:
                if result["status"] not in ("accepted", "duplicate"):
                    raise BenchError(f"seeding push: {result}")
                self.last_seq = max(self.last_seq, int(result["seq"]))
            done = start + len(batch)
            if label and len(events) >= 10 * BATCH and done % (20 * BATCH) == 0:
                progress(f"{label}: {done:,} of {len(events):,} events pushed")

    async def board(self, name: str) -> str:
        board = new_id()
        await self.push([self.event("BoardCreated", board, board, {"name": name})])
        return board

    async def share(self, board: str, usernames: list[str]) -> None:
        events = [self.event("MemberAdded", board, board, {"username": u}) for u in usernames]
        await self.push(events)

    async def tasks(self, board: str, count: int, *, label: str = "") -> list[str]:
        ids = [new_id() for _ in range(count)]
        positions = positions_between(None, None, count)
        events = [
            self.event(
                "TaskCreated",
                board,
                task,
                {"title": f"Task {i}", "position": position, "notes": f"seeded task {i}"},
            )
            for i, (task, position) in enumerate(zip(ids, positions, strict=True))
        ]
        await self.push(events, label=label)
        return ids

    async def edit(self, board: str, task: str, **fields: Any) -> None:
        await self.push([self.event("TaskUpdated", board, task, {"fields": fields})])
