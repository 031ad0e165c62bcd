"""``outpost reminders``: a board owner's reminder lead time, from a signed-in profile
(``outpost client --data-dir DIR login ...`` first).

    outpost reminders --data-dir DIR show BOARD
    outpost reminders --data-dir DIR lead BOARD 2h         # 30m, 2h, 1d, 1d12h, 90 (seconds)
    outpost reminders --data-dir DIR lead BOARD --default  # back to the backend's default

The lead time is how long before a task's due date (its 00:00 UTC) the assignee is reminded:
0 .. 30 days. Printed as JSON (``--json``) or as a plain line. Errors go to stderr: 1 for a
refusal or the server away, 2 for a bad command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from client.device import Device
from client.errors import ClientError, InvalidAction
from client.sync.engine import SyncEngine
from client.sync.transport import body_of, connect, detail_of

__all__ = ["add_parser", "format_duration", "main", "parse_duration"]

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([wdhms])")


def parse_duration(text: str) -> int:
    """Whole seconds from ``90``, ``30m``, ``2h``, ``1d``, ``1d12h`` (w, d, h, m, s)."""
    spec = text.strip().lower()
    if spec.isdigit():
        return int(spec)
    parts = _PART.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec:
        raise InvalidAction(
            f"duration {text!r}: a number of seconds or parts like 30m, 2h, 1d, 1d12h"
        )
    return sum(int(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: int) -> str:
    """``1d``, ``2h30m``, ``0s``: the largest units first."""
    if seconds == 0:
        return "0s"
    out = []
    for unit in "dhms":
        count, seconds = divmod(seconds, _UNITS[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "reminders",
        help="a board owner's reminder lead time (the orchestrator)",
        description="How long before a task's due date (its 00:00 UTC) its assignee is "
        "reminded, for one board: its own lead time or the backend's default. Uses the "
        "session of a signed-in profile.",
    )
    parser.add_argument("--data-dir", required=True, help="a signed-in profile folder")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="reminders_command", required=True, metavar="COMMAND")
    sub.add_parser("show", help="the board's lead time").add_argument("board")
    lead = sub.add_parser(
        "lead", help="set the board's lead time (0 .. 30 days), or --default to clear it"
    )
    lead.add_argument("board")
    lead.add_argument("duration", nargs="?", help="30m, 2h, 1d, 1d12h or seconds")
    lead.add_argument("--default", action="store_true", help="back to the backend's default")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        device = Device(Path(args.data_dir))
    except ClientError as exc:
        return _fail(str(exc))
    try:
        method, path, body = _request(args)
        server = device.server
        if server is None:
            raise InvalidAction("no server in this profile: sign in with `outpost client` first")
        reply = asyncio.run(_send(device, server, method, path, body))
    except InvalidAction as exc:
        print(f"outpost reminders: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        return _fail(str(exc))
    finally:
        device.close()
    if reply.status_code >= 400:
        return _fail(f"HTTP {reply.status_code}: {detail_of(reply)}")
    found = body_of(reply)
    print(json.dumps(found, indent=2) if args.json else _text(found))
    return 0


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    path = f"/v1/boards/{quote(args.board, safe='')}/reminders"
    if args.reminders_command == "show":
        return "GET", path, None
    if args.default and args.duration is not None:
        raise InvalidAction("lead takes a DURATION or --default, not both")
    if args.default:
        return "DELETE", path, None
    if args.duration is None:
        return "GET", path, None
    return "PUT", path, {"lead_s": parse_duration(args.duration)}


async def _send(
    device: Device, server: str, method: str, path: str, body: dict[str, Any] | None
) -> httpx.Response:
    async with connect(server) as http:
        content = None if body is None else json.dumps(body).encode()
        return await SyncEngine(device, http).call(method, path, body=content)


def _text(found: Any) -> str:
    which = "the default" if found["default"] else "its own"
    line = (
        f"board {found['board']}: reminders {format_duration(found['lead_s'])} "
        f"({found['lead_s']}s) before the due date, {which}"
    )
    if found.get("replanned"):
        line += f"; {found['replanned']} planned reminder(s) planned again"
    return line


def _fail(message: str) -> int:
    print(f"outpost reminders: {message}", file=sys.stderr)
    return 1
