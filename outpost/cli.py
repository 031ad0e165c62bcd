"""``outpost``: the command line of SPEC section 7.

Each subcommand imports its part only when run, so ``outpost docs`` does not load Kivy and
``outpost app`` does not load the backend.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def _backend(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import json
    import logging

    from backend import main as backend_main
    from backend import runtime
    from backend.config import Settings
    from backend.errors import ComponentBusy

    settings = Settings.from_env(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        nats_url=args.nats_url,
        db_url=args.db_url,
        components=args.components,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.action == "ledger":
        rows = asyncio.run(backend_main.ledger(settings))
        if args.json:
            print(json.dumps([{"id": i, "seq": s, "times": t} for i, s, t in rows]))
        else:
            for event_id, seq, times in rows:
                print(f"{seq:>10} {event_id} {times}")
            twice = sum(1 for *_, times in rows if times != 1)
            print(f"{len(rows)} events applied, {twice} applied more than once", file=sys.stderr)
        return 0
    if args.action == "rebuild":
        try:
            generation = asyncio.run(backend_main.rebuild(settings))
        except ComponentBusy as exc:
            print(f"outpost backend rebuild: {exc}", file=sys.stderr)
            return 1
        print(
            f"views emptied into generation {generation}: the projector rebuilds them "
            "from the stream when the backend next starts"
        )
        return 0
    if args.action in {"backup", "restore"}:
        return _backup_or_restore(args, settings)
    from backend.migrations import MigrationError
    from backend.nats import StoreInUseError

    run = backend_main.consume if args.action == "consume" else backend_main.serve
    try:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn already stopped in order
            runtime.run(run(settings))
    except StoreInUseError as exc:
        running = exc.running
        share = f" or pass --nats-url {running.url} to use it" if running and running.url else ""
        print(f"outpost backend: {exc}: stop it first{share}", file=sys.stderr)
        return 1
    except MigrationError as exc:  # a database a newer Outpost migrated: do not touch it
        print(f"outpost backend: {exc}", file=sys.stderr)
        return 1
    return 0


def _backup_or_restore(args: argparse.Namespace, settings: object) -> int:
    import asyncio

    from backend.backup import backup, restore
    from backend.config import Settings
    from backend.errors import BackendError

    assert isinstance(settings, Settings)
    folder = args.to if args.action == "backup" else args.source
    if not folder:
        flag = "--to" if args.action == "backup" else "--from"
        print(
            f"outpost backend {args.action}: name the backup folder with {flag} DIR",
            file=sys.stderr,
        )
        return 2
    try:
        if args.action == "backup":
            made = asyncio.run(backup(settings, Path(folder)))
        else:
            made = asyncio.run(restore(settings, Path(folder)))
    except BackendError as exc:
        print(f"outpost backend {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.action == "backup":
        print(
            f"backed up {settings.data_dir} into {made.folder} ({len(made.databases)} SQLite files)"
        )
    else:
        kept = f"; the folder it replaced is {made.kept}" if made.kept else ""
        print(
            f"restored {made.folder} into {settings.data_dir}{kept}; the views' new generation "
            f"is {made.generation}: every device resets and pushes again what it holds"
        )
    for note in made.not_covered:
        print(f"not covered by this command: {note}", file=sys.stderr)
    return 0


def _users(args: argparse.Namespace) -> int:
    import asyncio

    from backend.bff.auth.reset import UnknownUser, reset_password
    from backend.config import Settings
    from backend.migrations import MigrationError

    settings = Settings.from_env(data_dir=args.data_dir, db_url=args.db_url)
    try:
        password, ended = asyncio.run(reset_password(settings, args.username))
    except (UnknownUser, MigrationError) as exc:
        print(f"outpost users reset-password: {exc}", file=sys.stderr)
        return 1
    print(password)
    print(
        f"one-time password of {args.username} (shown only now); {ended} session(s) ended. "
        "Signing in with it only allows changing it: `outpost client passwd`.",
        file=sys.stderr,
    )
    return 0


def _app(args: argparse.Namespace) -> int:
    from client.app.quiet import prepare_terminal

    prepare_terminal(args.verbose)  # before Kivy is imported
    from client.app.main import run_app

    data_dir = Path(args.data_dir) if args.data_dir else None
    return run_app(args.server, data_dir, demo=args.demo, verbose=args.verbose)


APP_DESCRIPTION = "The task board app. Works offline; syncs with the server when it can."


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``outpost app``, which the desktop bundle's ``outpost-app`` takes too."""
    parser.add_argument("--server", help="server URL (default: the profile's, or 127.0.0.1:8000)")
    parser.add_argument(
        "--data-dir", help="the profile folder (default: in the platform's user data folder)"
    )
    parser.add_argument(
        "--demo", action="store_true", help="sign in to a demo account with a sample board"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Kivy's and httpx's info and debug logs (default: warnings and errors only)",
    )


def app_main(argv: Sequence[str] | None = None) -> int:
    """``outpost app`` alone: the desktop bundle's entry point (``packaging/outpost_app.py``).
    It builds no other subcommand's parser, so it imports nothing of the backend."""
    parser = argparse.ArgumentParser(prog="outpost-app", description=APP_DESCRIPTION)
    add_app_arguments(parser)
    return _app(parser.parse_args(sys.argv[1:] if argv is None else argv))


def _docs(args: argparse.Namespace) -> int:
    from outpost import docs

    folder = Path(args.dir)
    if args.check:
        problems = docs.stale(folder)
        for name in problems:
            print(f"outdated: {folder / name}", file=sys.stderr)
        if problems:
            print("run `outpost docs` (or `make docs`) and commit the result", file=sys.stderr)
            return 1
        print(f"{folder}: every generated document is current")
        return 0
    changed = docs.write(folder)
    print(f"{folder}: {len(changed)} document(s) written" if changed else f"{folder}: current")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outpost", description="Outpost: an offline-first task board with cloud sync."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backend = commands.add_parser(
        "backend",
        help="run the whole backend (the BFF and the projector, the other consumers in a "
        "child process)",
        description="Run the backend (the default: the BFF and every stream consumer, those "
        "of OUTPOST_CONSUMERS_APART in a child process), run "
        "only stream consumers (consume), list the projector's ledger, empty the views "
        "into a new generation that the projector rebuilds from the stream (rebuild), or "
        "back up and restore the stopped backend's data folder (backup, restore).",
    )
    backend.add_argument(
        "action",
        nargs="?",
        choices=["serve", "consume", "ledger", "rebuild", "backup", "restore"],
        default="serve",
    )
    backend.add_argument("--data-dir", help="data folder (default: outpost-data)")
    backend.add_argument("--host", help="listen address (default: 127.0.0.1)")
    backend.add_argument("--port", type=int, help="listen port (default: 8000)")
    backend.add_argument("--nats-url", help="use this NATS instead of an embedded nats-server")
    backend.add_argument("--db-url", help="postgresql+asyncpg://... instead of SQLite files")
    backend.add_argument(
        "--components",
        help="the stream consumers to run, comma-separated (default: projector,workload,lake,"
        "gateway, orchestrator; "
        "empty: none)",
    )
    backend.add_argument("--json", action="store_true", help="ledger: print JSON")
    backend.add_argument(
        "--to", metavar="DIR", help="backup: the new folder to copy the stopped backend into"
    )
    backend.add_argument(
        "--from",
        dest="source",
        metavar="DIR",
        help="restore: a backup folder to put back (the data folder is kept aside); the views "
        "get a new generation, so devices reset",
    )
    backend.set_defaults(handler=_backend)

    users = commands.add_parser(
        "users",
        help="manage accounts, on the backend's host",
        description="Manage accounts directly in the backend's database (run it on the "
        "backend's host, with the backend's --data-dir or --db-url).",
    )
    users_actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    reset = users_actions.add_parser(
        "reset-password",
        help="print a one-time password for USERNAME and end every session of the user",
        description="Print a new one-time password for USERNAME (once) and end every "
        "session of the user. Signing in with it answers 403 and a token good only for "
        "changing it (POST /v1/auth/password, or `outpost client passwd`).",
    )
    reset.add_argument("username")
    reset.add_argument("--data-dir", help="the backend's data folder (default: outpost-data)")
    reset.add_argument("--db-url", help="the backend's postgresql+asyncpg://... database")
    reset.set_defaults(handler=_users)

    app = commands.add_parser("app", help="the Kivy task board app", description=APP_DESCRIPTION)
    add_app_arguments(app)
    app.set_defaults(handler=_app)

    from backend.faults.cli import add_parser as add_faults_parser
    from backend.lake.cli import add_parser as add_lake_parser
    from client.cli import add_parser as add_client_parser
    from client.reminders import add_parser as add_reminders_parser
    from client.webhooks import add_parser as add_webhooks_parser

    add_client_parser(commands)
    add_webhooks_parser(commands)
    add_reminders_parser(commands)
    add_faults_parser(commands)
    add_lake_parser(commands)

    from outpost.conflicts import add_arguments as add_conflicts_arguments
    from outpost.conflicts import run as run_conflicts

    conflicts = commands.add_parser("conflicts", help="randomized multi-device sync tests")
    add_conflicts_arguments(conflicts)
    conflicts.set_defaults(handler=run_conflicts)

    from outpost.cluster import add_arguments as add_cluster_arguments
    from outpost.cluster import run as run_cluster

    cluster = commands.add_parser(
        "cluster",
        help="a local cluster: NATS nodes, PostgreSQL, BFFs and consumers apart (up|down|status)",
        description="Start (up), stop (down) or show (status) a local, supervised topology: a "
        "JetStream cluster, PostgreSQL, BFF processes behind a round-robin front and each "
        "stream consumer in its own process with a standby.",
    )
    add_cluster_arguments(cluster)
    cluster.set_defaults(handler=run_cluster)

    # `outpost bench ...` goes straight to outpost.bench.main (see main): it has its own flags.
    commands.add_parser("bench", help="the benchmarks, as a table and JSON (--quick, --json)")

    docs = commands.add_parser("docs", help="write the generated contract documents to docs/")
    docs.add_argument("--dir", default="docs", help="the docs folder (default: docs)")
    docs.add_argument("--check", action="store_true", help="fail if a document is outdated")
    docs.set_defaults(handler=_docs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        from outpost.bench import main as bench_main

        return bench_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    handler: Handler = args.handler
    return handler(args)
