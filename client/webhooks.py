"""``outpost webhooks``: a board owner's registrations at the gateway, from a signed-in
profile (``outpost client --data-dir DIR login ...`` first).

    outpost webhooks --data-dir DIR add BOARD URL            # prints the id and the secret, once
    outpost webhooks --data-dir DIR list BOARD
    outpost webhooks --data-dir DIR remove BOARD WEBHOOK
    outpost webhooks --data-dir DIR deliveries BOARD WEBHOOK [--limit N]
    outpost webhooks --data-dir DIR redeliver BOARD WEBHOOK DELIVERY
    outpost webhooks --data-dir DIR source add|list|remove BOARD [SOURCE]
    outpost webhooks --data-dir DIR login map|list|unmap BOARD [LOGIN [USERNAME]]

Everything is printed as JSON (``--json``) or as plain lines. Errors go to stderr: 1 for a
refusal or the server away, 2 for a bad command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from client.device import Device
from client.errors import ClientError, InvalidAction
from client.sync.engine import SyncEngine
from client.sync.transport import body_of, connect, detail_of

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "webhooks",
        help="a board owner's webhooks, inbound sources and login map (the gateway)",
        description="Register where a board's changes are sent (signed per Standard "
        "Webhooks), which outside systems may write to it (generic, github), and how their "
        "logins map to usernames. Uses the session of a signed-in profile.",
    )
    parser.add_argument("--data-dir", required=True, help="a signed-in profile folder")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="send the board's changes to URL; prints its secret once")
    add.add_argument("board")
    add.add_argument("url")
    sub.add_parser("list", help="the board's webhooks and their queues").add_argument("board")
    remove = sub.add_parser("remove", help="stop sending to a webhook; forget its log")
    remove.add_argument("board")
    remove.add_argument("webhook")
    log = sub.add_parser("deliveries", help="a webhook's latest deliveries and their tries")
    log.add_argument("board")
    log.add_argument("webhook")
    log.add_argument("--limit", type=int, default=20)
    again = sub.add_parser("redeliver", help="send a delivery again now")
    again.add_argument("board")
    again.add_argument("webhook")
    again.add_argument("delivery")
    source = sub.add_parser("source", help="inbound sources: add (prints the secret), list, remove")
    source.add_argument("action", choices=("add", "list", "remove"))
    source.add_argument("board")
    source.add_argument("source", nargs="?", help="generic or github (add, remove)")
    login = sub.add_parser("login", help="map outside logins (GitHub's) to usernames")
    login.add_argument("action", choices=("map", "list", "unmap"))
    login.add_argument("board")
    login.add_argument("login", nargs="?")
    login.add_argument("username", nargs="?")
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
        print(f"outpost webhooks: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        return _fail(str(exc))
    finally:
        device.close()
    if reply.status_code >= 400:
        return _fail(f"HTTP {reply.status_code}: {detail_of(reply)}")
    found = body_of(reply) if reply.content else None
    print(json.dumps(found, indent=2) if args.json else _text(args, found))
    return 0


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    board = f"/v1/boards/{_part(args.board)}"
    command = args.webhooks_command
    if command == "add":
        return "POST", f"{board}/webhooks", {"url": args.url}
    if command == "list":
        return "GET", f"{board}/webhooks", None
    if command == "remove":
        return "DELETE", f"{board}/webhooks/{_part(args.webhook)}", None
    if command == "deliveries":
        return "GET", f"{board}/webhooks/{_part(args.webhook)}/deliveries?limit={args.limit}", None
    if command == "redeliver":
        hook, delivery = _part(args.webhook), _part(args.delivery)
        return "POST", f"{board}/webhooks/{hook}/deliveries/{delivery}/redeliver", None
    if command == "source":
        if args.action == "list":
            return "GET", f"{board}/sources", None
        if not args.source:
            raise InvalidAction(f"source {args.action} needs a SOURCE (generic or github)")
        verb = "PUT" if args.action == "add" else "DELETE"
        return verb, f"{board}/sources/{_part(args.source)}", None
    if args.action == "list":
        return "GET", f"{board}/logins", None
    if not args.login:
        raise InvalidAction(f"login {args.action} needs a LOGIN")
    if args.action == "unmap":
        return "DELETE", f"{board}/logins/{_part(args.login)}", None
    if not args.username:
        raise InvalidAction("login map needs a LOGIN and a USERNAME")
    return "PUT", f"{board}/logins/{_part(args.login)}", {"username": args.username}


def _part(text: str) -> str:
    return quote(text, safe="")


async def _send(
    device: Device, server: str, method: str, path: str, body: dict[str, Any] | None
) -> httpx.Response:
    async with connect(server) as http:
        content = None if body is None else json.dumps(body).encode()
        return await SyncEngine(device, http).call(method, path, body=content)


def _text(args: argparse.Namespace, found: Any) -> str:
    command = args.webhooks_command
    if found is None:
        return "done"
    if command == "add":
        return (
            f"webhook {found['id']} -> {found['url']}\n"
            f"secret {found['secret']} (shown once: keep it to verify the signatures)"
        )
    if command == "source" and args.action == "add":
        return (
            f"source {found['source']} on board {found['board']}: POST {found['path']}\n"
            f"secret {found['secret']} (shown once: give it to the sending system)"
        )
    if command == "list":
        return "\n".join(
            f"{e['id']} {e['url']} pending={e['pending']} delivered={e['delivered']} "
            f"failed={e['failed']}"
            for e in found
        )
    if command == "deliveries":
        return "\n".join(
            f"{d['id']} {d['event_type']} seq={d['seq']} {d['status']} tries={d['attempts']}"
            + (f" last: {d['last_error']}" if d["last_error"] else "")
            for d in found
        )
    if command == "source":
        return "\n".join(f"{s['source']} POST {s['path']} (owner {s['owner']})" for s in found)
    if command == "login":
        if isinstance(found, dict):
            return f"{found['login']} -> {found['username']}"
        return "\n".join(f"{m['login']} -> {m['username']}" for m in found)
    return json.dumps(found)


def _fail(message: str) -> int:
    print(f"outpost webhooks: {message}", file=sys.stderr)
    return 1
