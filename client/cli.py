"""``outpost client``: the device's store and sync engine, headless, for scripts and tests.

Every action works offline and prints what it made (a new id) on stdout; ``sync`` talks
to the server once, ``run`` stays in sync live until stopped. Errors go to stderr with a
non-zero status: 1 for a failure (server unreachable, sign-in needed), 2 for a bad command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.device import Device
from client.errors import ClientError, InvalidAction, NotFound, ServerUnreachable, SignInRequired
from client.store.settings import Setting, write_setting
from client.sync.engine import SyncEngine
from client.sync.runner import LiveSync
from client.sync.transport import connect


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "client",
        help="a headless device: the app's store and sync engine",
        description="A device on the command line. Actions work offline; `sync` and `run` "
        "talk to the server.",
    )
    parser.add_argument("--data-dir", required=True, help="the profile folder")
    parser.add_argument("--server", help="server URL (remembered in the profile)")
    parser.add_argument(
        "--clock-error-ms",
        type=int,
        default=0,
        help="make this device's wall clock wrong by this much (tests, the conflict tool)",
    )
    sub = parser.add_subparsers(dest="client_command", required=True, metavar="COMMAND")

    for name in ("signup", "login"):
        account = sub.add_parser(name, help=f"{name} and keep the session (never the password)")
        account.add_argument("username")
        account.add_argument("--password", help="default: $OUTPOST_PASSWORD or a prompt")
    passwd = sub.add_parser(
        "passwd",
        help="change the account's password (also a one-time one), then sign in again",
        description="Change the password: prompts for the current and the new one, or reads "
        "them from stdin (two lines) when it is not a terminal. Every session of the account "
        "ends; this device signs in again with the new password. No password is kept.",
    )
    passwd.add_argument("username", nargs="?", help="the account, in a profile not signed in yet")
    sub.add_parser(
        "logout",
        help="end this device's session and forget its tokens (unsynced changes are kept)",
    )

    board = sub.add_parser("board", help="create, rename, archive, share boards").add_subparsers(
        dest="board_command", required=True
    )
    create = board.add_parser("create")
    create.add_argument("name")
    create.add_argument("--wip-limit", type=int)
    rename = board.add_parser("rename")
    rename.add_argument("board")
    rename.add_argument("name")
    archive = board.add_parser("archive")
    archive.add_argument("board")
    archive.add_argument("--undo", action="store_true", help="unarchive")
    share = board.add_parser(
        "share",
        help="share with a user; the name is checked with the server first when it can be",
        description="Share a board. With a server and a session, the server is asked first "
        "whether the user exists (a few checks per hour: it cannot list the usernames); a "
        "name it does not know is not queued. Offline, the share is queued and checked when "
        "it is sent.",
    )
    share.add_argument("board")
    share.add_argument("username")
    unshare = board.add_parser("unshare")
    unshare.add_argument("board")
    unshare.add_argument("username")
    wip = board.add_parser("wip", help="set the WIP limit (or 'none')")
    wip.add_argument("board")
    wip.add_argument("limit")

    task = sub.add_parser("task", help="add, edit, move, label, delete tasks").add_subparsers(
        dest="task_command", required=True
    )
    add = task.add_parser("add")
    add.add_argument("board")
    add.add_argument("title")
    add.add_argument("--status", choices=["todo", "doing", "done"])
    add.add_argument("--priority", type=int)
    add.add_argument("--due")
    add.add_argument("--assignee")
    add.add_argument("--notes")
    add.add_argument("--label", action="append", dest="labels")
    set_ = task.add_parser("set", help="set fields: title=..., priority=2, due=null, ...")
    set_.add_argument("task")
    set_.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    move = task.add_parser("move")
    move.add_argument("task")
    move.add_argument("--status", choices=["todo", "doing", "done"])
    move.add_argument("--index", type=int, help="place in the column (default: the end)")
    for name in ("label", "unlabel"):
        label = task.add_parser(name)
        label.add_argument("task")
        label.add_argument("label")
    for name in ("delete", "restore"):
        task.add_parser(name).add_argument("task")

    comment = sub.add_parser("comment", help="add and delete comments").add_subparsers(
        dest="comment_command", required=True
    )
    comment_add = comment.add_parser("add")
    comment_add.add_argument("task")
    comment_add.add_argument("body")
    comment.add_parser("delete").add_argument("comment")

    sub.add_parser("sync", help="push and pull once")
    run = sub.add_parser("run", help="stay in sync live until stopped (SIGTERM or Ctrl-C)")
    run.add_argument("--periodic", type=float, default=30.0, help="fallback pull, seconds")
    sub.add_parser(
        "status",
        help="the sync state: changes waiting to send, and sent ones awaiting confirmation",
    )
    show = sub.add_parser("show", help="the local view")
    show.add_argument("--json", action="store_true", help="the stable JSON form")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        device = Device(Path(args.data_dir), clock_error_ms=args.clock_error_ms)
    except ClientError as exc:
        return _fail(str(exc))
    try:
        if args.server:
            with device.store.write() as conn:
                write_setting(conn, Setting.SERVER, args.server)
        return _dispatch(device, args)
    except (NotFound, InvalidAction) as exc:
        print(f"outpost client: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        return _fail(str(exc))
    finally:
        device.close()


def _dispatch(device: Device, args: argparse.Namespace) -> int:
    command = args.client_command
    if command in ("signup", "login"):
        password = args.password or os.environ.get("OUTPOST_PASSWORD") or getpass.getpass()
        return _online(device, lambda engine: getattr(engine, command)(args.username, password))
    if command == "passwd":
        return _passwd(device, args.username)
    if command == "logout":
        return _logout(device)
    if command == "sync":
        return _online(device, lambda engine: engine.sync())
    if command == "run":
        return _run(device, args.periodic)
    if command == "status":
        _print_status(device)
        return 0
    if command == "show":
        snapshot = device.snapshot()
        print(json.dumps(snapshot, indent=2, sort_keys=True) if args.json else _text(snapshot))
        return 0
    actions: dict[str, Callable[[Device, argparse.Namespace], str | None]] = {
        "board": _board,
        "task": _task,
        "comment": _comment,
    }
    made = actions[command](device, args)
    if made is not None:
        print(made)
    return 0


def _board(device: Device, args: argparse.Namespace) -> str | None:
    command = args.board_command
    if command == "create":
        return device.create_board(args.name, args.wip_limit)
    if command == "rename":
        device.rename_board(args.board, args.name)
    elif command == "archive":
        device.archive_board(args.board, archived=not args.undo)
    elif command == "share":
        device.require_board(args.board)
        _check_member(device, args.username)
        device.share_board(args.board, args.username)
    elif command == "unshare":
        device.unshare_board(args.board, args.username)
    else:
        limit = None if args.limit.lower() == "none" else _int(args.limit, "limit")
        device.set_wip_limit(args.board, limit)
    return None


def _task(device: Device, args: argparse.Namespace) -> str | None:
    command = args.task_command
    if command == "add":
        fields = {
            k: getattr(args, k)
            for k in ("status", "priority", "due", "assignee", "notes", "labels")
            if getattr(args, k) is not None
        }
        return device.add_task(args.board, args.title, **fields)
    if command == "set":
        device.set_task(args.task, **dict(_field(text) for text in args.fields))
    elif command == "move":
        device.move_task(args.task, args.status, args.index)
    elif command == "label":
        device.add_label(args.task, args.label)
    elif command == "unlabel":
        device.remove_label(args.task, args.label)
    elif command == "delete":
        device.delete_task(args.task)
    else:
        device.restore_task(args.task)
    return None


def _comment(device: Device, args: argparse.Namespace) -> str | None:
    if args.comment_command == "add":
        return device.add_comment(args.task, args.body)
    device.delete_comment(args.comment)
    return None


def _check_member(device: Device, username: str) -> None:
    """Ask the server whether ``username`` exists before a share is queued: NotFound if it
    does not; when it cannot be asked (offline, no session, too many checks), say so and go
    on: the server checks the share when it is sent."""
    if device.server is None or device.store.setting(Setting.TOKEN) is None:
        print("outpost client: not signed in: the name is checked when the share is sent",
              file=sys.stderr)  # fmt: skip
        return

    async def body() -> bool:
        async with connect(device.server or "") as http:
            return await SyncEngine(device, http).user_exists(username)

    try:
        exists = asyncio.run(body())
    except (ServerUnreachable, SignInRequired) as exc:
        print(f"outpost client: could not check the name ({exc}): the share is queued and "
              "checked when it is sent", file=sys.stderr)  # fmt: skip
        return
    if not exists:
        raise NotFound(f"no user named {username!r}: nothing queued")


def _field(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep:
        raise InvalidAction(f"{text!r}: write FIELD=VALUE, e.g. priority=2 or due=null")
    if value == "null":
        return name, None
    if name == "priority":
        return name, _int(value, name)
    return name, value


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidAction(f"{name} must be a whole number, not {text!r}") from None


def _server(device: Device) -> str:
    server = device.server
    if server is None:
        raise InvalidAction("no server yet: pass --server URL once")
    return server


def _online(device: Device, work: Callable[[SyncEngine], Any]) -> int:
    async def body() -> None:
        async with connect(_server(device)) as http:
            await work(SyncEngine(device, http))

    try:
        asyncio.run(body())
    except ServerUnreachable as exc:
        return _fail(f"{exc}; everything is kept and will sync later")
    except SignInRequired as exc:
        return _fail(f"{exc}")
    _print_status(device)
    return 0


def _passwd(device: Device, username: str | None) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Current password: ")
        new_password = getpass.getpass("New password: ")
        if getpass.getpass("New password again: ") != new_password:
            raise InvalidAction("the new passwords differ: nothing changed")
    else:
        password, new_password = (sys.stdin.readline().rstrip("\n") for _ in range(2))

    async def body() -> None:
        async with connect(_server(device)) as http:
            await device.change_password(http, password, new_password, username)
            account = device.username or username or ""
            await SyncEngine(device, http).login(account, new_password)

    try:
        asyncio.run(body())
    except ServerUnreachable as exc:
        return _fail(f"{exc}; the password may not have changed: try again")
    print("password changed: every session of the account has ended; signed in again here")
    return 0


def _logout(device: Device) -> int:
    async def body() -> bool:
        async with connect(_server(device)) as http:
            return await device.log_out(http)

    ended = asyncio.run(body())
    where = "" if ended else " here only: the server could not be reached to end the session"
    waiting, sent = device.pending_counts()
    awaiting = f" ({sent} sent, awaiting confirmation)" if sent else ""
    kept = f"{waiting} change(s) waiting to send kept for the next sign-in{awaiting}"
    print(f"signed out{where}; {kept}")
    return 0


def _run(device: Device, periodic: float) -> int:
    async def body() -> None:
        def say(connected: bool) -> None:
            state = "on" if connected else "off, reconnecting"
            print(f"outpost client: live updates {state}", file=sys.stderr, flush=True)

        async with connect(_server(device)) as http:
            live = LiveSync(device, http, on_live=say, periodic_s=periodic)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, live.stop)
            await live.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(body())
    return 0


def _print_status(device: Device) -> None:
    store = device.store
    waiting, sent = device.pending_counts()
    lines = {
        "device": device.device_id,
        "user": device.username or "(not signed in)",
        "server": device.server or "(none)",
        # the two kinds of pending apart: a successful sync leaves none waiting to send,
        # some may still await the pull that confirms them
        "waiting to send": waiting,
        "awaiting confirmation": sent,
        "rejected": len(device.rejected()),
        "watermark": store.setting(Setting.WATERMARK, "0"),
        "signed in": "yes" if store.setting(Setting.TOKEN) else "no",
    }
    for key, value in lines.items():
        print(f"{key:>21}: {value}")


def _text(snapshot: dict[str, Any]) -> str:
    lines = []
    for board in snapshot["boards"]:
        flag = " (archived)" if board["archived"] else ""
        members = ", ".join(m["username"] for m in board["members"])
        lines.append(f"{board['name']}{flag}  [{board['id']}]  members: {members}")
        for status in ("todo", "doing", "done"):
            tasks = [t for t in board["tasks"] if t["status"] == status and not t["deleted"]]
            lines.append(f"  {status} ({len(tasks)})")
            lines += [f"    - {t['title']}  [{t['id']}]" for t in tasks]
    for notice in snapshot["notices"]:
        if not notice["dismissed"]:
            lines.append(f"! {notice['message']}")
    return "\n".join(lines) or "(no boards yet)"


def _fail(message: str) -> int:
    print(f"outpost client: {message}", file=sys.stderr)
    return 1
