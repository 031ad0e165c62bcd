"""One device of a conflict scenario, in a process of its own.

``python -m outpost.conflicts.device --folder F --server URL [--clock-error-ms MS]``
reads JSON-line commands on stdin and answers each with one JSON line on stdout, written
only after the command is done: an ``act`` answer means the action has committed to the
store (that is what "an action that returned" means to the oracle). The orchestrator may
SIGKILL this process at any moment and start it again on the same folder.

It is the real device (``client.device.Device``, ``SyncEngine``, ``LiveSync``,
httpx); the only thing added is ``ScenarioTransport``, at httpx's transport seam, that can cut
the device off the network, send a push batch twice or re-send the previous one, and that
keeps a journal (``journal.jsonl`` in the folder) of every push result: the id, the
stream sequence and the exact event the backend accepted. The oracle reads the journals.

With ``OUTPOST_CONFLICTS_BREAK`` set, the device also runs with a part broken (see
``outpost.conflicts.broken``): a self-test of the oracle, never a real mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import httpx
import msgspec

from client.device import Device
from client.errors import ClientError
from client.sync.engine import SyncEngine
from client.sync.runner import LiveSync
from client.sync.transport import bearer, body_of, connect, detail_of
from outpost.conflicts.adversary import LOCAL_KINDS, craft, outcome
from outpost.conflicts.broken import BREAK_ENV
from protocol import parse_hlc

MISREAD_EVERY = 4
"""With ``--break device-misreads-results``, every 4th accepted event is shown as rejected."""

HOSTILE = "outpost_hostile"
"""The request extension that marks a hostile push (its kind), for ``ScenarioTransport``."""

BEHIND_MS = 3_600_000
"""An accepted hlc this far behind the server's clock shows the device's clock is behind."""


class Trace:
    """``trace.log`` in the device's folder: when a command started and was answered, and
    when each HTTP request went out and came back. The orchestrator reads it after a kill to
    tell where the kill landed (a fault counts only if it hit what it aims at)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)  # line-buffered

    def __call__(self, line: str) -> None:
        self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


def landed(trace: Path, aim: str) -> bool:
    """Whether a kill landed inside the last command (``aim`` "command") or inside an HTTP
    request of it ("push": a push was out; "http": any request was out)."""
    if not trace.exists():
        return False
    lines = trace.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("cmd ")]
    if not starts:
        return False
    last = lines[starts[-1] :]
    if any(line.startswith("answer ") for line in last):
        return False
    if aim == "command":
        return True
    out: dict[str, int] = {}
    for line in last:
        verb, _, path = line.partition(" ")[2].partition(" ")
        if verb in ("start", "end"):
            out[path] = out.get(path, 0) + (1 if verb == "start" else -1)
    wanted = ["/v1/sync/push"] if aim == "push" else list(out)
    return any(out.get(path, 0) > 0 for path in wanted)


class ScenarioTransport(httpx.AsyncBaseTransport):
    """Real HTTP, at httpx's seam, with a network switch, batch duplication and a push
    journal."""

    def __init__(self, journal: Path, trace: Trace | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.trace = trace or (lambda line: None)
        self.online = True
        self.dup_mode = "off"  # off | twice | resend
        self._previous_push: bytes | None = None
        self._journal = journal.open("a", encoding="utf-8")
        self._first_sent: dict[str, int] = {}
        self._misread = os.environ.get(BREAK_ENV) == "device-misreads-results"
        self._accepted_seen = 0

    def note(self, record: dict[str, Any]) -> None:
        self._journal.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._journal.flush()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.online:
            raise httpx.ConnectError("offline (conflict scenario)", request=request)
        path = request.url.path
        if path == "/v1/sync/live":
            response = await self.inner.handle_async_request(request)
            response.stream = _WhileOnline(self, response.stream, request)
            return response
        if request.method != "POST" or path != "/v1/sync/push":
            return await self._send(request)
        hostile = request.extensions.get(HOSTILE)
        if hostile is not None:
            return await self._hostile_push(str(hostile), request)
        body = request.content
        # When each event was first sent: its push was decided after that (the oracle
        # orders membership decisions by these windows, not by stream order).
        now_ms = int(time.time() * 1000)
        for event in msgspec.json.decode(body)["events"]:
            self._first_sent.setdefault(event["id"], now_ms)
        if self.dup_mode == "resend" and self._previous_push is not None:
            again = await self._send(_with_body(request, self._previous_push))
            self._journal_duplicates("resent_batch", self._previous_push, again)
        if self.dup_mode == "twice":
            first = await self._send(_with_body(request, body))
            if first.status_code == 200:
                self._journal_push(body, first)  # its answer is lost: the device sends again
            reply = await self._send(_with_body(request, body))
            self._journal_duplicates("duplicate_batch", body, reply)
        else:
            reply = await self._send(request)
        self._previous_push = body
        if reply.status_code == 200:
            self._journal_push(body, reply)
            if self._misread:
                reply = self._misread_results(reply)
        return reply

    def _misread_results(self, reply: httpx.Response) -> httpx.Response:
        """The broken device of ``device-misreads-results``: some accepted events are
        taken for rejected ones (the journal above has the truth)."""
        answer = body_of(reply)
        for result in answer["results"]:
            if result["status"] == "accepted":
                self._accepted_seen += 1
                if self._accepted_seen % MISREAD_EVERY == 0:
                    result.update(status="rejected", reason="invalid", detail="misread")
                    result.pop("seq", None)
        return httpx.Response(reply.status_code, content=msgspec.json.encode(answer))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """One request, its answer read whole while the trace says it is out."""
        path = request.url.path
        self.trace(f"http start {path}")
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.trace(f"http end {path}")

    def _journal_duplicates(self, kind: str, body: bytes, reply: httpx.Response) -> None:
        if reply.status_code != 200:
            return
        self._journal_push(body, reply)
        dups = sum(1 for r in body_of(reply)["results"] if r["status"] == "duplicate")
        if dups:
            self.note({"fault": kind, "duplicates": dups})

    async def _hostile_push(self, kind: str, request: httpx.Request) -> httpx.Response:
        """A push of hostile events around the outbox, journaled with their kind."""
        body = request.content
        now_ms = int(time.time() * 1000)
        for event in msgspec.json.decode(body)["events"]:
            if isinstance(event.get("id"), str):
                self._first_sent.setdefault(event["id"], now_ms)
        reply = await self._send(request)
        if reply.status_code == 200:
            self._journal_push(body, reply, hostile=kind)
        return reply

    def _journal_push(self, body: bytes, reply: httpx.Response, hostile: str | None = None) -> None:
        events = {e["id"]: e for e in msgspec.json.decode(body)["events"]}
        answer = body_of(reply)
        server_time = int(answer["server_time"])
        for result in answer["results"]:
            event = events.get(result["id"])
            if event is None:
                continue
            record: dict[str, Any] = {
                "id": result["id"],
                "status": result["status"],
                "sent_at": self._first_sent.get(result["id"]),
                "answered_at": server_time,
            }
            if result["status"] in ("accepted", "duplicate"):
                record["seq"] = result["seq"]
                record["event"] = event
                if parse_hlc(event["hlc"]).wall < server_time - BEHIND_MS:
                    record["behind"] = True
            else:
                record["reason"] = result.get("reason", "")
            if hostile is not None:
                record["hostile"] = hostile
                record["outcome"] = outcome(result)
            self.note(record)

    async def aclose(self) -> None:
        await self.inner.aclose()
        self._journal.close()


class _WhileOnline(httpx.AsyncByteStream):
    """The live stream, broken off when the network switch goes off."""

    def __init__(
        self, owner: ScenarioTransport, inner: httpx.AsyncByteStream, request: httpx.Request
    ) -> None:
        self._owner, self._inner, self._request = owner, inner, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if not self._owner.online:
                raise httpx.ReadError("offline (conflict scenario)", request=self._request)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _with_body(request: httpx.Request, body: bytes) -> httpx.Request:
    """``request`` again (to send twice), with ``body``."""
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return httpx.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


class DeviceProcess:
    def __init__(self, folder: Path, server: str, clock_error_ms: int) -> None:
        self.device = Device(folder, clock_error_ms=clock_error_ms)
        self.trace = Trace(folder / "trace.log")
        self.transport = ScenarioTransport(folder / "journal.jsonl", self.trace)
        self.http = connect(server, transport=self.transport, timeout=20.0)
        self.engine = SyncEngine(self.device, self.http)
        self.live: LiveSync | None = None
        self.live_task: asyncio.Task[None] | None = None
        self.hostile_sent = 0

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command["cmd"]
        if cmd == "act":
            return self.act(command["name"], command.get("args", {}))
        if cmd == "sync":
            try:
                result = await self.engine.sync()
            except ClientError as exc:
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            return {"ok": True, "pulled": result.pulled, "pushed": result.pushed}
        if cmd in ("signup", "login"):
            call = self.engine.signup if cmd == "signup" else self.engine.login
            try:
                await call(command["username"], command["password"])
            except ClientError as exc:
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            return {"ok": True}
        if cmd == "net":
            self.transport.online = bool(command["online"])
            return {"ok": True}
        if cmd == "dup":
            self.transport.dup_mode = str(command["mode"])
            return {"ok": True}
        if cmd == "live":
            await self.set_live(bool(command["on"]))
            return {"ok": True}
        if cmd == "hostile":
            return await self.hostile(str(command["kind"]), command["args"])
        if cmd == "state":
            return {
                "ok": True,
                "pending": self.device.pending_count(),
                "watermark": int(self.device.store.setting("watermark", "0") or 0),
                "snapshot": self.device.snapshot() if command.get("snapshot") else None,
                "rejected": [{"id": r["id"], "reason": r["reason"]} for r in self.device.rejected()]
                if command.get("snapshot")
                else None,
                "integrity": self.device.store.integrity_check(),
            }
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def hostile(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """Push the hostile events of ``kind`` (``outpost.conflicts.adversary``)."""
        self.hostile_sent += 1
        events = craft(kind, self.device.device_id, args, self.hostile_sent)
        if kind in LOCAL_KINDS:
            return self.poison_outbox(kind, args["board"], events)
        body = {"device": self.device.device_id, "protocol": 1, "events": events}
        token = self.device.store.setting("token")
        try:
            reply = await self.http.post(
                "/v1/sync/push",
                content=msgspec.json.encode(body),
                headers=bearer(token),
                extensions={HOSTILE: kind},  # the engine may be pushing meanwhile
            )
        except httpx.HTTPError as exc:
            return {"ok": False, "error": f"TransportError: {exc}"}
        if reply.status_code != 200:
            return {"ok": False, "error": f"HTTP {reply.status_code}: {detail_of(reply)}"}
        return {"ok": True, "outcomes": [outcome(r) for r in body_of(reply)["results"]]}

    def poison_outbox(self, kind: str, board: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Put events into this device's own outbox by SQL, behind the store's back, and
        journal their rows: the oracle finds them in the rejected list, or calls it a loss."""
        rows = []
        with self.device.store.write() as conn:
            for event in events:
                row = str(uuid.uuid4())
                body = msgspec.json.encode(event)
                conn.execute(
                    "INSERT INTO outbox (id, board, body) VALUES (?, ?, ?)", (row, board, body)
                )
                rows.append(row)
        for row in rows:
            self.transport.note({"hostile": kind, "id": row, "outcome": "local"})
        if self.live is not None:
            self.live.wake()
        return {"ok": True, "outcomes": ["local"] * len(rows)}

    def act(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        device = self.device
        watermark = int(device.store.setting("watermark", "0") or 0)
        with device.store.read() as conn:
            (before,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM outbox").fetchone()
        try:
            result = _ACTIONS[name](device, args)
        except ClientError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with device.store.read() as conn:
            rows = conn.execute(
                "SELECT id FROM outbox WHERE position > ? ORDER BY position", (before,)
            ).fetchall()
        if self.live is not None:
            self.live.wake()
        return {"ok": True, "result": result, "ids": [r[0] for r in rows], "watermark": watermark}

    async def set_live(self, on: bool) -> None:
        if on and self.live_task is None:
            self.live = LiveSync(self.device, self.http, periodic_s=2.0)
            self.live.engine = self.engine  # one engine, one lock: syncs never overlap
            self.live_task = asyncio.create_task(self.live.run())
        elif not on and self.live_task is not None and self.live is not None:
            self.live.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.live_task, 30)
            self.live_task = None
            self.live = None

    async def close(self) -> None:
        await self.set_live(False)
        await self.http.aclose()  # and the transport, with its journal
        self.device.close()
        self.trace.close()


def _set(device: Device, a: dict[str, Any]) -> None:
    device.set_task(a["task"], **a["fields"])


def _move(device: Device, a: dict[str, Any]) -> None:
    device.move_task(a["task"], a.get("status"), a.get("index"))


_ACTIONS: dict[str, Any] = {
    "create_board": lambda d, a: d.create_board(a["board_name"], a.get("wip_limit")),
    "rename_board": lambda d, a: d.rename_board(a["board"], a["board_name"]),
    "share": lambda d, a: d.share_board(a["board"], a["username"]),
    "unshare": lambda d, a: d.unshare_board(a["board"], a["username"]),
    "add_task": lambda d, a: d.add_task(a["board"], a["title"], **a.get("fields", {})),
    "set": _set,
    "move": _move,
    "label": lambda d, a: d.add_label(a["task"], a["label"]),
    "unlabel": lambda d, a: d.remove_label(a["task"], a["label"]),
    "delete": lambda d, a: d.delete_task(a["task"]),
    "restore": lambda d, a: d.restore_task(a["task"]),
    "comment": lambda d, a: d.add_comment(a["task"], a["body"]),
    "uncomment": lambda d, a: d.delete_comment(a["comment"]),
}


async def serve(process: DeviceProcess, stdin: TextIO, stdout: TextIO) -> None:
    loop = asyncio.get_running_loop()
    number = 0
    while True:
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            return
        command = json.loads(line)
        if command["cmd"] == "quit":
            stdout.write(json.dumps({"ok": True}) + "\n")
            stdout.flush()
            return
        number += 1
        process.trace(f"cmd {number} {command['cmd']}")
        try:
            answer = await process.handle(command)
        except Exception as exc:
            answer = {"ok": False, "error": f"crash: {type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
        process.trace(f"answer {number}")


async def _main(args: argparse.Namespace) -> int:
    process = DeviceProcess(Path(args.folder), args.server, args.clock_error_ms)
    print(json.dumps({"ready": True, "device": process.device.device_id}), flush=True)
    try:
        await serve(process, sys.stdin, sys.stdout)
    finally:
        await process.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outpost.conflicts.device")
    parser.add_argument("--folder", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--clock-error-ms", type=int, default=0)
    args = parser.parse_args(argv)
    broken = os.environ.get(BREAK_ENV)
    if broken:
        from outpost.conflicts.broken import break_device

        break_device(broken)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
